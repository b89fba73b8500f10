"""A local test double of Portkey's logs-export, single-log and analytics HTTP APIs.

It is the only Portkey the project's tests ever see. Every behaviour below follows
Portkey's API as docs/design.md ("Portkey") describes it; where that is silent, the choice made
here is marked CHOSEN.

Servers (all bound to 127.0.0.1 on free ports; nothing else is ever contacted)
- API ("control plane"): `base_url` = `http://127.0.0.1:<port>/v1`. Paths are matched
  after the `/v1` prefix; a trailing `/` and a trailing `?` are accepted.
- Gateway ("data plane"): `GET /logs/{id}` is served by the API server, or, with
  `separate_gateway=True`, only by a third server at `gateway_base_url`.
- Object storage: the signed download URLs point here, `storage_base_url`.
- Every request to any server is recorded (`requests`, `storage_requests`) with method, raw path,
  matched route, lower-cased headers, body and the fault it consumed.

Auth and errors
- `x-portkey-api-key` is required on every API and gateway route; missing or unknown key -> 401
  `{"success": false, "data": {"message": ..., "errorCode": "AB05"}}`.
- Keys map to scopes (`keys=`; the default key has all of them). Export routes need
  `logs.export` (else 403 AB03); `GET /logs/{id}` needs one of `logs.view`, `logs.read`,
  `completions.write`, `logs.write`; analytics needs `analytics.view`.
- Unknown `x-portkey-*` headers are ignored. Validation errors are 400 AB01 with a message
  naming the field; unknown export or log ids 404 AB08. CHOSEN: an unknown route is 404 AB02.
- CHOSEN: faults are applied before authentication, like a proxy or rate limiter in front.
- Success bodies are unwrapped (no `data` envelope).
- CHOSEN: a request body is only read as JSON when its Content-Type says json (as Express's
  json parser does); anything else counts as an empty body.

Export jobs
- `POST /logs/exports`: `filters` (object) and `requested_data` (non-empty list from the
  20-value enum) are required, and so is `description` (live behaviour, [3P-LIVE]); an empty
  string counts as missing (the SDK drops "" values). `workspace_id` is a workspace SLUG; any other
  value (e.g. a UUID) matches nothing but is accepted. Returns `{id, total, object}` with
  status `draft`. `total` is the true count of matching logs, ignoring paging, and may exceed
  50,000.
- Time window: `time_of_generation_min <= created_at < time_of_generation_max` (half-open);
  each accepts `2024-10-20` (midnight UTC), or ISO date-time with `Z`, an offset, or none
  (UTC). Other filters honoured: `ai_model`, `trace_id`, `status_code`, `virtual_keys`, `configs`,
  `prompt_slug`, `workspace_slug` (exact match; CHOSEN: all accept comma-separated lists),
  `ai_org_model` (`provider__model` list), `metadata` (every pair must match), and the inclusive
  ranges `total_units_*`, `cost_*`, `prompt_token_*` (req_units), `completion_token_*`
  (res_units). CHOSEN: an unknown filter key is 400 AB01 naming it (catches the bot-docs
  `created_at: {gte}` form); `weighted_feedback_*` is valid Portkey but not modelled here,
  so it is a loud 400 that says "not implemented by the double" rather than a silent mismatch.
- Paging: the file holds `matches[offset : offset + page]` where
  `page = min(page_size or export_cap, export_cap)` and `offset = current_page * page`
  (`current_page` 0-based). `export_cap` defaults to 50,000; tests may lower it (e.g. 100) to
  simulate the cap. Truncation at the cap is silent. `page_size` above 50,000, below 1 or not an
  integer, and a negative `current_page`, are 400 AB01.
- `GET /logs/exports/{id}` -> ExportItem: id, organisation_id, filters (echoed as sent),
  requested_data, status, description, created_at, last_updated_at, created_by, workspace_id,
  object, total_records. CHOSEN: `total_records` equals `total` (the matched count, also after a
  PUT), not the number of lines in the file; `workspace_id` is the slug sent, or null.
- `GET /logs/exports` (also `...?` and `?workspace_id=<slug>`; blank means absent) ->
  `{object: "list", total, data}`; CHOSEN: newest first. If `workspaces=` is configured, a
  slug outside it gives 500 AB04, as [3P-LIVE] observed.
- `PUT /logs/exports/{id}`: `filters` required; CHOSEN: it REPLACES the filters (PUT
  semantics), replaces `requested_data`/`workspace_id`/`description` only when sent, recomputes
  `total`, returns `{id, total, object}`. Allowed only in `draft` or `failed`; CHOSEN: otherwise
  400 AB01 (the same code Portkey uses for cancelling a draft).
- `POST .../start`: from `draft` or `failed` ("Start Again") -> `in_progress`,
  `{message: "Export started", object: "export"}`. CHOSEN: from any other status 400 AB01.
- Job progress (CHOSEN): each `GET .../{id}` while in progress is one poll. The job completes
  once it has been polled `job_polls` times (default 1: the first poll says in_progress, the
  next success) or `job_seconds` have passed, whichever comes first; set both to None and call
  `finish_export()` to complete it by hand. The file is built when the job completes, from the
  logs stored at that moment.
- `POST .../cancel`: 400 AB01 unless `in_progress`; then `stopped`,
  `{message: "Export cancelled", object: "export"}` (CHOSEN message).
- `GET .../download`: `{signed_url}` once `success`; before that 400 AB01 naming the status
  (CHOSEN). Each call issues a fresh URL on the storage server:
  `/exports/<id>.jsonl?X-Amz-Algorithm=...&X-Amz-Date=...&X-Amz-Expires=...&X-Amz-Signature=...`.
  It expires after `url_ttl` seconds (CHOSEN default 3600): then 403 with S3's XML
  `<Code>AccessDenied</Code><Message>Request has expired</Message>`. A wrong signature is 403
  `SignatureDoesNotMatch`; an `Authorization` header is 400 `InvalidArgument` (S3 allows one
  auth mechanism). The storage server never needs the Portkey key, and `storage_saw_api_key`
  tells whether one ever reached it.
- JSONL: one compact JSON object per line, `\\n` after every line; records in
  ascending `created_at` (then id); each line has exactly the requested keys, in the order
  requested (duplicates dropped). `created_at` is JavaScript `Date.toString()` in UTC
  (`Sat Jul 25 2026 11:14:18 GMT+0000 (Coordinated Universal Time)`); request/response/metadata
  are objects; `is_success` is a bool; a missing value is `null` (CHOSEN).

Single log
- `GET /logs/{id}` -> LogObject: `_id`, `request` {url, method, portkeyHeaders (trace, span,
  parent span, span name, metadata as a JSON string), body when stored}, `response` {status,
  responseTime, lastUsedOptionJsonPath (`$.config.options[i]`, or "" when there is no index),
  body when stored}, `organisation_id`, `created_at` (ISO with ms and Z), `metrics` (every
  AnalyticsMetrics field of the spec; `created_at` without a zone; metadata as the parallel
  `metadata.key`/`metadata.value` arrays). A log stored with `request`/`response` None ("do not
  track") has no bodies.

Analytics
- `GET /analytics/graphs/{requests,cost,tokens,latency,errors}` ->
  `{summary, data_points, object: "analytics-graph"}`; `GET /analytics/summary/cache` ->
  `{summary: {hits, avg_latency, total_requests, cache_speedup}, object: "analytics-summary"}`.
- `time_of_generation_min`/`max` are required (400 AB01 naming the missing one), half-open.
  `workspace_slug` is optional; without it the `default_workspace` is used (stored logs
  without a slug live there). Also honoured: `status_code`, `trace_id`, `span_id`,
  `virtual_keys`, `configs`, `prompt_slug`, `api_key_ids`, `cache_status`, `ai_org_model`
  (comma-separated), `metadata` (stringified JSON), and the `*_min/_max` ranges; CHOSEN: other
  query parameters are ignored.
- CHOSEN buckets: UTC-aligned hours when the window is at most 2 days, else days (or
  `analytics_bucket=`); empty buckets are included; `timestamp` is the bucket start (ISO, Z).
  cost: `total` in cents, `avg` = total / requests; tokens: `total_units` sum and per-request
  avg; latency: avg and nearest-rank p50/p90/p99 of `response_time`; errors: `is_success` false;
  cache: hits are `HIT` and `SEMANTIC HIT`, `avg_latency` is over hits, `cache_speedup` is the
  percentage by which hits are faster than the rest (0 when either side is empty).

Faults: `double.faults.queue(route, fault, times=1)`, `always(route, fault)`, `clear()`.
A route is a template such as `"POST /logs/exports"`, `"GET /logs/exports/{id}"`,
`"GET /exports/{file}"` (the storage server), or `"*"` (any API or gateway route). Each request
consumes at most one fault: the first matching entry, in the order they were added.
- Any route: `Fault.rate_limited(retry_after=None|n)` (429 AB06, `Retry-After` only when given),
  `Fault.server_error()` (500 AB04), `Fault.error(status, code, message)`, `Fault.html_502()`
  (an HTML page, not JSON), `Fault.dropped_connection(after_processing=False)` (socket closed
  with no response; with `after_processing=True` the request takes effect first),
  `Fault.slow(seconds)`, `Fault.cut_body()` (full Content-Length declared, body cut mid-line,
  connection closed).
- `GET /logs/exports/{id}`: `Fault.unknown_status("queued")` (the poll still counts; only the
  reported status is replaced).
- `POST /logs/exports/{id}/start`: `Fault.job_failed(polls=None)`, `Fault.job_stopped(polls=None)`,
  `Fault.job_stuck(polls)`: the run started by that request ends `failed`/`stopped`, or stays
  `in_progress` for `polls` polls before succeeding. Queue `job_failed()` with `times=N` for
  "fails N times, then succeeds".
- `GET /logs/exports/{id}/download`: `Fault.expired_url()` (the URL is issued already expired),
  `Fault.signed_url(url)` (answers with this URL instead of one on the storage server).
- `POST /logs/exports`: `Fault.export_id(value)` (the new export gets this id, e.g. `../../x`).
  Path parameters are percent-decoded, as a real server does; the storage URL quotes the id.
- `GET /exports/{file}`: `Fault.truncated_file()` (the object itself ends mid-line, honest
  Content-Length), `Fault.missing_lines(keep)` (fewer complete lines than expected, valid
  body), `Fault.bad_line(index, text)` (that line is not JSON).
A fault queued on a route it cannot apply to raises ValueError at once.

Field shapes (the field is wider than the spec; reference: additions 2026-12-07)
- `vocabulary="docs"`: export lines name five fields as Portkey's export docs do
  (`ai_provider`, `request_tokens`, `response_tokens`, `total_tokens`, `status_code` for
  `ai_org`, `req_units`, `res_units`, `total_units`, `response_status_code`), and
  `requested_data` may use either name.
- `auth="bearer"`: the key is read only from `Authorization: Bearer <key>` (the Prisma AIRS AI
  Gateway spec); `x-portkey-api-key` alone is 401 AB05.
- `export_api=False`: no `/logs/exports...` route (404 AB02), as in Prisma AIRS's published API.
- `prices={(provider, model): config}`: `GET /model-configs/pricing/{provider}/{model}` beside
  `/v1` (no key read) answers the config as Portkey's public pricing data has it
  (`{"pay_as_you_go": {"request_token": {"price": <cents per token>}, "response_token": ...,
  "cache_read_input_token": ..., "cache_write_input_token": ..., "additional_units":
  {"thinking_token": ...}}, "currency": "USD"}`); an unknown model is 404.

Test-facing API
- `with PortkeyDouble(**options) as double:` (or `start()`/`stop()`); options: `keys`,
  `export_cap`, `job_polls`, `job_seconds`, `url_ttl`, `separate_gateway`, `workspaces`,
  `default_workspace`, `analytics_bucket`. URLs: `base_url`, `gateway_base_url`,
  `storage_base_url`; `api_key` is the first configured key.
- `add_logs(records)`: full internal records, i.e. the 20 export fields, the 7 non-exportable
  metrics (span_id, parent_span_id, span_name, cache_status, retry_success_count,
  last_used_option_index, virtual_key), `workspace_slug` and optionally the other
  AnalyticsMetrics fields. `created_at` must be an aware datetime (or ISO string with a zone);
  unknown keys, naive times and duplicate ids raise ValueError. `make_log(created_at, **fields)`
  builds a realistic record.
- `requests`, `requests_to(route)`, `storage_requests`, `storage_saw_api_key`;
  `export_item(id)` reads an export without counting a poll; `finish_export(id, outcome)`.
- `js_date`, `iso_ms` and `parse_time` are the formats the double writes and reads.
Thread-safe (one lock around all state); `stop()` shuts every server down (waking any slow
fault) and joins its thread. `errors` lists any exception raised inside the double (tests should
assert it stays empty). CHOSEN: on a separate gateway, `GET /logs/exports` is read as the log id
"exports" (404 AB08), as a gateway serving only `/logs/:id` would.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

# The `requested_data` enum, in spec order.
EXPORT_FIELDS: tuple[str, ...] = (
    "id", "trace_id", "created_at", "request", "response", "is_success", "ai_org", "ai_model",
    "req_units", "res_units", "total_units", "request_url", "cost", "cost_currency",
    "response_time", "response_status_code", "mode", "config", "prompt_slug", "metadata",
)  # fmt: skip

# Not exportable; only `GET /logs/{id}` (metrics) carries them.
METRIC_FIELDS: tuple[str, ...] = (
    "span_id", "parent_span_id", "span_name", "cache_status", "retry_success_count",
    "last_used_option_index", "virtual_key",
)  # fmt: skip

# The other AnalyticsMetrics fields a stored log may carry (spec `AnalyticsMetrics`).
EXTRA_METRIC_FIELDS: tuple[str, ...] = (
    "workspace_slug", "organisation_name", "prompt_id", "prompt_version_id", "config_id",
    "config_version_id", "request_method", "is_proxy_call", "cache_type", "stream_mode", "source",
    "runtime", "runtime_version", "sdk_version", "internal_trace_id", "log_store_file_path_format",
    "api_key_id", "request_parsing_time", "pre_processing_time", "cache_processing_time",
    "response_parsing_time", "gateway_processing_time", "upstream_response_time",
)  # fmt: skip

LOG_FIELDS: frozenset[str] = frozenset(EXPORT_FIELDS + METRIC_FIELDS + EXTRA_METRIC_FIELDS)

# The export docs' names for five of the spec's fields (reference: additions, "Two
# vocabularies"); `vocabulary="docs"` exports under these names and accepts them when asked.
DOCS_NAMES: dict[str, str] = {
    "ai_org": "ai_provider",
    "req_units": "request_tokens",
    "res_units": "response_tokens",
    "total_units": "total_tokens",
    "response_status_code": "status_code",
}
SPEC_NAMES: dict[str, str] = {docs: spec for spec, docs in DOCS_NAMES.items()}
PRICING_ROUTE = "GET /model-configs/pricing/{provider}/{model}"  # beside /v1, no key needed
STATUSES: tuple[str, ...] = ("draft", "in_progress", "success", "failed", "stopped")
PORTKEY_EXPORT_LIMIT = 50_000

DEFAULT_API_KEY = "pk-double-0123456789abcdef"
DEFAULT_WORKSPACE = "ws-double-a1b2c3"
ORGANISATION_ID = "6b4a1e0c-3f1d-4c59-9a7e-0d2b8c1f5e11"
USER_ID = "0f3e6d2a-9b8c-4a71-8e5d-1c2b3a4f5e66"
ALL_SCOPES: frozenset[str] = frozenset(
    ("logs.export", "logs.list", "logs.view", "logs.read", "logs.write", "completions.write")
) | {"analytics.view"}

_LOG_READ_SCOPES = frozenset({"logs.view", "logs.read", "completions.write", "logs.write"})
_EXPORT_SCOPES = frozenset({"logs.export"})
_ANALYTICS_SCOPES = frozenset({"analytics.view"})

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")

HTML_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


# --------------------------------------------------------------------------- formats


def js_date(moment: datetime) -> str:
    """JavaScript `Date.prototype.toString()` of `moment` in UTC, as export files carry it."""
    t = moment.astimezone(UTC)
    return (
        f"{_DAYS[t.weekday()]} {_MONTHS[t.month - 1]} {t.day:02d} {t.year:04d} "
        f"{t:%H:%M:%S} GMT+0000 (Coordinated Universal Time)"
    )


def iso_ms(moment: datetime, *, zone: bool = True) -> str:
    """`2024-01-15T10:30:00.000Z` (or without the `Z`, as AnalyticsMetrics.created_at)."""
    t = moment.astimezone(UTC)
    return f"{t:%Y-%m-%dT%H:%M:%S}.{t.microsecond // 1000:03d}" + ("Z" if zone else "")


def parse_time(value: Any, name: str) -> datetime:
    """Date-only (midnight UTC) or ISO-8601 date-time (Z, offset, or none = UTC)."""
    if not isinstance(value, str) or not value.strip():
        raise _bad(f'"{name}" must be an ISO-8601 date or date-time string')
    text = value.strip()
    try:
        if _DATE_ONLY.match(text):
            return datetime.fromisoformat(text).replace(tzinfo=UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise _bad(f'"{name}" must be an ISO-8601 date or date-time, got {value!r}') from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def make_log(created_at: datetime, **fields: Any) -> dict[str, Any]:
    """A realistic internal log record (an OpenAI chat call); `fields` override any value."""
    log: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "trace_id": str(uuid.uuid4()),
        "created_at": created_at,
        "request": {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello!"}]},
        "response": {
            "id": "chatcmpl-123",
            "object": "chat.completion",
            "model": "gpt-4o-2024-08-06",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hi!"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
        },
        "is_success": True,
        "ai_org": "openai",
        "ai_model": "gpt-4o",
        "req_units": 9,
        "res_units": 3,
        "total_units": 12,
        "request_url": "https://api.openai.com/v1/chat/completions",
        "cost": 0.0105,
        "cost_currency": "USD",
        "response_time": 1234,
        "response_status_code": 200,
        "mode": "single",
        "config": None,
        "prompt_slug": None,
        "metadata": {"_user": "user-123"},
        "span_id": None,
        "parent_span_id": None,
        "span_name": None,
        "cache_status": "MISS",
        "retry_success_count": 0,
        "last_used_option_index": None,
        "virtual_key": None,
        "workspace_slug": DEFAULT_WORKSPACE,
    }
    log.update(fields)
    return log


# --------------------------------------------------------------------------- errors


class _ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _bad(message: str) -> _ApiError:
    return _ApiError(400, "AB01", message)


def _not_found(message: str) -> _ApiError:
    return _ApiError(404, "AB08", message)


@dataclass
class _Response:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def _json_response(payload: Any, status: int = 200) -> _Response:
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return _Response(status, body, {"Content-Type": "application/json; charset=utf-8"})


def _envelope(status: int, code: str, message: str) -> _Response:
    return _json_response(
        {"success": False, "data": {"message": message, "errorCode": code}}, status
    )


def _s3_error(status: int, code: str, message: str, **extra: str) -> _Response:
    parts = "".join(f"<{k}>{v}</{k}>" for k, v in extra.items())
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>{parts}"
        f"<RequestId>{secrets.token_hex(8).upper()}</RequestId>"
        f"<HostId>{secrets.token_urlsafe(24)}</HostId></Error>"
    ).encode()
    return _Response(status, body, {"Content-Type": "application/xml"})


# --------------------------------------------------------------------------- faults

API_ROUTES: tuple[str, ...] = (
    "POST /logs/exports",
    "GET /logs/exports",
    "GET /logs/exports/{id}",
    "PUT /logs/exports/{id}",
    "POST /logs/exports/{id}/start",
    "POST /logs/exports/{id}/cancel",
    "GET /logs/exports/{id}/download",
    "GET /logs/{id}",
    "GET /analytics/graphs/requests",
    "GET /analytics/graphs/cost",
    "GET /analytics/graphs/tokens",
    "GET /analytics/graphs/latency",
    "GET /analytics/graphs/errors",
    "GET /analytics/summary/cache",
)
STORAGE_ROUTE = "GET /exports/{file}"
_START, _RETRIEVE, _DOWNLOAD = API_ROUTES[4], API_ROUTES[2], API_ROUTES[6]

# Kinds that only make sense on one route; every other kind works anywhere.
_KIND_ROUTES: dict[str, str] = {
    "unknown_status": _RETRIEVE,
    "job": _START,
    "expired_url": _DOWNLOAD,
    "signed_url": _DOWNLOAD,
    "export_id": API_ROUTES[0],
    "truncated_file": STORAGE_ROUTE,
    "missing_lines": STORAGE_ROUTE,
    "bad_line": STORAGE_ROUTE,
}


@dataclass(frozen=True)
class Fault:
    """One injected misbehaviour. Build it with the class methods."""

    kind: str
    status: int = 0
    code: str = ""
    message: str = ""
    retry_after: str | None = None
    seconds: float = 0.0
    after_processing: bool = False
    value: str = ""  # unknown_status: the status to report; bad_line: the line's text
    outcome: str = "success"  # job
    polls: int | None = None  # job: polls before the outcome (None = the double's default)
    count: int = 0  # missing_lines: lines kept; bad_line: line index

    @classmethod
    def rate_limited(cls, retry_after: int | float | str | None = None) -> Fault:
        header = None if retry_after is None else str(retry_after)
        return cls("error", 429, "AB06", "Rate limit exceeded", retry_after=header)

    @classmethod
    def server_error(cls, message: str = "Internal Server Error") -> Fault:
        return cls("error", 500, "AB04", message)

    @classmethod
    def error(cls, status: int, code: str, message: str) -> Fault:
        return cls("error", status, code, message)

    @classmethod
    def html_502(cls) -> Fault:
        return cls("html", 502)

    @classmethod
    def dropped_connection(cls, *, after_processing: bool = False) -> Fault:
        return cls("drop", after_processing=after_processing)

    @classmethod
    def slow(cls, seconds: float) -> Fault:
        return cls("slow", seconds=seconds)

    @classmethod
    def cut_body(cls) -> Fault:
        return cls("cut")

    @classmethod
    def unknown_status(cls, value: str = "queued") -> Fault:
        return cls("unknown_status", value=value)

    @classmethod
    def job_failed(cls, polls: int | None = None) -> Fault:
        return cls("job", outcome="failed", polls=polls)

    @classmethod
    def job_stopped(cls, polls: int | None = None) -> Fault:
        return cls("job", outcome="stopped", polls=polls)

    @classmethod
    def job_stuck(cls, polls: int) -> Fault:
        return cls("job", outcome="success", polls=polls)

    @classmethod
    def expired_url(cls) -> Fault:
        return cls("expired_url")

    @classmethod
    def signed_url(cls, url: str) -> Fault:
        return cls("signed_url", value=url)

    @classmethod
    def export_id(cls, value: str) -> Fault:
        return cls("export_id", value=value)

    @classmethod
    def truncated_file(cls) -> Fault:
        return cls("truncated_file")

    @classmethod
    def missing_lines(cls, keep: int) -> Fault:
        return cls("missing_lines", count=keep)

    @classmethod
    def bad_line(cls, index: int = 0, text: str = '{"id": "cut-off') -> Fault:
        return cls("bad_line", count=index, value=text)


@dataclass
class _FaultEntry:
    route: str
    fault: Fault
    remaining: int | None  # None = persistent


class Faults:
    """Queue of faults per route; shared with the servers under the double's lock."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self._entries: list[_FaultEntry] = []

    def queue(self, route: str, fault: Fault, times: int = 1) -> None:
        """Apply `fault` to the next `times` requests on `route`."""
        if times < 1:
            raise ValueError("times must be >= 1")
        self._add(route, fault, times)

    def always(self, route: str, fault: Fault) -> None:
        """Apply `fault` to every request on `route` until `clear()`."""
        self._add(route, fault, None)

    def clear(self, route: str | None = None) -> None:
        with self._lock:
            self._entries = [e for e in self._entries if route is not None and e.route != route]

    @property
    def pending(self) -> list[tuple[str, Fault, int | None]]:
        with self._lock:
            return [(e.route, e.fault, e.remaining) for e in self._entries]

    def take(self, route: str, *, storage: bool) -> Fault | None:
        with self._lock:
            for entry in self._entries:
                if entry.route == route or (entry.route == "*" and not storage):
                    if entry.remaining is not None:
                        entry.remaining -= 1
                        if entry.remaining == 0:
                            self._entries.remove(entry)
                    return entry.fault
        return None

    def _add(self, route: str, fault: Fault, times: int | None) -> None:
        if route != "*" and route not in API_ROUTES and route != STORAGE_ROUTE:
            known = ", ".join((*API_ROUTES, STORAGE_ROUTE, "*"))
            raise ValueError(f"unknown route {route!r}; known routes: {known}")
        needed = _KIND_ROUTES.get(fault.kind)
        if needed is not None and route != needed:
            raise ValueError(f"a {fault.kind!r} fault only applies to {needed!r}, not {route!r}")
        with self._lock:
            self._entries.append(_FaultEntry(route, fault, times))


