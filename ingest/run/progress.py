"""A live progress line on a terminal (stderr); nothing at all off a terminal, where the
progress events of `logs.py` are the record instead."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class Progress:
    """Redraws one status line: where the run is, what is verified, rate and ETA."""

    def __init__(self, stream: TextIO | None = None, enabled: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.started = time.monotonic()
        self._width = 0

    def update(self, where: str, verified: int, present: int, done: float | None) -> None:
        """`done` is the finished fraction of the run (0..1) when known, for the ETA."""
        if not self.enabled:
            return
        elapsed = time.monotonic() - self.started
        rate = verified / elapsed if elapsed > 0 else 0.0
        parts = [where, f"verified {verified:,}", f"already there {present:,}", f"{rate:,.0f}/s"]
        if done is not None and 0 < done < 1:
            parts.append(f"ETA {_duration(elapsed * (1 - done) / done)}")
        line = " | ".join(parts)
        self.stream.write("\r" + line.ljust(self._width))
        self.stream.flush()
        self._width = len(line)

    def close(self) -> None:
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0
