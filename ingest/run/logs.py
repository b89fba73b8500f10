"""Log output: plain lines, or one JSON object per line (`--log-format json`) for shippers.

Progress is reported as events (`file_done`, `window_done`, `run_done`): a message plus
structured fields. In text they read `window_done window=... delivered=12`; in JSON each is
an object `{"time", "level", "logger", "event", ...fields}`. Secrets never reach a log line:
the fields are counts, names and times.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

from ingest.convert.redact import scrub

EVENTS = logging.getLogger("ingest.events")


def event(name: str, **fields: Any) -> None:
    """Log one progress event (INFO)."""
    EVENTS.info(name, extra={"event": name, "fields": fields})


class TextFormatter(logging.Formatter):
    def __init__(self, terminal: bool = False) -> None:
        super().__init__("%(asctime)s %(levelname)s %(message)s")
        self.terminal = terminal

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        if fields is not None:
            fields = self.shown_fields(record, fields)
            record.msg = " ".join(
                [record.getMessage(), *(f"{k}={_text(v)}" for k, v in fields.items())]
            )
        else:
            record.msg = escape(record.getMessage())
        record.args = ()
        return super().format(record)

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
    text = escape(scrub(value[: 2 * limit]))
    return f"'{text}'" if len(text) <= limit else f"'{text[:limit]}…[{len(value)} chars]'"


_SHORT_RUN_DONE = ("command", "outcome", "exit_code", "read", "delivered", "already_present",
                   "duplicates", "quarantined", "windows_done", "failed", "warned")  # fmt: skip


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
            payload.update(fields)
        else:
            payload["message"] = record.getMessage()
        if record.exc_info and record.levelno >= logging.DEBUG:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


_STARTED: list[logging.Handler] = []


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
    if quiet:
        level = logging.ERROR
    elif verbose >= 2:
        level = logging.DEBUG
    elif verbose == 1 or not interactive or fmt == "json":
        level = logging.INFO
    else:
        level = logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter(interactive))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    _STARTED[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("ingest").setLevel(level)