# --------------------------------------------------------------------------- state


@dataclass(frozen=True)
class RecordedRequest:
    server: str  # "api", "gateway" or "storage"
    method: str
    path: str  # as received, query string included
    route: str | None  # the matched template, e.g. "GET /logs/exports/{id}"
    headers: dict[str, str]  # lower-case names
    body: bytes
    fault: Fault | None

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class _Run:
    started: float
    outcome: str
    polls: int | None
    seconds: float | None
    polls_seen: int = 0


@dataclass
class _Export:
    id: str
    workspace_id: str | None
    filters: dict[str, Any]
    requested_data: list[str]
    description: str
    created_at: datetime
    last_updated_at: datetime
    total: int
    status: str = "draft"
    run: _Run | None = None
    lines: list[str] | None = None

    def item(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "organisation_id": ORGANISATION_ID,
            "filters": self.filters,
            "requested_data": self.requested_data,
            "status": self.status,
            "description": self.description,
            "created_at": iso_ms(self.created_at),
            "last_updated_at": iso_ms(self.last_updated_at),
            "created_by": USER_ID,
            "workspace_id": self.workspace_id,
            "object": "export",
            "total_records": self.total,
        }


@dataclass
class _Criteria:
    """What a filter set selects: half-open window, inclusive ranges, value sets."""

    start: datetime | None = None
    end: datetime | None = None
    ranges: list[tuple[str, float | None, float | None]] = field(default_factory=list)
    any_of: list[tuple[str, frozenset[str]]] = field(default_factory=list)
    ai_org_model: frozenset[str] | None = None
    metadata: dict[str, str] | None = None
    page_size: int | None = None
    current_page: int = 0

    def matches(self, log: Mapping[str, Any]) -> bool:
        at = log["created_at"]
        if (self.start is not None and at < self.start) or (
            self.end is not None and at >= self.end
        ):
            return False
        for name, low, high in self.ranges:
            value = log.get(name)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                return False
            if (low is not None and value < low) or (high is not None and value > high):
                return False
        for name, allowed in self.any_of:
            if log.get(name) is None or str(log.get(name)) not in allowed:
                return False
        pair = f"{log.get('ai_org')}__{log.get('ai_model')}"
        if self.ai_org_model is not None and pair not in self.ai_org_model:
            return False
        if self.metadata:
            meta = log.get("metadata")
            if not isinstance(meta, dict):
                return False
            return all(str(meta.get(k)) == v and k in meta for k, v in self.metadata.items())
        return True


