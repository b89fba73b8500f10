"""Tolerant parsing of one Portkey log (a dict from an export line) into a `LogRecord`.

Exports differ in types between sources (see docs/design.md): dates as ISO-8601 or JavaScript
strings, booleans as 0/1, objects as JSON strings, missing values as null, "" or absent.
`parse_record` accepts all of them, never guesses silently (every type coercion and every
value it had to drop is listed on the record), and raises `RecordError` only when the log
cannot become a span at all: no id or no usable timestamp.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ingest.convert.redact import scrub
from ingest.errors import RecordError

# The 20 fields an export can carry (Portkey's `requested_data` enum, in spec order).
EXPORT_FIELDS: tuple[str, ...] = (
    "id", "trace_id", "created_at", "request", "response", "is_success", "ai_org", "ai_model",
    "req_units", "res_units", "total_units", "request_url", "cost", "cost_currency",
    "response_time", "response_status_code", "mode", "config", "prompt_slug", "metadata",
)  # fmt: skip

# Portkey's export docs name five of them otherwise (spec name -> docs name). No authoritative
# sample exists, so a line may use either: the spec's name wins, a disagreement is noted.
DOCS_NAMES: dict[str, str] = {
    "ai_org": "ai_provider", "req_units": "request_tokens", "res_units": "response_tokens",
    "total_units": "total_tokens", "response_status_code": "status_code",
}  # fmt: skip

# Ids and metadata keys are bounded at parse, so nothing downstream (dedup sets, the parent
# index, caches, the state) holds a megabyte id. A longer id becomes its digest (stable: the
# same id always gives the same digest, hence the same span); a longer key is cut and tagged.
MAX_ID_CHARS = 256
MAX_KEY_CHARS = 256
_ID_FIELDS = ("trace_id", "span_id", "parent_span_id")

# Fields a richer export or `GET /logs/{id}` (metrics) may add; used when present.
ENRICHMENT_FIELDS: tuple[str, ...] = (
    "span_id", "parent_span_id", "span_name", "cache_status", "retry_success_count",
    "last_used_option_index", "virtual_key", "workspace_slug",
)  # fmt: skip

# `Sat Jul 25 2026 11:14:18 GMT+0000 (Coordinated Universal Time)`: JavaScript Date.toString().
_JS_DATE = re.compile(
    r"^\w{3} (?P<mon>\w{3}) (?P<day>\d{1,2}) (?P<year>\d{4}) "
    r"(?P<time>\d{2}:\d{2}:\d{2}) GMT(?P<sign>[+-])(?P<hh>\d{2})(?P<mm>\d{2})"
)
_MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
)}  # fmt: skip
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One Portkey log, with every field in one known type (None when missing)."""

    log_id: str
    created_at: datetime  # timezone-aware UTC
    trace_id: str | None = None
    request: Any = None  # provider request body: dict, list or (unparseable) str
    response: Any = None  # provider response body: dict, list or (unparseable) str
    is_success: bool | None = None
    ai_org: str | None = None
    ai_model: str | None = None
    req_units: float | None = None
    res_units: float | None = None
    total_units: float | None = None
    request_url: str | None = None
    cost: float | None = None  # cents
    cost_currency: str | None = None
    response_time_ms: float | None = None
    status_code: int | None = None
    mode: str | None = None
    config: str | None = None
    prompt_slug: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    # Present only in richer exports or after enrichment.
    span_id: str | None = None
    parent_span_id: str | None = None
    span_name: str | None = None
    cache_status: str | None = None
    retry_success_count: int | None = None
    last_used_option_index: int | None = None
    virtual_key: str | None = None
    workspace_slug: str | None = None  # the workspace, when the log carries it (--enrich)
    # What parsing changed: "field:from->to" type coercions, and values it had to drop.
    coercions: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


class _Notes:
    """Collects coercions and warnings while one record is parsed."""

    def __init__(self) -> None:
        self.coercions: list[str] = []
        self.warnings: list[str] = []

    def coerced(self, name: str, how: str) -> None:
        self.coercions.append(f"{name}:{how}")

    def dropped(self, name: str, value: Any, why: str) -> None:
        self.warnings.append(f"{name}: {why} ({_preview(value)}); value ignored")


