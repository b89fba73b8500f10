"""What a run tells its operator as it goes: log lines, and where it is for a progress line.

Log lines are plain, or one JSON object per line (`--log-format json`) for shippers. Where a
run is after each committed batch goes out as `progress` events on their own logger, never a
log line: on a terminal the cli draws them as one live line (cli/report.py), elsewhere
nothing handles them.

Progress is reported as events (`file_done`, `window_done`, `run_done`): a message plus
structured fields. In text they read `window_done window=... delivered=12`; in JSON each is
an object `{"time", "level", "logger", "event", ...fields}`. Secrets never reach a log line:
the fields are counts, names and times, and every message and text field goes through the
run's redaction rules (`redact.active()`) and is escaped.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ingest.convert.records import LogRecord
from ingest.convert.redact import active

EVENTS = logging.getLogger("ingest.events")


def event(name: str, **fields: Any) -> None:
    """Log one progress event (INFO)."""
    EVENTS.info(name, extra={"event": name, "fields": fields})


def last_event(name: str, **fields: Any) -> None:
    """The run's last event (`run_done`): logged wherever events are (off a terminal, with
    `--log-format json` or `-v`), also under `-q`, since monitoring parses it."""
    if EVENTS.isEnabledFor(logging.INFO):
        event(name, **fields)
    elif _EVENTS_SHOWN and _EVENTS_SHOWN[0]:  # -q: past the logger's level, to its handler
        record = EVENTS.makeRecord(EVENTS.name, logging.INFO, __file__, 0, name, (), None,
                                   extra={"event": name, "fields": fields})  # fmt: skip
        EVENTS.handle(record)


class TextFormatter(logging.Formatter):
    def __init__(self, terminal: bool = False) -> None:
        super().__init__("%(asctime)s %(levelname)s %(message)s")
        self.terminal = terminal

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        if fields is not None:
            fields = self.shown_fields(record, fields)
            record.msg = " ".join(
                [record.getMessage(), *(f"{k}={_text(_masked(v))}" for k, v in fields.items())]
            )
        else:
            record.msg = escape(_masked(record.getMessage()))
        record.args = ()
        return super().format(record)

    def formatException(self, ei: Any) -> str:
        return str(_masked(super().formatException(ei)))

    def shown_fields(self, record: logging.LogRecord, fields: dict[str, Any]) -> dict[str, Any]:
        """On a terminal, `run_done` is short (outcome, exit code, counts): the error was
        just printed as `Error: ...` above it. Off a terminal the full event is kept."""
        if not self.terminal or getattr(record, "event", None) != "run_done":
            return fields
        return {k: v for k, v in fields.items() if k in _SHORT_RUN_DONE}


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape(text: str) -> str:
    """Control characters (newlines, terminal escapes) as visible escapes: a record's
    value cannot forge a log line or drive the terminal."""
    return _CONTROL.sub(lambda m: json.dumps(m.group())[1:-1], text)


def shown(value: str, limit: int = 120) -> str:
    """A value from input (a log id) fit for a report line: secrets masked, control
    characters escaped, quoted, cut after `limit` characters."""
    # escaped first (a NUL stays visible), then masked with the run's rules
    text = active().scrub(escape(value[: 2 * limit]), where="logs")
    return f"'{text}'" if len(text) <= limit else f"'{text[:limit]}…[{len(value)} chars]'"


_SHORT_RUN_DONE = ("command", "outcome", "exit_code", "read", "delivered", "already_present",
                   "duplicates", "quarantined", "windows_done", "failed", "warned")  # fmt: skip


def _masked(value: Any) -> Any:
    """A text value with the run's secrets masked (counted as `logs`); other values as
    they are."""
    return active().scrub(value, where="logs") if isinstance(value, str) else value


def _text(value: Any) -> str:
    text = str(value)
    if " " in text or '"' in text or "=" in text or not text or _CONTROL.search(text):
        return json.dumps(text)
    return text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": getattr(record, "event", "log"),
        }
        fields = getattr(record, "fields", None)
        if fields is not None:
            payload.update({key: _masked(value) for key, value in fields.items()})
        else:
            payload["message"] = _masked(record.getMessage())
        if record.exc_info and record.levelno >= logging.DEBUG:
            payload["exception"] = _masked(self.formatException(record.exc_info))
        return json.dumps(payload, default=str)


_STARTED: list[logging.Handler] = []
_EVENTS_SHOWN: list[bool] = []  # whether this run logs events when -q is left out


def logging_started() -> bool:
    """Whether this run's logging is set up (and still installed)."""
    handler = _STARTED[0] if _STARTED else None
    return (
        isinstance(handler, logging.StreamHandler)
        and handler in logging.getLogger().handlers
        and handler.stream is sys.stderr
    )


