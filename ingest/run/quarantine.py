"""Records that cannot become spans go to a JSONL file with their source, line and reason.

Nothing is dropped silently (docs/design.md, invariant 3): every quarantined line is written here
and counted in the run summary. The line is kept as `record` so it can be fixed and imported
again: decoded, its secrets masked by the run's rules (`Redactor.clean`, also inside JSON held
in strings), encoded again, size bounded. The line as read (`raw`, secrets in clear) only with
`--quarantine-raw`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from ingest.convert.redact import Redactor, active
from ingest.run.logs import escape
from ingest.run.state import make_private_dir, open_private, utc_now

MAX_RAW_CHARS = 20_000


class Quarantine:
    """Appends one JSON object per rejected line; the file is created on first use (owner
    only: it holds request bodies). Without a path, rejections are only counted; `echo`
    (convert's, which prints to stderr) is also told each one, as one line. `redactor` holds
    the run's rules (by default the active ones); `keep_raw` also writes the line unmasked."""

    def __init__(
        self, path: Path | None, redactor: Redactor | None = None, keep_raw: bool = False
    ) -> None:
        self.path = path
        self.redactor = redactor or active()
        self.keep_raw = keep_raw
        self.count = 0
        self.echo: Callable[[str], None] | None = None
        self._handle: IO[str] | None = None

    def add(
        self, source: Path | str, line: int, reason: str, raw: bytes | str,
        offset: int | None = None,
    ) -> None:  # fmt: skip
        """One rejected line; `offset` (bytes of the decompressed data) for the unread rest
        of a damaged file, whose `line` is the first line not read."""
        self.count += 1
        if self.echo is not None:
            shown = self.redactor.scrub(reason, where="stderr")
            self.echo(f"{escape(str(source))}:{line}: rejected: {escape(shown)}")
        if self.path is None:
            return
        text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
        entry: dict[str, object] = {"time": utc_now(), "source": str(source), "line": line}
        if offset is not None:
            entry["offset"] = offset
        entry["reason"] = self.redactor.scrub(reason, where="quarantine")
        entry["record"] = _bounded(self._masked(text))
        if self.keep_raw:
            entry["raw"] = _bounded(text)
        handle = self._open()
        handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
        handle.flush()

    def _masked(self, text: str) -> str:
        """The line with its secrets masked: as a decoded record when it is JSON (secrets
        inside JSON strings included), as text otherwise."""
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):
            return self.redactor.scrub(text, where="quarantine")
        before = self.redactor.counts["quarantine"]
        cleaned = self.redactor.clean(value, where="quarantine")
        if self.redactor.counts["quarantine"] == before:
            return text.replace("\x00", "")
        return json.dumps(cleaned, ensure_ascii=False)

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


def _bounded(text: str) -> str:
    if len(text) <= MAX_RAW_CHARS:
        return text
    return f"{text[:MAX_RAW_CHARS]}…[truncated: {len(text)} chars]"


def default_quarantine_path(state_dir: Path) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return state_dir / "quarantine" / f"{stamp}-{os.getpid()}.jsonl"