def parse_record(raw: Any) -> LogRecord:
    """Turn one decoded export line into a `LogRecord`, or raise `RecordError`."""
    if not isinstance(raw, Mapping):
        raise RecordError(f"line is JSON but not an object (got {json_type(raw)})")
    notes = _Notes()
    id_field = "id" if not _missing(raw.get("id")) or "_id" not in raw else "_id"
    raw_id = raw.get(id_field)  # the single-log API calls it `_id`
    if not _missing(raw_id) and (not isinstance(raw_id, str | int) or isinstance(raw_id, bool)):
        raise RecordError(f"no usable log id: field '{id_field}' is {_a(json_type(raw_id))}")
    log_id = _text(raw, id_field, notes)
    if log_id is None:
        raise RecordError("no log id: field 'id' is missing or empty")
    log_id = _bounded_id(id_field, log_id, notes)
    created_at = _timestamp(raw.get("created_at"), notes)
    start = _otlp_start(created_at)
    values: dict[str, Any] = {
        "trace_id": _text(raw, "trace_id", notes),
        "request": _body(raw, "request", notes),
        "response": _body(raw, "response", notes),
        "is_success": _boolean(raw, "is_success", notes),
        "ai_org": _either(raw, "ai_org", _text, notes),
        "ai_model": _text(raw, "ai_model", notes),
        "req_units": _either(raw, "req_units", _number, notes),
        "res_units": _either(raw, "res_units", _number, notes),
        "total_units": _either(raw, "total_units", _number, notes),
        "request_url": _text(raw, "request_url", notes),
        "cost": _number(raw, "cost", notes),
        "cost_currency": _text(raw, "cost_currency", notes),
        "response_time_ms": _number(raw, "response_time", notes),
        "status_code": _either(raw, "response_status_code", _integer, notes),
        "mode": _text(raw, "mode", notes),
        "config": _text(raw, "config", notes),
        "prompt_slug": _text(raw, "prompt_slug", notes),
        "metadata": _metadata(raw, notes),
        "span_id": _text(raw, "span_id", notes),
        "parent_span_id": _text(raw, "parent_span_id", notes),
        "span_name": _text(raw, "span_name", notes),
        "cache_status": _text(raw, "cache_status", notes),
        "retry_success_count": _integer(raw, "retry_success_count", notes),
        "last_used_option_index": _integer(raw, "last_used_option_index", notes),
        "virtual_key": _text(raw, "virtual_key", notes),
        "workspace_slug": _text(raw, "workspace_slug", notes),
    }
    for name in _ID_FIELDS:
        if values[name] is not None:
            values[name] = _bounded_id(name, values[name], notes)
    elapsed = values["response_time_ms"]
    # Compared, not rounded: a finite duration in ms can overflow to inf in ns
    if elapsed is not None and elapsed * 1_000_000 > MAX_NS - start:
        notes.dropped("response_time", raw.get("response_time"), "ends after 2262")
        values["response_time_ms"] = None
    return LogRecord(
        log_id=log_id,
        created_at=created_at,
        coercions=tuple(notes.coercions),
        warnings=tuple(notes.warnings),
        **values,
    )


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, for messages users read."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _a(noun: str) -> str:
    return f"an {noun}" if noun[0] in "aeiou" else f"a {noun}"


# ---- field readers: each returns None for null, "" and absent -------------------------


def _either(
    raw: Mapping[str, Any], name: str, read: Callable[[Mapping[str, Any], str, _Notes], Any],
    notes: _Notes,
) -> Any:  # fmt: skip
    """Field `name` by the spec's name, else by the docs' name; a note when both are given
    and disagree (the spec's value is kept)."""
    value = read(raw, name, notes)
    alias = DOCS_NAMES[name]
    if alias not in raw:
        return value
    other = read(raw, alias, notes)
    if value is None:
        return other
    if other is not None and other != value:
        notes.warnings.append(
            f"{name} {_preview(raw[name])} and {alias} {_preview(raw[alias])} disagree; {name} kept"
        )
    return value