def setup_logging(verbose: int, quiet: bool, fmt: str = "text") -> None:
    """Our log lines at the chosen level (events at INFO: shown off a terminal, where there
    is no progress display); other libraries only when they warn."""
    interactive = sys.stderr.isatty()
    if verbose >= 2:
        level = logging.DEBUG
    elif verbose == 1 or not interactive or fmt == "json":
        level = logging.INFO
    else:
        level = logging.WARNING
    _EVENTS_SHOWN[:] = [level <= logging.INFO]
    if quiet:  # only errors, and run_done (last_event)
        level = logging.ERROR
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter(interactive))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    _STARTED[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("ingest").setLevel(level)


# ---- where the run is: the data of the terminal's progress line, drawn by the cli (the one
# handler of PROGRESS, installed only when stderr is a terminal); off a terminal the events
# above are the record instead

PROGRESS = logging.getLogger("ingest.progress")
PROGRESS.propagate = False  # not a log line
PROGRESS.setLevel(logging.INFO)  # -q and -v set log lines' level, not the line's


def progress_event(
    where: str, verified: int, present: int, done: float | None, elapsed_s: float
) -> None:
    """After a committed batch: where the run is, spans verified and already there so far,
    the finished fraction of the run when known (`done`, 0..1, for the ETA) and its time."""
    if PROGRESS.handlers:  # nothing to build when nothing draws
        fields = {"where": where, "verified": verified, "present": present, "done": done,
                  "elapsed_s": elapsed_s}  # fmt: skip
        PROGRESS.info("progress", extra={"event": "progress", "fields": fields})


def progress_end() -> None:
    """The run is over: the line is cleared before its summary or error is printed."""
    if PROGRESS.handlers:
        PROGRESS.info("progress_end", extra={"event": "progress_end", "fields": {}})


def describe_file(path: Path, line: int, offset: int) -> tuple[str, float | None]:
    """`file: line N`, and the fraction of the file done (plain files; gzip has no size)."""
    if path.name.endswith(".gz"):
        return f"{path.name}: line {line:,}", None
    try:
        size = path.stat().st_size
    except OSError:
        return f"{path.name}: line {line:,}", None
    return f"{path.name}: line {line:,}", offset / size if size else None


@dataclass
class RunSummary:
    files: int = 0
    files_already_done: int = 0
    read: int = 0  # non-blank lines read in this run
    delivered: int = 0  # spans sent by this run and read back from Phoenix
    already_present: int = 0  # spans Phoenix had before this run sent them
    duplicates: int = 0  # log ids already seen earlier in this run
    quarantined: int = 0
    sampled_out: int = 0  # logs whose trace --sample left out: done, not sent
    route_fallbacks: int = 0  # logs whose routing value was no project name: default project
    projects: Counter[str] = field(default_factory=Counter)  # spans of this run per project
    retried: int = 0  # HTTP retries towards Phoenix
    resent: int = 0  # spans sent again because Phoenix lost them after acknowledging
    annotations: int = 0  # gateway annotations written and read back
    annotation_failures: int = 0
    coercions: Counter[str] = field(default_factory=Counter)
    records_with_warnings: int = 0
    # Secrets masked per output (spans, quarantine, stderr, logs) by the run's rules.
    redacted: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    quarantine_path: Path | None = None
    earliest: datetime | None = None  # start times of the logs seen, for the Phoenix link
    latest: datetime | None = None

    @property
    def rate(self) -> float:
        return self.delivered / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def saw(self, record: LogRecord) -> None:
        self.widen(record.created_at, record.created_at)
        self.coercions.update(record.coercions)
        if record.warnings:
            self.records_with_warnings += 1

    def widen(self, earliest: datetime | str | None, latest: datetime | str | None) -> None:
        """Extend the time range of the logs this run covered (for the Phoenix link)."""
        if isinstance(earliest, str):
            earliest = datetime.fromisoformat(earliest)
        if isinstance(latest, str):
            latest = datetime.fromisoformat(latest)
        if earliest is not None:
            self.earliest = earliest if self.earliest is None else min(self.earliest, earliest)
        if latest is not None:
            self.latest = latest if self.latest is None else max(self.latest, latest)

    def to_dict(self) -> dict[str, Any]:
        plain = ("files", "files_already_done", "read", "delivered", "already_present",
                 "duplicates", "quarantined", "sampled_out", "route_fallbacks")  # fmt: skip
        return {
            **{name: getattr(self, name) for name in plain},
            "projects": dict(sorted(self.projects.items())),
            "retried": self.retried,
            "resent": self.resent,
            "annotations": self.annotations,
            "annotation_failures": self.annotation_failures,
            "coerced": dict(sorted(self.coercions.items())),
            "records_with_warnings": self.records_with_warnings,
            "redacted": self.redacted,
            "elapsed_s": round(self.elapsed_s, 3),
            "rate_per_s": round(self.rate, 1),
            "quarantine_file": str(self.quarantine_path) if self.quarantine_path else None,
            "earliest": _iso(self.earliest),
            "latest": _iso(self.latest),
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat(timespec="microseconds") if moment else None
