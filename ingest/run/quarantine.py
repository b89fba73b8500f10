"""Records that cannot become spans go to a JSONL file with their source, line and reason.

Nothing is dropped silently (DESIGN.md, invariant 3): every quarantined line is written here
and counted in the run summary. The raw line is kept (secrets masked, size bounded) so the
record can be fixed and imported again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from ingest.convert.redact import scrub
from ingest.run.logs import escape
from ingest.run.state import make_private_dir, open_private, utc_now

MAX_RAW_CHARS = 20_000


class Quarantine:
    """Appends one JSON object per rejected line; the file is created on first use (owner
    only: it holds request bodies). Without a path, rejections are only counted; `echo`
    (convert's, which prints to stderr) is also told each one, as one line."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.count = 0
        self.echo: Callable[[str], None] | None = None
        self._handle: IO[str] | None = None

    def add(
        self, source: Path | str, line: int, reason: str, raw: bytes | str,
        offset: int | None = None,
    ) -> None:  # fmt: skip
        """One rejected line; `offset` (bytes of the decompressed data) for the unread rest
        of a damaged file, whose `line` is the first line not read."""
        text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
        text, reason = scrub(text), scrub(reason)
        if len(text) > MAX_RAW_CHARS:
            text = f"{text[:MAX_RAW_CHARS]}…[truncated: {len(text)} chars]"
        entry: dict[str, object] = {"time": utc_now(), "source": str(source), "line": line}
        if offset is not None:
            entry["offset"] = offset
        entry["reason"] = reason
        entry["raw"] = text
        self.count += 1
        if self.echo is not None:
            self.echo(f"{escape(str(source))}:{line}: rejected: {escape(reason)}")
        if self.path is None:
            return
        handle = self._open()
        handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
        handle.flush()

    def _open(self) -> IO[str]:
        if self._handle is None:
            assert self.path is not None
            make_private_dir(self.path.parent)
            self._handle = open_private(self.path, "a")
        return self._handle

    def close(self) -> None:
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            self._handle = None


def default_quarantine_path(state_dir: Path) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return state_dir / "quarantine" / f"{stamp}-{os.getpid()}.jsonl"