# filter name -> stored field, shared by export filters and analytics query parameters
_RANGE_FILTERS = {
    "total_units": "total_units",
    "cost": "cost",
    "prompt_token": "req_units",
    "completion_token": "res_units",
}
_LIST_FILTERS = {
    "ai_model": "ai_model",
    "trace_id": "trace_id",
    "status_code": "response_status_code",
    "virtual_keys": "virtual_key",
    "configs": "config",
    "prompt_slug": "prompt_slug",
    "workspace_slug": "workspace_slug",
}
_ANALYTICS_LIST_FILTERS = {
    **{k: v for k, v in _LIST_FILTERS.items() if k not in ("ai_model", "workspace_slug")},
    "span_id": "span_id",
    "api_key_ids": "api_key_id",
    "cache_status": "cache_status",
}
_UNMODELLED_FILTERS = ("weighted_feedback_min", "weighted_feedback_max")


def _csv(value: str) -> frozenset[str]:
    return frozenset(part.strip() for part in value.split(",") if part.strip())


def _export_criteria(filters: Mapping[str, Any], workspace_id: str | None) -> _Criteria:
    """Validate an export's `filters` object and turn it into criteria."""
    crit = _Criteria()
    ranges: dict[str, list[float | None]] = {}
    for key, value in filters.items():
        where = f"filters.{key}"
        if key in ("time_of_generation_min", "time_of_generation_max"):
            moment = parse_time(value, where)
            if key.endswith("min"):
                crit.start = moment
            else:
                crit.end = moment
        elif key.rsplit("_", 1)[0] in _RANGE_FILTERS and key.endswith(("_min", "_max")):
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise _bad(f'"{where}" must be a number')
            bounds = ranges.setdefault(key.rsplit("_", 1)[0], [None, None])
            bounds[0 if key.endswith("_min") else 1] = float(value)
        elif key in _LIST_FILTERS:
            if not isinstance(value, str):
                raise _bad(f'"{where}" must be a string')
            crit.any_of.append((_LIST_FILTERS[key], _csv(value)))
        elif key == "ai_org_model":
            if not isinstance(value, str):
                raise _bad(f'"{where}" must be a string')
            crit.ai_org_model = _csv(value)
        elif key == "metadata":
            if not isinstance(value, dict):
                raise _bad(f'"{where}" must be an object')
            crit.metadata = {str(k): str(v) for k, v in value.items()}
        elif key == "page_size":
            if not _is_int(value) or not 1 <= value <= PORTKEY_EXPORT_LIMIT:
                raise _bad(f'"{where}" must be an integer from 1 to {PORTKEY_EXPORT_LIMIT}')
            crit.page_size = int(value)
        elif key == "current_page":
            if not _is_int(value) or value < 0:
                raise _bad(f'"{where}" must be an integer >= 0')
            crit.current_page = int(value)
        elif key in _UNMODELLED_FILTERS:
            raise _bad(f'"{where}" is valid in Portkey but not implemented by the double')
        else:
            raise _bad(f'"{where}" is not allowed')
    crit.ranges = [(_RANGE_FILTERS[name], lo, hi) for name, (lo, hi) in ranges.items()]
    if workspace_id is not None:
        crit.any_of.append(("workspace_slug", frozenset({workspace_id})))
    return crit