def _bounded_id(name: str, value: str, notes: _Notes) -> str:
    """`value`, or when longer than MAX_ID_CHARS its digest `sha256:<64 hex>` (stable)."""
    if len(value) <= MAX_ID_CHARS:
        return value
    digest = "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    notes.warnings.append(
        f"{name}: {len(value):,} characters, over {MAX_ID_CHARS}; replaced by its digest {digest}"
    )
    return digest


def bounded_key(key: str) -> str:
    """A metadata key cut to MAX_KEY_CHARS: its head and a digest of the whole (stable, and
    two long keys with one head stay two keys)."""
    if len(key) <= MAX_KEY_CHARS:
        return key
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{key[: MAX_KEY_CHARS - 28]}...[sha256:{digest}]"


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _text(raw: Mapping[str, Any], name: str, notes: _Notes) -> str | None:
    value = raw.get(name)
    if _missing(value):
        return None
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool) or not isinstance(value, int | float):
        notes.dropped(name, value, f"expected a string, got {json_type(value)}")
        return None
    notes.coerced(name, "number->string")
    return str(value)


def _number(raw: Mapping[str, Any], name: str, notes: _Notes) -> float | None:
    value = raw.get(name)
    if _missing(value):
        return None
    if isinstance(value, bool):
        notes.dropped(name, value, "expected a number, got a boolean")
        return None
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:
            notes.dropped(name, value, "too large")
            return None
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            notes.dropped(name, value, "not a number")
            return None
        if math.isfinite(number) and number >= 0:
            notes.coerced(name, "string->number")
    else:
        notes.dropped(name, value, f"expected a number, got {json_type(value)}")
        return None
    if not math.isfinite(number) or number < 0:
        notes.dropped(name, value, "not a finite, non-negative number")
        return None
    return number


def _integer(raw: Mapping[str, Any], name: str, notes: _Notes) -> int | None:
    number = _number(raw, name, notes)
    if number is None:
        return None
    if not number.is_integer():
        notes.dropped(name, raw.get(name), "not a whole number")
        return None
    if number >= 2**63:  # OTLP integers are signed 64-bit
        notes.dropped(name, raw.get(name), "too large")
        return None
    return int(number)


def _boolean(raw: Mapping[str, Any], name: str, notes: _Notes) -> bool | None:
    value = raw.get(name)
    if _missing(value):
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        notes.coerced(name, "number->bool")
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        notes.coerced(name, "string->bool")
        return value.strip().lower() in _TRUE
    notes.dropped(name, value, "not a boolean or 0/1")
    return None


def _body(raw: Mapping[str, Any], name: str, notes: _Notes) -> Any:
    value = raw.get(name)
    if _missing(value):
        return None
    if isinstance(value, dict | list):
        return value
    if isinstance(value, str):
        try:
            decoded = json.loads(value)
        except (ValueError, RecursionError):
            notes.coerced(name, "kept-as-text")
            return value
        if isinstance(decoded, dict | list):
            notes.coerced(name, "json-string->object")
            return decoded
        notes.coerced(name, "kept-as-text")
        return value
    notes.dropped(name, value, f"expected an object, got {json_type(value)}")
    return None


def _metadata(raw: Mapping[str, Any], notes: _Notes) -> dict[str, Any]:
    value = raw.get("metadata")
    if _missing(value):
        return {}
    if isinstance(value, str):
        try:
            decoded = json.loads(value)
        except (ValueError, RecursionError):
            notes.dropped("metadata", value, "not valid JSON")
            return {}
        if not isinstance(decoded, dict):
            notes.dropped("metadata", value, "not a JSON object")
            return {}
        notes.coerced("metadata", "json-string->object")
        value = decoded
    if not isinstance(value, dict):
        notes.dropped("metadata", value, "not a JSON object")
        return {}
    if any(len(key) > MAX_KEY_CHARS for key in value):
        long = sum(len(key) > MAX_KEY_CHARS for key in value)
        notes.warnings.append(f"metadata: {long} key(s) over {MAX_KEY_CHARS} characters cut")
        value = {bounded_key(key): item for key, item in value.items()}
    return value


