"""Log output: plain lines, or one JSON object per line (`--log-format json`) for shippers.

Progress is reported as events (`file_done`, `window_done`, `run_done`): a message plus
structured fields. In text they read `window_done window=... delivered=12`; in JSON each is
an object `{"time", "level", "logger", "event", ...fields}`. Secrets never reach a log line:
the fields are counts, names and times.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

EVENTS = logging.getLogger("ingest.events")


def event(name: str, **fields: Any) -> None:
    """Log one progress event (INFO)."""
    EVENTS.info(name, extra={"event": name, "fields": fields})


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        if fields is not None:
            record.msg = " ".join(
                [record.getMessage(), *(f"{k}={_text(v)}" for k, v in fields.items())]
            )
            record.args = ()
        return super().format(record)


def _text(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if " " in text or not text else text


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
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("ingest").setLevel(level)
