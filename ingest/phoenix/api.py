"""Phoenix over the shared transport: where it is and how to authenticate (`PhoenixSettings`),
its answers turned into this tool's errors in one place (`answer_error`), requests with retries
within the deadline (`PhoenixApi`), and the OTLP sender (`SpanSender`).

401/403 -> PhoenixAuthError saying which key to set; 408/429/5xx (503: queue full) and
connection trouble are retried until the deadline, then PhoenixUnreachableError; a redirect to
another host -> PhoenixError naming that host (the client headers and spans never go there).
Keys and header values are stripped of surrounding whitespace when read (a key from a file
often ends in a newline); one that still is not a valid header value is a configuration error
that names the variable and never quotes the value.

The sender uses the OTel SDK's protobuf encoder but our own HTTP call, because the exporter
swallows status codes: "queue full, retry" must be told from "wrong key" and "bad request",
and Retry-After honoured. An OTLP 200 only means "queued in memory" (docs/design.md): reading
back is what proves storage.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
import time
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urljoin, urlsplit

from ingest.errors import (
    ConfigError,
    PhoenixAuthError,
    PhoenixError,
    PhoenixUnreachableError,
    RedirectRefused,
    Transient,
)
from ingest.http import (
    Outcome,
    Service,
    Transport,
    classify,
    plain_http_to_remote,
    retry_after_seconds,
    split_userinfo,
    valid_header_value,
)
from ingest.phoenix import capabilities

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan
    from phoenix.client import Client

T = TypeVar("T")
log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "http://localhost:6006"
MAX_RETRY_AFTER_S = 60.0
# The Phoenix server's own settings behind a 507 (named in its message, read by Phoenix).
SERVER_CAPACITY = "PHOENIX_DATABASE_ALLOCATED_STORAGE_CAPACITY_GIBIBYTES"
SERVER_THRESHOLD = "PHOENIX_DATABASE_USAGE_INSERTION_BLOCKING_THRESHOLD_PERCENTAGE"


@dataclass(frozen=True)
class PhoenixSettings:
    endpoint: str = DEFAULT_ENDPOINT
    project: str = "default"
    api_key: str | None = field(default=None, repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    retry_deadline_s: float = 120.0
    request_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        key = self.api_key.strip() if self.api_key else None
        if key and not valid_header_value(key):
            raise ConfigError(
                "PHOENIX_API_KEY (or --api-key) holds a line break or another character a "
                "header cannot carry: set it to the key alone."
            )
        object.__setattr__(self, "api_key", key or None)
        headers = {name: str(value).strip() for name, value in dict(self.headers).items()}
        for name, value in headers.items():
            if not valid_header_value(value):
                raise ConfigError(
                    f"PHOENIX_CLIENT_HEADERS (or --client-headers): the value of {name!r} holds "
                    "a line break or another character a header cannot carry: fix it."
                )
        # `user:pass@` in the endpoint: sent as a Basic header (the API key, when set, wins),
        # and never printed, logged or stored with the URL.
        endpoint, basic = split_userinfo(self.endpoint.strip())
        if basic and not any(name.lower() == "authorization" for name in headers):
            headers["Authorization"] = basic
        object.__setattr__(self, "endpoint", endpoint)
        object.__setattr__(self, "headers", headers)

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> PhoenixSettings:
        """The settings from option values (`endpoint`, `api_key`, `project`, `retry_deadline`,
        `client_headers`, as the CLI and the config file name them): every command builds its
        Phoenix settings here; an option a command lacks keeps the default."""
        endpoint = str(options.get("endpoint") or DEFAULT_ENDPOINT)
        if not endpoint.startswith(("http://", "https://")):
            raise ConfigError(
                "PHOENIX_COLLECTOR_ENDPOINT / --endpoint must be an http(s) URL, got "
                f"{split_userinfo(endpoint)[0]!r}."
            )
        project = str(options.get("project", cls.project))
        if not project.strip():
            raise ConfigError(
                "the Phoenix project name (--project / PHOENIX_PROJECT_NAME) is empty."
            )
        values: dict[str, Any] = {
            "endpoint": endpoint,
            "project": project.strip(),
            "api_key": options.get("api_key") or None,
            "headers": dict(options.get("client_headers") or {}),
        }
        if options.get("retry_deadline") is not None:
            values["retry_deadline_s"] = options["retry_deadline"]
        settings = cls(**values)
        if settings.api_key and plain_http_to_remote(settings.base_url):
            host = urlsplit(settings.base_url).netloc
            if options.get("strict"):
                raise ConfigError(
                    f"--strict refuses to send PHOENIX_API_KEY over plain http:// to {host} "
                    "(PHOENIX_COLLECTOR_ENDPOINT): anyone on the network path could read it. "
                    "Use https://, or reach Phoenix through a loopback address or a tunnel. "
                    "Nothing was sent."
                )
            log.warning(
                "PHOENIX_API_KEY is sent over plain http:// to %s (PHOENIX_COLLECTOR_ENDPOINT): "
                "anyone on the network path can read it. Use https://, or reach Phoenix "
                "through a loopback address or a tunnel.",
                host,
            )
        return settings

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

    def service(self, timeout_s: float | None = None) -> Service:
        return Service(
            name="Phoenix",
            base_url=self.base_url,
            headers=self.auth_headers(),
            retry_deadline_s=self.retry_deadline_s,
            request_timeout_s=self.request_timeout_s if timeout_s is None else timeout_s,
            max_retry_after_s=MAX_RETRY_AFTER_S,
            max_backoff_s=10.0,
        )


def auth_error(settings: PhoenixSettings, status: int) -> PhoenixAuthError:
    if settings.api_key:
        what = "rejected the API key"
        fix = "set PHOENIX_API_KEY (or --api-key) to a valid Phoenix API key"
    else:
        what = "requires authentication"
        fix = "set PHOENIX_API_KEY (or --api-key) to a Phoenix system or user API key"
    return PhoenixAuthError(f"Phoenix at {settings.base_url} {what} (HTTP {status}): {fix}.")


def redirect_error(settings: PhoenixSettings, host: str, status: int | None = None) -> PhoenixError:
    code = f" (HTTP {status})" if status else ""
    return PhoenixError(
        f"Phoenix at {settings.base_url} redirected a request to another host, {host}{code}: "
        "nothing was sent there (not the headers, not the spans). Set "
        "PHOENIX_COLLECTOR_ENDPOINT to the final URL if that host is really Phoenix."
    )


def insufficient_storage(settings: PhoenixSettings, said: str, text: str) -> PhoenixError:
    """Phoenix's database is over its storage threshold: it refuses every write (507)."""
    try:
        detail = json.loads(text).get("detail")
    except (ValueError, AttributeError):
        detail = None
    shown = " ".join(str(detail or text).split())[:300]
    return PhoenixError(
        f'Phoenix at {settings.base_url} refused to store data ({said}): "{shown}". Its '
        "database is over the storage threshold it was given, so it accepts no writes; the "
        "run stopped at once (everything verified before is kept). Free space in Phoenix "
        "(delete old projects or traces, or set a trace retention policy), or raise the "
        f"threshold on the server ({SERVER_CAPACITY}, {SERVER_THRESHOLD}), then run again."
    )


