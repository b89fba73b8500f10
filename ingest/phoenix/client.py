"""Talk to Phoenix: send spans over OTLP/HTTP protobuf, and read them back by id.

Sending uses the OTel SDK's protobuf encoder but our own HTTP call, because the exporter
swallows status codes: we must tell "queue full, retry" (503/429/5xx/connection) from
"wrong key" (401/403) from "bad request" (other 4xx), and honour Retry-After.
An OTLP 200 only means "queued in memory" (DESIGN.md): reading back is what proves storage.
`phoenix.client` is imported lazily, since importing it costs seconds when the server
package is installed beside it.
"""

from __future__ import annotations

import email.utils
import importlib.util
import sys
import time
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import requests
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_random_exponential,
)

from ingest.errors import PhoenixAuthError, PhoenixError, PhoenixUnreachableError

if TYPE_CHECKING:
    from phoenix.client import Client

DEFAULT_ENDPOINT = "http://localhost:6006"
VERIFY_CHUNK = 1000  # Phoenix answers up to ~1,000 ids per read; more overflows the URL
_RETRY_STATUS = frozenset({408, 429}) | frozenset(range(500, 600))
_MAX_RETRY_AFTER_S = 60.0


@dataclass(frozen=True)
class PhoenixSettings:
    endpoint: str = DEFAULT_ENDPOINT
    project: str = "default"
    api_key: str | None = field(default=None, repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    retry_deadline_s: float = 120.0
    request_timeout_s: float = 30.0

    @property
    def base_url(self) -> str:
        """The server root, whether the endpoint was given with `/v1/traces` or without."""
        url = self.endpoint.strip().rstrip("/")
        for suffix in ("/v1/traces", "/v1"):
            if url.endswith(suffix):
                url = url[: -len(suffix)]
        return url

    @property
    def traces_url(self) -> str:
        return f"{self.base_url}/v1/traces"

    def auth_headers(self) -> dict[str, str]:
        """The extra client headers, and the API key as the one Authorization header (the
        key wins over an `authorization` entry in PHOENIX_CLIENT_HEADERS)."""
        headers = dict(self.headers)
        if self.api_key:
            for name in [name for name in headers if name.lower() == "authorization"]:
                del headers[name]
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers


class _Transient(Exception):
    """A failure worth retrying: connection trouble, 429, 5xx."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


def _retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds or an HTTP date (RFC 9110); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class _WaitRetryAfter:
    """Wait what the server asked for (capped), else exponential backoff with jitter."""

    def __init__(self) -> None:
        self._backoff = wait_random_exponential(multiplier=0.5, max=10)

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Transient) and exc.retry_after is not None:
            return min(exc.retry_after, _MAX_RETRY_AFTER_S)
        return float(self._backoff(state))


def _auth_error(settings: PhoenixSettings, status: int) -> PhoenixAuthError:
    if settings.api_key:
        what = "rejected the API key"
        fix = "set PHOENIX_API_KEY (or --api-key) to a valid Phoenix API key"
    else:
        what = "requires authentication"
        fix = "set PHOENIX_API_KEY (or --api-key) to a Phoenix system or user API key"
    return PhoenixAuthError(f"Phoenix at {settings.base_url} {what} (HTTP {status}): {fix}.")


def _classify(settings: PhoenixSettings, response: requests.Response, action: str) -> None:
    """Raise the right error for a non-2xx answer; return quietly on success."""
    status = response.status_code
    if status < 300:
        return
    if status in (401, 403):
        raise _auth_error(settings, status)
    reason = f"HTTP {status} {response.reason or ''}".strip()
    if status in _RETRY_STATUS:
        raise _Transient(reason, _retry_after_seconds(response.headers.get("Retry-After")))
    detail = response.text.strip().replace("\n", " ")[:300]
    raise PhoenixError(
        f"Phoenix at {settings.base_url} refused to {action} ({reason}: {detail}). "
        "Check PHOENIX_COLLECTOR_ENDPOINT points at a Phoenix server."
    )


class _Retrier:
    """tenacity within a deadline; counts retries; turns exhaustion into a clear error."""

    def __init__(self, settings: PhoenixSettings, sleep: Callable[[float], None]) -> None:
        self.settings = settings
        self.sleep = sleep
        self.retries = 0

    def call(self, action: str, fn: Callable[[], Any]) -> Any:
        retrying = Retrying(
            retry=retry_if_exception_type(_Transient),
            wait=_WaitRetryAfter(),
            stop=stop_after_delay(self.settings.retry_deadline_s),
            sleep=self.sleep,
            before_sleep=self._count,
            reraise=True,
        )
        try:
            return retrying(fn)
        except _Transient as exc:
            raise PhoenixUnreachableError(
                f"Phoenix at {self.settings.base_url} did not {action} within "
                f"{self.settings.retry_deadline_s:.0f} s of retries (last error: {exc}). "
                "Check that Phoenix is running and reachable (PHOENIX_COLLECTOR_ENDPOINT), "
                "or allow more time with --retry-deadline."
            ) from None

    def _count(self, state: RetryCallState) -> None:
        self.retries += 1


class SpanSender:
    """POSTs batches of spans to Phoenix's OTLP/HTTP endpoint, retrying transient failures."""

    def __init__(
        self,
        settings: PhoenixSettings,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.session = session or requests.Session()
        self._retrier = _Retrier(settings, sleep)
        self._headers = {**settings.auth_headers(), "Content-Type": "application/x-protobuf"}

    @property
    def retries(self) -> int:
        return self._retrier.retries

    def send(self, spans: Sequence[ReadableSpan]) -> int:
        """Deliver one batch into Phoenix's queue (not yet durable: verify afterwards).
        Returns the size of the request body in bytes."""
        if not spans:
            return 0
        body = encode_spans(spans).SerializeToString()
        self._retrier.call("accept spans", lambda: self._post(body))
        return len(body)

    def _post(self, body: bytes) -> None:
        try:
            response = self.session.post(
                self.settings.traces_url,
                data=body,
                headers=self._headers,
                timeout=self.settings.request_timeout_s,
            )
        except requests.RequestException as exc:
            raise _Transient(_connection_reason(exc)) from None
        _classify(self.settings, response, "accept spans")


def _connection_reason(exc: Exception) -> str:
    text = str(exc)
    if "Connection refused" in text:
        return "connection refused"
    if "timed out" in text.lower() or "timeout" in type(exc).__name__.lower():
        return "timed out"
    return type(exc).__name__


def import_phoenix_client() -> type[Client]:
    """`phoenix.client.Client`, without running `phoenix/__init__.py`.

    With the Phoenix server package installed beside the client (the `server` extra), that
    file imports the whole server: 5-9 s and ~380 MB before the first read. The client does
    not need it, so the `phoenix` namespace is set up bare and only `phoenix.client` loads.
    """
    if "phoenix" not in sys.modules:
        spec = importlib.util.find_spec("phoenix")  # locates the package, runs nothing
        if spec is not None and spec.submodule_search_locations is not None:
            namespace = types.ModuleType("phoenix")
            namespace.__path__ = list(spec.submodule_search_locations)
            namespace.__spec__ = spec
            sys.modules["phoenix"] = namespace
    from phoenix.client import Client

    return Client


class SpanReader:
    """Reads spans back from a Phoenix project through `arize-phoenix-client`."""

    def __init__(
        self, settings: PhoenixSettings, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.settings = settings
        self._retrier = _Retrier(settings, sleep)
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            Client = import_phoenix_client()
            self._client = Client(
                base_url=self.settings.base_url,
                api_key=self.settings.api_key,
                headers=dict(self.settings.headers) or None,
            )
        return self._client

    @property
    def project_path(self) -> str:
        """The project name as a URL path segment (names may hold spaces or slashes)."""
        return quote(self.settings.project, safe="")

    def existing(
        self, span_ids: Iterable[str], window: tuple[datetime, datetime] | None = None
    ) -> set[str]:
        """Which of these span ids (16-hex) Phoenix has stored in the project.

        `window` ([earliest start, latest start]) bounds the read by start time: Phoenix
        filters a project's spans by time through an index, while a filter on ids alone
        scans the whole project, so reads would slow down as a backfill grows.
        """
        return {span["context"]["span_id"] for span in self.fetch(span_ids, window)}

    def fetch(
        self, span_ids: Iterable[str], window: tuple[datetime, datetime] | None = None
    ) -> list[dict[str, Any]]:
        """The stored spans among these ids (full spans, as the Phoenix REST API returns them)."""
        ids = list(span_ids)
        bounds = None
        if window is not None:  # a millisecond of slack: Phoenix keeps float seconds
            bounds = (window[0] - timedelta(milliseconds=1), window[1] + timedelta(milliseconds=1))
        found: list[dict[str, Any]] = []
        for start in range(0, len(ids), VERIFY_CHUNK):
            chunk = ids[start : start + VERIFY_CHUNK]
            found.extend(self._retrier.call("answer a read", lambda c=chunk: self._get(c, bounds)))
        return found

    def _get(
        self, chunk: list[str], bounds: tuple[datetime, datetime] | None
    ) -> list[dict[str, Any]]:
        import httpx

        try:
            spans = self.client.spans.get_spans(
                project_identifier=self.project_path,
                span_ids=chunk,
                start_time=bounds[0] if bounds else None,
                end_time=bounds[1] if bounds else None,
                limit=len(chunk),
                timeout=int(self.settings.request_timeout_s),
            )
        except httpx.HTTPStatusError as exc:
            status = exc.response.status_code
            if status == 404:
                return []  # the project does not exist yet: nothing is stored
            if status in (401, 403):
                raise _auth_error(self.settings, status) from None
            if status in _RETRY_STATUS:
                retry_after = _retry_after_seconds(exc.response.headers.get("Retry-After"))
                raise _Transient(f"HTTP {status}", retry_after) from None
            raise PhoenixError(
                f"Phoenix at {self.settings.base_url} refused to answer a read "
                f"(HTTP {status}: {exc.response.text[:300]})."
            ) from None
        except httpx.TransportError as exc:
            raise _Transient(_connection_reason(exc)) from None
        except Exception as exc:  # the client's own checks, e.g. "version could not be determined"
            raise PhoenixError(
                f"Phoenix at {self.settings.base_url} did not answer a span read as Phoenix "
                f"does ({type(exc).__name__}: {exc}). Check PHOENIX_COLLECTOR_ENDPOINT points "
                "at a Phoenix server."
            ) from None
        return [dict(span) for span in spans]