def _timestamp(value: Any, notes: _Notes) -> datetime:
    if _missing(value):
        raise RecordError("no usable timestamp: field 'created_at' is missing or empty")
    if isinstance(value, bool):
        raise RecordError(f"no usable timestamp: created_at is a boolean ({value})")
    if isinstance(value, int | float):
        # Epoch numbers: milliseconds when too large to be seconds (after year 5138).
        seconds = value / 1000 if value > 1e11 else value
        notes.coerced("created_at", "epoch->datetime")
        try:
            return datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise _out_of_range(value) from None
    if not isinstance(value, str):
        raise RecordError(f"no usable timestamp: created_at is {_a(json_type(value))}")
    text = value.strip()
    if match := _JS_DATE.match(text):
        return _from_js_date(match, text)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise RecordError(
            f"no usable timestamp: created_at {_preview(text)} is neither ISO-8601 "
            "nor a JavaScript date string"
        ) from None
    if parsed.tzinfo is None:
        notes.coerced("created_at", "no-timezone->UTC")
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise _out_of_range(text) from None


# OTLP carries times as nanoseconds since 1970 in 64 bits; Phoenix reads them signed.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_NS = 2**63 - 1
_MICROSECOND = timedelta(microseconds=1)


def start_ns(moment: datetime) -> int:
    """Nanoseconds since 1970 of an aware datetime (microsecond precision)."""
    return (moment - EPOCH) // _MICROSECOND * 1000


def _otlp_start(created_at: datetime) -> int:
    """The start in nanoseconds, or `RecordError` when OTLP cannot carry it."""
    when = created_at.isoformat()
    if created_at < EPOCH:
        raise RecordError(
            f"no usable timestamp: created_at {when} is before 1970-01-01, which OTLP cannot carry"
        )
    ns = start_ns(created_at)
    if ns > MAX_NS:
        raise RecordError(
            f"no usable timestamp: created_at {when} is after 2262-04-11, "
            "beyond OTLP's 64-bit nanoseconds"
        )
    return ns


def _out_of_range(value: Any) -> RecordError:
    return RecordError(f"no usable timestamp: created_at {_preview(value)} is out of range")


def _from_js_date(match: re.Match[str], text: str) -> datetime:
    month = _MONTHS.get(match["mon"])
    try:
        if month is None:
            raise ValueError(match["mon"])
        hours, minutes, seconds = (int(part) for part in match["time"].split(":"))
        local = datetime(int(match["year"]), month, int(match["day"]), hours, minutes, seconds)
    except ValueError:
        raise RecordError(
            f"no usable timestamp: created_at {_preview(text)} is not a valid date"
        ) from None
    offset = timedelta(hours=int(match["hh"]), minutes=int(match["mm"]))
    if match["sign"] == "-":
        offset = -offset
    try:
        return (local - offset).replace(tzinfo=UTC)
    except OverflowError:
        raise _out_of_range(text) from None


def _preview(value: Any, limit: int = 60) -> str:
    """A short quote of a value for a reason or warning: escaped (repr), secrets masked
    before cutting, so that neither stderr, a quarantine file nor a span shows one."""
    if isinstance(value, str | bytes) and len(value) > 10 * limit:
        value = value[: 10 * limit]  # a 30 MB value is not copied to quote 60 characters
    text = scrub(repr(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


_QUARANTINE_KEYS = frozenset({"time", "source", "line", "reason"})
_QUARANTINE_LINES = ("raw", "record")  # the line as read, or with its secrets masked


def unwrap_quarantined(raw: Any) -> Any:
    """A quarantine entry ({time, source, line, reason, record[, raw]}) stands for its
    original line (`raw` when kept, else `record`), so a fixed quarantine file can be
    imported as it is."""
    if not isinstance(raw, dict) or not set(raw) >= _QUARANTINE_KEYS:
        return raw
    lines = set(raw) - _QUARANTINE_KEYS
    text = next((raw[key] for key in _QUARANTINE_LINES if key in raw), None)
    if lines and lines <= set(_QUARANTINE_LINES) and isinstance(text, str):
        try:
            return json.loads(text)
        except ValueError as exc:
            raise RecordError(f"quarantined line is still not valid JSON: {exc}") from None
    return raw