def answer_error(
    settings: PhoenixSettings,
    status: int,
    headers: Mapping[str, str],
    text: str,
    refused: Callable[[str], Exception],
    reason: str = "",
) -> Exception | None:
    """What a Phoenix answer means, for every request this tool makes: None on success,
    Transient (retry) for 408/429/5xx, the auth error for 401/403, the redirect error for a
    redirect to another host, else `refused("HTTP <status>: <body>")`."""
    outcome = classify(status)
    if outcome is Outcome.OK:
        return None
    if outcome is Outcome.AUTH:
        return auth_error(settings, status)
    said = f"HTTP {status} {reason or ''}".strip()
    if status == 507:  # not transient: retrying only waits for someone to free space
        return insufficient_storage(settings, said, text)
    if outcome is Outcome.RETRY:
        return Transient(said, status, retry_after=retry_after_seconds(headers.get("retry-after")))
    if outcome is Outcome.REDIRECT:
        target = urlsplit(urljoin(settings.base_url + "/", headers.get("location", "")))
        if (target.hostname or "") != (urlsplit(settings.base_url).hostname or ""):
            return redirect_error(settings, target.hostname or "?", status)
    return refused(f"{said}: {text.strip().replace(chr(10), ' ')[:300]}")


def unexpected_read(settings: PhoenixSettings, version: str | None, what: str) -> PhoenixError:
    """A read Phoenix answered, but not as this tool expects. When the server named its
    `version`, say which (an older Phoenix is not a wrong endpoint); else check the URL."""
    base = settings.base_url
    if version is not None:
        oldest = capabilities.format_version(capabilities.OLDEST_SUPPORTED)
        newest = capabilities.format_version(capabilities.NEWEST_TESTED)
        return PhoenixError(
            f"Phoenix {version} at {base} did not answer a span read as this tool "
            f"expects ({what}). This tool supports Phoenix {oldest} to {newest}: upgrade "
            "Phoenix if it is older, and run `doctor` to see which features it offers."
        )
    return PhoenixError(
        f"Phoenix at {base} did not answer a span read as Phoenix does ({what}). "
        "Check PHOENIX_COLLECTOR_ENDPOINT points at a Phoenix server."
    )


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


