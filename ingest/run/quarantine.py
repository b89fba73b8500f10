"""Records that cannot become spans go to a JSONL file with their source, line and reason.

Nothing is dropped silently (DESIGN.md, invariant 3): every quarantined line is written here
and counted in the run summary. The raw line is kept (secrets masked, size bounded) so the
record can be fixed and imported again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO

from ingest.convert.redact import scrub
from ingest.run.state import utc_now

MAX_RAW_CHARS = 20_000


class Quarantine:
    """Appends one JSON object per rejected line; the file is created on first use."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._handle: IO[str] | None = None

    def add(self, source: Path | str, line: int, reason: str, raw: bytes | str) -> None:
        text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
        text, reason = scrub(text), scrub(reason)
        if len(text) > MAX_RAW_CHARS:
            text = f"{text[:MAX_RAW_CHARS]}…[truncated: {len(text)} chars]"
        entry = {"time": utc_now(), "source": str(source), "line": line, "reason": reason}
        entry["raw"] = text
        handle = self._open()
        handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
        handle.flush()
        self.count += 1

    def _open(self) -> IO[str]:
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("a", encoding="utf-8")
        return self._handle

    def close(self) -> None:
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            self._handle = None