def _analytics_criteria(query: Mapping[str, str], default_workspace: str) -> _Criteria:
    """Validate analytics query parameters; both time bounds are required."""
    crit = _Criteria()
    for name in ("time_of_generation_min", "time_of_generation_max"):
        if not query.get(name):
            raise _bad(f'"{name}" is required')
    crit.start = parse_time(query["time_of_generation_min"], "time_of_generation_min")
    crit.end = parse_time(query["time_of_generation_max"], "time_of_generation_max")
    slug = query.get("workspace_slug") or default_workspace
    crit.any_of.append(("workspace_slug", frozenset({slug})))
    for prefix, stored in _RANGE_FILTERS.items():
        low, high = (_query_number(query, f"{prefix}_{end}") for end in ("min", "max"))
        if low is not None or high is not None:
            crit.ranges.append((stored, low, high))
    for key, stored in _ANALYTICS_LIST_FILTERS.items():
        if query.get(key):
            crit.any_of.append((stored, _csv(query[key])))
    if query.get("ai_org_model"):
        crit.ai_org_model = _csv(query["ai_org_model"])
    if query.get("metadata"):
        try:
            meta = json.loads(query["metadata"])
        except ValueError:
            meta = None
        if not isinstance(meta, dict):
            raise _bad('"metadata" must be a stringified JSON object')
        crit.metadata = {str(k): str(v) for k, v in meta.items()}
    return crit