class PhoenixApi:
    """One Phoenix server: requests with retries within the deadline; counts retries."""

    def __init__(
        self,
        settings: PhoenixSettings,
        session: Any = None,
        sleep: Callable[[float], None] = time.sleep,
        timeout_s: float | None = None,
    ) -> None:
        self.settings = settings
        self.retries = 0
        self.transport = Transport(
            settings.service(timeout_s), session, sleep=sleep, on_retry=self._count
        )

    def _count(self, exc: Transient, wait: float) -> None:
        self.retries += 1

    def call(self, action: str, fn: Callable[[], T]) -> T:
        try:
            return self.transport.retrying(fn)
        except Transient as exc:
            raise PhoenixUnreachableError(
                f"Phoenix at {self.settings.base_url} did not {action} within "
                f"{self.settings.retry_deadline_s:.0f} s of retries (last error: {exc}). "
                "Check that Phoenix is running and reachable (PHOENIX_COLLECTOR_ENDPOINT), "
                "or allow more time with --retry-deadline."
            ) from None
        except RedirectRefused as exc:
            raise redirect_error(self.settings, exc.host, exc.status) from None

    def refusal(self, action: str) -> Callable[[str], Exception]:
        """The error for an answer that retrying cannot help."""
        base = self.settings.base_url
        return lambda what: PhoenixError(
            f"Phoenix at {base} refused to {action} ({what}). "
            "Check PHOENIX_COLLECTOR_ENDPOINT points at a Phoenix server."
        )

    def request(self, method: str, path: str, action: str, *, allow: tuple[int, ...] = (),
                refused: Callable[[str], Exception] | None = None, **kw: Any) -> Any:  # fmt: skip
        """One call with retries; answers with a status in `allow` (e.g. 404) are returned."""

        def attempt() -> Any:
            response = self.transport.send(method, path, **kw)
            if response.status_code in allow:
                return response
            error = answer_error(
                self.settings,
                response.status_code,
                response.headers,
                response.text,
                refused or self.refusal(action),
                response.reason,
            )
            if error is not None:
                raise error
            return response

        return self.call(action, attempt)


class SpanSender:
    """POSTs batches of spans to Phoenix's OTLP/HTTP endpoint, retrying transient failures."""

    def __init__(
        self,
        settings: PhoenixSettings,
        session: Any = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self._api = PhoenixApi(settings, session, sleep)

    @property
    def retries(self) -> int:
        return self._api.retries

    def send(self, spans: Sequence[ReadableSpan]) -> int:
        """Deliver one batch into Phoenix's queue (not yet durable: verify afterwards).
        Returns the size of the request body in bytes."""
        # The OTLP encoder (protobuf) loads with the first batch, not with the CLI.
        from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

        if not spans:
            return 0
        body = encode_spans(spans).SerializeToString()
        self._api.request(
            "POST",
            "/v1/traces",
            "accept spans",
            data=body,
            headers={"Content-Type": "application/x-protobuf"},
        )
        return len(body)