def _query_number(query: Mapping[str, str], name: str) -> float | None:
    if not query.get(name):
        return None
    try:
        return float(query[name])
    except ValueError:
        raise _bad(f'"{name}" must be a number') from None


def _is_int(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and float(value).is_integer()
    )


# --------------------------------------------------------------------------- HTTP plumbing


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Portkey takes many connections at once; a backlog of 5 (the default) dropped the SYNs of
    # a burst of clients, which then waited the kernel's 1 s before trying again.
    request_queue_size = 128

    def __init__(self, double: PortkeyDouble, role: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.double, self.role = double, role


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        self.server.double._dispatch(self, self.server.role)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass


@dataclass
class _Ctx:
    method: str
    params: dict[str, str]
    query: dict[str, str]
    body: Any
    headers: dict[str, str]
    fault: Fault | None


def _compile(template: str) -> re.Pattern[str]:
    pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template.split(" ", 1)[1])
    return re.compile(f"^{pattern}$")


def _cut_point(body: bytes) -> int:
    """A byte offset inside the middle line (or the middle of a non-JSONL body)."""
    lines = body.split(b"\n")
    if len(lines) < 2:
        return len(body) // 2
    middle = (len(lines) - 1) // 2  # skip the empty piece after the final newline
    start = sum(len(line) + 1 for line in lines[:middle])
    return start + max(1, len(lines[middle]) // 2)


# --------------------------------------------------------------------------- the double


class PortkeyDouble:
    """Portkey's export, single-log and analytics APIs on 127.0.0.1 (see the module doc)."""

    def __init__(
        self,
        *,
        keys: Mapping[str, Iterable[str]] | None = None,
        export_cap: int = PORTKEY_EXPORT_LIMIT,
        job_polls: int | None = 1,
        job_seconds: float | None = None,
        url_ttl: float = 3600.0,
        separate_gateway: bool = False,
        workspaces: Iterable[str] | None = None,
        default_workspace: str = DEFAULT_WORKSPACE,
        analytics_bucket: timedelta | None = None,
        vocabulary: str = "spec",
        auth: str = "x-portkey-api-key",
        export_api: bool = True,
        prices: Mapping[tuple[str, str], Mapping[str, Any]] | None = None,
    ) -> None:
        if vocabulary not in ("spec", "docs") or auth not in ("x-portkey-api-key", "bearer"):
            raise ValueError(f"unknown vocabulary {vocabulary!r} or auth {auth!r}")
        self.vocabulary, self.auth, self.export_api = vocabulary, auth, export_api
        self.prices = {key: dict(value) for key, value in (prices or {}).items()}
        self._lock = threading.RLock()
        self._keys = {k: frozenset(v) for k, v in (keys or {DEFAULT_API_KEY: ALL_SCOPES}).items()}
        self.export_cap = export_cap
        self.job_polls = job_polls
        self.job_seconds = job_seconds
        self.url_ttl = url_ttl
        self.separate_gateway = separate_gateway
        self.workspaces = None if workspaces is None else frozenset(workspaces)
        self.default_workspace = default_workspace
        self.analytics_bucket = analytics_bucket
        self.faults = Faults(self._lock)
        self.errors: list[BaseException] = []
        self._logs: dict[str, dict[str, Any]] = {}
        self._sorted: list[dict[str, Any]] | None = None
        self._exports: dict[str, _Export] = {}
        self._urls: dict[str, tuple[str, float]] = {}  # signature -> (export id, expires at)
        self._requests: list[RecordedRequest] = []
        self._storage_saw_key = False
        self._stopping = threading.Event()
        self._servers: dict[str, _Server] = {}
        self._threads: list[threading.Thread] = []
        self._routes = [(t, _compile(t), t.split(" ", 1)[0]) for t in API_ROUTES]
        self._storage_route = _compile(STORAGE_ROUTE)
        self._pricing_route = _compile(PRICING_ROUTE)

    # ---- lifecycle

    def start(self) -> PortkeyDouble:
        roles = ["api", "storage"] + (["gateway"] if self.separate_gateway else [])
        for role in roles:
            server = _Server(self, role)
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.01},  # stop() waits up to this per server
                name=f"portkey-double-{role}",
                daemon=True,
            )
            thread.start()
            self._servers[role] = server
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stopping.set()
        for server in self._servers.values():
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers.clear()
        self._threads.clear()

    def __enter__(self) -> PortkeyDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _url(self, role: str) -> str:
        return f"http://127.0.0.1:{self._servers[role].server_address[1]}"

    @property
    def base_url(self) -> str:
        return self._url("api") + "/v1"

    @property
    def gateway_base_url(self) -> str:
        return self._url("gateway" if self.separate_gateway else "api") + "/v1"

    @property
    def storage_base_url(self) -> str:
        return self._url("storage")

    @property
    def api_key(self) -> str:
        return next(iter(self._keys))

    # ---- test-facing state

    def add_logs(self, logs: Iterable[Mapping[str, Any]]) -> None:
        """Store full internal log records (export fields + metrics + workspace_slug)."""
        with self._lock:
            for raw in logs:
                unknown = set(raw) - LOG_FIELDS
                if unknown:
                    raise ValueError(f"unknown log fields: {sorted(unknown)}")
                log = {name: None for name in LOG_FIELDS} | dict(raw)
                if not log["id"] or log["id"] in self._logs:
                    raise ValueError(f"log id missing or duplicated: {log['id']!r}")
                at = log["created_at"]
                if isinstance(at, str):
                    at = datetime.fromisoformat(at.replace("Z", "+00:00"))
                if not isinstance(at, datetime) or at.tzinfo is None:
                    raise ValueError(f"created_at must be an aware datetime: {at!r}")
                log["created_at"] = at.astimezone(UTC)
                log["workspace_slug"] = log["workspace_slug"] or self.default_workspace
                self._logs[log["id"]] = log
            self._sorted = None

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, route: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.route == route]

    @property
    def storage_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.server == "storage"]

    @property
    def storage_saw_api_key(self) -> bool:
        with self._lock:
            return self._storage_saw_key

    def export_item(self, export_id: str) -> dict[str, Any]:
        """The ExportItem as stored, without counting a poll."""
        with self._lock:
            return self._exports[export_id].item()

    def finish_export(self, export_id: str, outcome: str = "success") -> None:
        """Complete a running export by hand (for `job_polls=None, job_seconds=None`)."""
        with self._lock:
            exp = self._exports[export_id]
            if exp.status != "in_progress":
                raise ValueError(f"export {export_id} is {exp.status}, not in_progress")
            self._finish(exp, outcome)

    # ---- dispatch

    def _dispatch(self, h: _Handler, role: str) -> None:
        try:
            self._serve(h, role)
        except Exception as exc:  # a bug in the double: make it loud in the test
            self.errors.append(exc)
            self._write(h, _envelope(500, "AB04", f"portkey_double internal error: {exc!r}"))

    def _serve(self, h: _Handler, role: str) -> None:
        split = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        raw_body = h.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in h.headers.items()}
        route, params = self._resolve(role, h.command, split.path)
        fault = self.faults.take(route, storage=role == "storage") if route else None
        with self._lock:
            self._requests.append(
                RecordedRequest(role, h.command, h.path, route, headers, raw_body, fault)
            )
            if role == "storage" and "x-portkey-api-key" in headers:
                self._storage_saw_key = True

        kind = fault.kind if fault else None
        if fault is not None and kind == "slow":
            self._stopping.wait(fault.seconds)
        if fault is not None and kind == "drop" and not fault.after_processing:
            return self._drop(h)
        if fault is not None and kind == "error":
            response = _envelope(fault.status, fault.code, fault.message)
            if fault.retry_after is not None:
                response.headers["Retry-After"] = fault.retry_after
            return self._write(h, response)
        if kind == "html":
            return self._write(h, _Response(502, HTML_502.encode(), {"Content-Type": "text/html"}))

        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        if role == "storage":
            response = self._storage_get(split.path, query, headers, fault)
        elif route is None:
            response = _envelope(404, "AB02", f"No route for {h.command} {split.path}")
        else:
            body = None
            if raw_body and "json" in headers.get("content-type", ""):
                try:
                    body = json.loads(raw_body)
                except ValueError:
                    body = _ApiError(400, "AB01", "Request body is not valid JSON")
            ctx = _Ctx(h.command, params, query, body, headers, fault)
            response = self._api_call(route, ctx)

        if fault is not None and kind == "drop":  # after_processing: the work is done, then drop
            return self._drop(h)
        if fault is not None and kind == "unknown_status" and response.status == 200:
            item = json.loads(response.body)
            item["status"] = fault.value
            response = _json_response(item)
        self._write(h, response, cut=kind == "cut")

    def _resolve(self, role: str, method: str, path: str) -> tuple[str | None, dict[str, str]]:
        if len(path) > 1:
            path = path.rstrip("/")
        if role == "storage":
            match = self._storage_route.match(path)
            found = {k: unquote(v) for k, v in match.groupdict().items()} if match else {}
            return (STORAGE_ROUTE, found) if method == "GET" and match else (None, {})
        if role == "api" and method == "GET" and (match := self._pricing_route.match(path)):
            return PRICING_ROUTE, {k: unquote(v) for k, v in match.groupdict().items()}
        if not path.startswith("/v1/"):
            return None, {}
        path = path[3:]
        for template, pattern, verb in self._routes:
            match = pattern.match(path)
            if verb != method or not match:
                continue
            is_gateway_route = template == "GET /logs/{id}"
            serves = role == "gateway" if self.separate_gateway else role == "api"
            if is_gateway_route and not serves:
                continue
            if role == "gateway" and not is_gateway_route:
                continue
            if not self.export_api and template.split(" ")[1].startswith("/logs/exports"):
                return None, {}  # a deployment without the export API (Prisma AIRS's spec)
            return template, {k: unquote(v) for k, v in match.groupdict().items()}
        return None, {}

    def _api_call(self, route: str, ctx: _Ctx) -> _Response:
        if route == PRICING_ROUTE:  # public: no key read
            return self._pricing(ctx)
        handler, scopes = self._handlers()[route]
        if self.auth == "bearer":
            scheme, _, key = ctx.headers.get("authorization", "").partition(" ")
            key = key.strip() if scheme.lower() == "bearer" else ""
        else:
            key = ctx.headers.get("x-portkey-api-key") or ""
        if not key or key not in self._keys:
            header = "Authorization: Bearer" if self.auth == "bearer" else "x-portkey-api-key"
            return _envelope(401, "AB05", f"Unauthorized access: invalid or missing {header}")
        if not scopes & self._keys[key]:
            return _envelope(
                403, "AB03", "You do not have enough permissions to execute this request"
            )
        try:
            if isinstance(ctx.body, _ApiError):
                raise ctx.body
            with self._lock:
                return _json_response(handler(ctx))
        except _ApiError as err:
            return _envelope(err.status, err.code, err.message)

    def _handlers(self) -> dict[str, tuple[Callable[[_Ctx], Any], frozenset[str]]]:
        e, a = _EXPORT_SCOPES, _ANALYTICS_SCOPES
        return {
            "POST /logs/exports": (self._create, e),
            "GET /logs/exports": (self._list, e),
            "GET /logs/exports/{id}": (self._retrieve, e),
            "PUT /logs/exports/{id}": (self._update, e),
            "POST /logs/exports/{id}/start": (self._start, e),
            "POST /logs/exports/{id}/cancel": (self._cancel, e),
            "GET /logs/exports/{id}/download": (self._download, e),
            "GET /logs/{id}": (self._get_log, _LOG_READ_SCOPES),
            "GET /analytics/graphs/requests": (self._graph_requests, a),
            "GET /analytics/graphs/cost": (self._graph_cost, a),
            "GET /analytics/graphs/tokens": (self._graph_tokens, a),
            "GET /analytics/graphs/latency": (self._graph_latency, a),
            "GET /analytics/graphs/errors": (self._graph_errors, a),
            "GET /analytics/summary/cache": (self._summary_cache, a),
        }

    def _write(self, h: _Handler, response: _Response, *, cut: bool = False) -> None:
        h.close_connection = True
        body = response.body
        h.send_response(response.status)
        for name, value in response.headers.items():
            h.send_header(name, value)
        h.send_header("Content-Length", str(len(body)))
        h.send_header("Connection", "close")
        h.end_headers()
        try:
            h.wfile.write(body[: _cut_point(body)] if cut else body)
            h.wfile.flush()
        except OSError:
            return
        if cut:
            self._drop(h)

    @staticmethod
    def _drop(h: _Handler) -> None:
        h.close_connection = True
        with contextlib.suppress(OSError):
            h.connection.shutdown(socket.SHUT_RDWR)

    # ---- export jobs

    def _matching(self, crit: _Criteria) -> list[dict[str, Any]]:
        if self._sorted is None:
            self._sorted = sorted(self._logs.values(), key=lambda g: (g["created_at"], g["id"]))
        return [log for log in self._sorted if crit.matches(log)]

    def _export(self, export_id: str) -> _Export:
        exp = self._exports.get(export_id)
        if exp is None:
            raise _not_found(f"Export {export_id} not found")
        return exp

    def _validated(self, body: Any, *, creating: bool) -> dict[str, Any]:
        if not isinstance(body, dict):
            body = {}
        out: dict[str, Any] = {}
        if "workspace_id" in body:
            ws = body["workspace_id"]
            if ws is not None and not isinstance(ws, str):
                raise _bad('"workspace_id" must be a string')
            out["workspace_id"] = ws or None
        filters = body.get("filters")
        if filters is None:
            raise _bad('"filters" is required')
        if not isinstance(filters, dict):
            raise _bad('"filters" must be an object')
        out["filters"] = filters
        requested = body.get("requested_data")
        if creating or requested is not None:
            if requested is None:
                raise _bad('"requested_data" is required')
            if not isinstance(requested, list) or not requested:
                raise _bad('"requested_data" must be a non-empty array')
            if self.vocabulary == "docs":
                requested = [SPEC_NAMES.get(name, name) for name in requested]
            for name in requested:
                if name not in EXPORT_FIELDS:
                    raise _bad(
                        f'"requested_data" contains {name!r}, which is not one of '
                        f"{', '.join(EXPORT_FIELDS)}"
                    )
            out["requested_data"] = list(dict.fromkeys(requested))
        description = body.get("description")
        if creating and (not isinstance(description, str) or not description):
            raise _bad('"description" is required')
        if isinstance(description, str) and description:
            out["description"] = description
        return out

    def _count(self, filters: dict[str, Any], workspace_id: str | None) -> int:
        return len(self._matching(_export_criteria(filters, workspace_id)))

    def _create(self, ctx: _Ctx) -> dict[str, Any]:
        v = self._validated(ctx.body, creating=True)
        workspace_id = v.get("workspace_id")
        total = self._count(v["filters"], workspace_id)
        now = datetime.now(UTC)
        fault = ctx.fault
        chosen = fault.value if fault is not None and fault.kind == "export_id" else None
        exp = _Export(
            id=chosen or str(uuid.uuid4()),
            workspace_id=workspace_id,
            filters=v["filters"],
            requested_data=v["requested_data"],
            description=v["description"],
            created_at=now,
            last_updated_at=now,
            total=total,
        )
        self._exports[exp.id] = exp
        return {"id": exp.id, "total": total, "object": "export"}

    def _update(self, ctx: _Ctx) -> dict[str, Any]:
        exp = self._export(ctx.params["id"])
        self._advance(exp, poll=False)
        if exp.status not in ("draft", "failed"):
            raise _bad(f"Export {exp.id} cannot be updated: status is {exp.status}")
        v = self._validated(ctx.body, creating=False)
        workspace_id = v.get("workspace_id", exp.workspace_id)
        exp.total = self._count(v["filters"], workspace_id)
        exp.workspace_id, exp.filters = workspace_id, v["filters"]
        exp.requested_data = v.get("requested_data", exp.requested_data)
        exp.description = v.get("description", exp.description)
        exp.last_updated_at = datetime.now(UTC)
        return {"id": exp.id, "total": exp.total, "object": "export"}

    def _list(self, ctx: _Ctx) -> dict[str, Any]:
        workspace = ctx.query.get("workspace_id") or None
        if workspace and self.workspaces is not None and workspace not in self.workspaces:
            raise _ApiError(500, "AB04", "Internal Server Error")
        found = [e for e in self._exports.values() if workspace in (None, e.workspace_id)]
        for exp in found:
            self._advance(exp, poll=False)
        found.sort(key=lambda e: e.created_at, reverse=True)
        return {"object": "list", "total": len(found), "data": [e.item() for e in found]}

    def _retrieve(self, ctx: _Ctx) -> dict[str, Any]:
        exp = self._export(ctx.params["id"])
        self._advance(exp, poll=True)
        return exp.item()

    def _start(self, ctx: _Ctx) -> dict[str, Any]:
        exp = self._export(ctx.params["id"])
        self._advance(exp, poll=False)
        if exp.status not in ("draft", "failed"):
            raise _bad(f"Export {exp.id} cannot be started: status is {exp.status}")
        fault = ctx.fault if ctx.fault is not None and ctx.fault.kind == "job" else None
        exp.run = _Run(
            started=time.monotonic(),
            outcome=fault.outcome if fault else "success",
            polls=fault.polls if fault and fault.polls is not None else self.job_polls,
            seconds=None if fault and fault.polls is not None else self.job_seconds,
        )
        exp.status, exp.lines = "in_progress", None
        exp.last_updated_at = datetime.now(UTC)
        return {"message": "Export started", "object": "export"}

    def _cancel(self, ctx: _Ctx) -> dict[str, Any]:
        exp = self._export(ctx.params["id"])
        self._advance(exp, poll=False)
        if exp.status != "in_progress":
            raise _bad(
                f"Export {exp.id} cannot be cancelled: status is {exp.status} "
                "(only an in_progress export can be cancelled)"
            )
        exp.status, exp.run = "stopped", None
        exp.last_updated_at = datetime.now(UTC)
        return {"message": "Export cancelled", "object": "export"}

    def _advance(self, exp: _Export, *, poll: bool) -> None:
        run = exp.run
        if exp.status != "in_progress" or run is None:
            return
        by_polls = run.polls is not None and run.polls_seen >= run.polls
        by_time = run.seconds is not None and time.monotonic() - run.started >= run.seconds
        if by_polls or by_time:
            self._finish(exp, run.outcome)
        elif poll:
            run.polls_seen += 1

    def _finish(self, exp: _Export, outcome: str) -> None:
        exp.status, exp.run = outcome, None
        exp.last_updated_at = datetime.now(UTC)
        if outcome == "success":
            crit = _export_criteria(exp.filters, exp.workspace_id)
            page = min(crit.page_size or self.export_cap, self.export_cap)
            offset = crit.current_page * page
            chosen = self._matching(crit)[offset : offset + page]
            exp.lines = [self._export_line(log, exp.requested_data) for log in chosen]

    def _pricing(self, ctx: _Ctx) -> _Response:
        """Portkey's public pricing config of one model: cents per token [Portkey-AI/models]."""
        found = self.prices.get((ctx.params["provider"], ctx.params["model"]))
        if found is None:
            return _json_response({"error": {"message": "Model not found"}}, 404)
        return _json_response(found)

    def _export_line(self, log: Mapping[str, Any], requested: list[str]) -> str:
        names = DOCS_NAMES if self.vocabulary == "docs" else {}
        line = {
            names.get(name, name): js_date(log[name]) if name == "created_at" else log.get(name)
            for name in requested
        }
        return json.dumps(line, separators=(",", ":"), ensure_ascii=False)

    def _download(self, ctx: _Ctx) -> dict[str, Any]:
        exp = self._export(ctx.params["id"])
        self._advance(exp, poll=False)
        if exp.status != "success":
            raise _bad(
                f"Export {exp.id} is not ready for download: status is {exp.status} "
                "(download is available once it is success)"
            )
        expired = ctx.fault is not None and ctx.fault.kind == "expired_url"
        now = time.time()
        ttl = max(1, math.ceil(self.url_ttl))
        issued = now - ttl - 1 if expired else now
        signature = secrets.token_hex(32)
        self._urls[signature] = (exp.id, now - 1 if expired else now + self.url_ttl)
        stamp = datetime.fromtimestamp(issued, UTC)
        if ctx.fault is not None and ctx.fault.kind == "signed_url":
            return {"signed_url": ctx.fault.value}
        url = (
            f"{self.storage_base_url}/exports/{quote(exp.id, safe='')}.jsonl"
            "?X-Amz-Algorithm=AWS4-HMAC-SHA256"
            f"&X-Amz-Credential=AKIADOUBLE%2F{stamp:%Y%m%d}%2Fus-east-1%2Fs3%2Faws4_request"
            f"&X-Amz-Date={stamp:%Y%m%dT%H%M%SZ}&X-Amz-Expires={ttl}"
            f"&X-Amz-SignedHeaders=host&X-Amz-Signature={signature}"
        )
        return {"signed_url": url}

    # ---- object storage

    def _storage_get(
        self, path: str, query: Mapping[str, str], headers: Mapping[str, str], fault: Fault | None
    ) -> _Response:
        match = self._storage_route.match(path.rstrip("/"))
        if match is None:
            return _s3_error(404, "NoSuchKey", "The specified key does not exist.")
        if "authorization" in headers:
            return _s3_error(
                400,
                "InvalidArgument",
                "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
                "Signature query string parameter or the Authorization header should be "
                "specified",
            )
        signature = query.get("X-Amz-Signature")
        if not signature:
            return _s3_error(403, "AccessDenied", "Query-string authentication requires the "
                             "X-Amz-Signature parameter")  # fmt: skip
        with self._lock:
            grant = self._urls.get(signature)
            file_id = unquote(match["file"]).removesuffix(".jsonl")
            if grant is None or grant[0] != file_id:
                return _s3_error(
                    403,
                    "SignatureDoesNotMatch",
                    "The request signature we calculated does not match the signature you "
                    "provided.",
                )
            if time.time() >= grant[1]:
                expires = datetime.fromtimestamp(grant[1], UTC)
                return _s3_error(
                    403,
                    "AccessDenied",
                    "Request has expired",
                    **{
                        "X-Amz-Expires": query.get("X-Amz-Expires", ""),
                        "Expires": f"{expires:%Y-%m-%dT%H:%M:%SZ}",
                        "ServerTime": f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}",
                    },
                )
            lines = list(self._exports[file_id].lines or [])
        if fault is not None and fault.kind == "missing_lines":
            lines = lines[: fault.count]
        if fault is not None and fault.kind == "bad_line":
            if fault.count < len(lines):
                lines[fault.count] = fault.value
            else:
                lines.append(fault.value)
        body = "".join(line + "\n" for line in lines).encode()
        if fault is not None and fault.kind == "truncated_file":
            body = body[: _cut_point(body)]
        return _Response(200, body, {"Content-Type": "application/octet-stream"})

    # ---- single log

    def _get_log(self, ctx: _Ctx) -> dict[str, Any]:
        log = self._logs.get(ctx.params["id"])
        if log is None:
            raise _not_found(f"Log {ctx.params['id']} not found")
        return self._log_object(log)

    def _log_object(self, log: Mapping[str, Any]) -> dict[str, Any]:
        meta = log["metadata"] if isinstance(log["metadata"], dict) else {}
        portkey_headers = {
            header: str(log[name])
            for header, name in (
                ("x-portkey-trace-id", "trace_id"),
                ("x-portkey-span-id", "span_id"),
                ("x-portkey-parent-span-id", "parent_span_id"),
                ("x-portkey-span-name", "span_name"),
                ("x-portkey-virtual-key", "virtual_key"),
            )
            if log[name] is not None
        }
        if meta:
            portkey_headers["x-portkey-metadata"] = json.dumps(meta, separators=(",", ":"))
        index = log["last_used_option_index"]
        request: dict[str, Any] = {
            "url": log["request_url"],
            "method": log["request_method"] or "POST",
            "portkeyHeaders": portkey_headers,
        }
        response: dict[str, Any] = {
            "status": log["response_status_code"],
            "responseTime": log["response_time"],
            "lastUsedOptionJsonPath": "" if index is None else f"$.config.options[{index}]",
        }
        if log["request"] is not None:
            request["body"] = log["request"]
        if log["response"] is not None:
            response["body"] = log["response"]
        metrics = {
            name: log[name]
            for name in (*EXPORT_FIELDS, *METRIC_FIELDS, *EXTRA_METRIC_FIELDS)
            if name not in ("request", "response", "metadata")
        }
        metrics.update(
            organisation_id=ORGANISATION_ID,
            organisation_name=log["organisation_name"] or "Double Org",
            request_method=request["method"],
            created_at=iso_ms(log["created_at"], zone=False),
            **{"metadata.key": list(meta), "metadata.value": [str(v) for v in meta.values()]},
        )
        return {
            "_id": log["id"],
            "request": request,
            "response": response,
            "organisation_id": ORGANISATION_ID,
            "created_at": iso_ms(log["created_at"]),
            "metrics": metrics,
        }

    # ---- analytics

    def _buckets(self, ctx: _Ctx) -> tuple[list[dict[str, Any]], list[tuple[str, list]]]:
        crit = _analytics_criteria(ctx.query, self.default_workspace)
        assert crit.start is not None and crit.end is not None
        logs = self._matching(crit)
        size = self.analytics_bucket or (
            timedelta(hours=1) if crit.end - crit.start <= timedelta(days=2) else timedelta(days=1)
        )
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        first = epoch + ((crit.start - epoch) // size) * size
        count = math.ceil((crit.end - first) / size)
        groups: list[list[dict[str, Any]]] = [[] for _ in range(count)]
        for log in logs:
            groups[(log["created_at"] - first) // size].append(log)
        stamps = (f"{first + i * size:%Y-%m-%dT%H:%M:%S}Z" for i in range(count))
        return logs, list(zip(stamps, groups, strict=True))

    @staticmethod
    def _graph(summary: dict[str, Any], points: list[dict[str, Any]]) -> dict[str, Any]:
        return {"summary": summary, "data_points": points, "object": "analytics-graph"}

    def _graph_requests(self, ctx: _Ctx) -> dict[str, Any]:
        logs, buckets = self._buckets(ctx)
        points = [{"timestamp": ts, "total": len(group)} for ts, group in buckets]
        return self._graph({"total": len(logs)}, points)

    def _sum_graph(self, ctx: _Ctx, name: str) -> dict[str, Any]:
        def stats(group: list[dict[str, Any]]) -> dict[str, Any]:
            values = [g[name] for g in group if isinstance(g[name], (int, float))]
            total = math.fsum(values) if any(isinstance(v, float) for v in values) else sum(values)
            return {"total": total, "avg": total / len(group) if group else 0}

        logs, buckets = self._buckets(ctx)
        return self._graph(stats(logs), [{"timestamp": ts, **stats(g)} for ts, g in buckets])

    def _graph_cost(self, ctx: _Ctx) -> dict[str, Any]:
        return self._sum_graph(ctx, "cost")

    def _graph_tokens(self, ctx: _Ctx) -> dict[str, Any]:
        return self._sum_graph(ctx, "total_units")

    def _graph_latency(self, ctx: _Ctx) -> dict[str, Any]:
        def stats(group: list[dict[str, Any]]) -> dict[str, Any]:
            values = sorted(g["response_time"] for g in group if g["response_time"] is not None)
            if not values:
                return {"avg": 0, "p50": 0, "p90": 0, "p99": 0}
            rank = {p: values[max(0, math.ceil(p / 100 * len(values)) - 1)] for p in (50, 90, 99)}
            return {"avg": sum(values) / len(values), **{f"p{p}": v for p, v in rank.items()}}

        logs, buckets = self._buckets(ctx)
        return self._graph(stats(logs), [{"timestamp": ts, **stats(g)} for ts, g in buckets])

    def _graph_errors(self, ctx: _Ctx) -> dict[str, Any]:
        def errors(group: list[dict[str, Any]]) -> int:
            return sum(1 for g in group if g["is_success"] is False)

        logs, buckets = self._buckets(ctx)
        points = [{"timestamp": ts, "total": errors(g)} for ts, g in buckets]
        return self._graph({"total": errors(logs)}, points)

    def _summary_cache(self, ctx: _Ctx) -> dict[str, Any]:
        logs, _ = self._buckets(ctx)
        hits = [g for g in logs if g["cache_status"] in ("HIT", "SEMANTIC HIT")]
        rest = [g for g in logs if g["cache_status"] not in ("HIT", "SEMANTIC HIT")]

        def avg(group: list[dict[str, Any]]) -> float:
            values = [g["response_time"] for g in group if g["response_time"] is not None]
            return sum(values) / len(values) if values else 0

        speedup = (avg(rest) - avg(hits)) / avg(rest) * 100 if hits and avg(rest) else 0
        summary = {
            "hits": len(hits),
            "avg_latency": avg(hits),
            "total_requests": len(logs),
            "cache_speedup": speedup,
        }
        return {"summary": summary, "object": "analytics-summary"}
