"""The one HTTP transport for Portkey and Phoenix: they differ only in a `Service`.

One status classifier, one Retry-After parser, one description of connection trouble that
never quotes an exception's text (requests' InvalidHeader quotes the header value, i.e. a key),
one tenacity policy with a deadline, jitter and an injectable sleep and clock, and no request
ever leaves the configured host: a redirect to another host is refused, naming that host, so
neither the keys nor the spans can follow it.
"""

from __future__ import annotations

import base64
import email.utils
import ipaddress
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, unquote, urljoin, urlsplit, urlunsplit

from ingest.errors import ConfigError, RedirectRefused, Transient

# requests and tenacity load when the first request is made, not when the CLI starts: ~60 ms
# of every `--help`, usage error and early exit (cron runs it too).
if TYPE_CHECKING:
    import requests
    from requests import Response as Response  # for the type hints of modules using it
    from tenacity import RetryCallState

T = TypeVar("T")

MAX_REDIRECTS = 5


class Outcome(Enum):
    OK = "ok"
    REDIRECT = "redirect"
    RETRY = "retry"  # 408, 429, 5xx (Phoenix answers 503 when its queue is full)
    AUTH = "auth"  # 401, 403: the key is missing, wrong or lacks a scope
    FATAL = "fatal"  # any other 4xx: retrying cannot help


def classify(status: int) -> Outcome:
    if status < 300:
        return Outcome.OK
    if status < 400:
        return Outcome.REDIRECT
    if status in (401, 403):
        return Outcome.AUTH
    if status in (408, 429) or status >= 500:
        return Outcome.RETRY
    return Outcome.FATAL


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as delta seconds (fractions accepted) or an HTTP date (RFC 9110); None when
    absent, negative or unreadable. A date in the past is 0."""
    if not value or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        seconds = None
    if seconds is not None:
        return seconds if 0 <= seconds < float("inf") else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def describe_connection_error(exc: BaseException, timeout_s: float | None = None) -> str:
    """What went wrong, in words that hold no header value, URL or query string."""
    import requests

    text = str(exc)
    if isinstance(exc, requests.exceptions.InvalidHeader) or "header" in type(exc).__name__.lower():
        return "a header value is not valid (check the keys and PHOENIX_CLIENT_HEADERS)"
    if isinstance(exc, requests.Timeout) or "timeout" in type(exc).__name__.lower():
        return f"no answer within {timeout_s:g} s" if timeout_s else "timed out"
    if "Connection refused" in text:
        return "connection refused"
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "unknown host name"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError | ConnectionResetError):
        return "connection dropped"
    return type(exc).__name__


def valid_header_value(value: str) -> bool:
    """Whether this can be sent as a header value: printable Latin-1 (tabs allowed), no line
    breaks or other control characters, no surrounding whitespace."""
    if value != value.strip():
        return False
    return all(c == "\t" or 32 <= ord(c) < 127 or 160 <= ord(c) < 256 for c in value)


@dataclass(frozen=True)
class Service:
    """Everything that differs between Portkey and Phoenix."""

    name: str  # in messages: "Phoenix", "Portkey"
    base_url: str
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    retry_deadline_s: float = 120.0
    request_timeout_s: float = 30.0
    max_retry_after_s: float = 60.0  # a longer Retry-After is shortened to this
    max_backoff_s: float = 30.0  # the longest wait between attempts without a Retry-After
    follow_same_host_redirects: bool = True  # False: a 3xx is handed back to the caller
    # Only for a service whose requests carry no secret header (a signed URL on object
    # storage may send the client on to a regional host).
    follow_cross_host_redirects: bool = False
    pool_size: int = 10
    # Called with every URL before it is requested, redirects included; raises to refuse it.
    check_url: Callable[[str], None] | None = None


def origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def public_url(url: str) -> str:
    """scheme://host[:port]/path of a URL: never its query (a signed URL's signature lives there)
    nor credentials before the host."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"


def segment(value: object) -> str:
    """A value from a server or a file as one URL path segment: `/`, `?`, `#`, `%` and the rest
    percent-encoded, so it can never reach another path. A value of dots alone (`..`) stays a
    dot segment (requests sends `%2E` as `.`): callers refuse such ids."""
    return quote(str(value), safe="")


def split_userinfo(url: str) -> tuple[str, str | None]:
    """The URL without `user:pass@` before its host (the form printed, logged and stored), and
    those credentials as a Basic Authorization header value (None when there are none)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode()
    return urlunsplit(parts._replace(netloc=host)), f"Basic {token}"


def address_kind(host: str) -> str | None:
    """ "loopback", "link-local" or "private" when `host` is, or resolves to, such an address;
    None for a public one, or a name that does not resolve (its request fails on its own)."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return "loopback"
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            found = socket.getaddrinfo(host, None)
        except (OSError, UnicodeError):
            return None
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in found]
    for address in addresses:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if address.is_loopback:
            return "loopback"
        if address.is_link_local:
            return "link-local"
        if address.is_private or address.is_unspecified or address.is_reserved:
            return "private"
    return None


def plain_http_to_remote(url: str) -> bool:
    """Whether a request to `url` crosses the network unencrypted: http:// to a host that is
    not this machine (judged from the URL alone, without a lookup)."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        return False
    host = (parts.hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


def new_session(pool_size: int = 10) -> requests.Session:
    import requests
    from requests.adapters import HTTPAdapter

    session = requests.Session()
    for prefix in ("https://", "http://"):
        session.mount(prefix, HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size))
    return session


class Transport:
    """Requests to one service: its headers, its timeout, no cross-host redirects; `retrying`
    runs a callable under the service's deadline. Thread-safe for requests."""

    def __init__(
        self,
        service: Service,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        on_retry: Callable[[Transient, float], None] | None = None,
    ) -> None:
        self.service = service
        self.session = session or new_session(service.pool_size)
        self.sleep, self.clock, self.on_retry = sleep, clock, on_retry

    def url(self, path: str) -> str:
        return path if "://" in path else f"{self.service.base_url}{path}"

    def send(
        self, method: str, path: str, *, headers: Mapping[str, str] | None = None, **kw: Any
    ) -> requests.Response:
        """One request (no retry). Connection trouble -> Transient; a redirect to another host
        -> RedirectRefused; any answer, whatever its status, is returned."""
        import requests

        url = self.url(path)
        merged = {**self.service.headers, **(headers or {})}
        kw.setdefault("timeout", self.service.request_timeout_s)
        for _ in range(MAX_REDIRECTS + 1):
            if self.service.check_url is not None:
                self.service.check_url(url)
            try:
                response = self.session.request(
                    method, url, headers=merged, allow_redirects=False, **kw
                )
            except requests.exceptions.InvalidHeader:  # its text quotes the value: never shown
                raise ConfigError(
                    f"a header for {self.service.name} is not a valid header value: check its "
                    "API key and PHOENIX_CLIENT_HEADERS for line breaks."
                ) from None
            except requests.RequestException as exc:
                raise Transient(describe_connection_error(exc, kw["timeout"])) from None
            if not response.is_redirect or not self.service.follow_same_host_redirects:
                return response
            target = urljoin(url, response.headers.get("Location", ""))
            if origin(target) != origin(url) and not self.service.follow_cross_host_redirects:
                response.close()
                raise RedirectRefused(response.status_code, origin(target)[1] or "?")
            if response.status_code not in (307, 308):  # 301/302/303: the body is not resent
                method = "GET" if method != "HEAD" else method
                kw.pop("data", None)
                kw.pop("json", None)
            response.close()
            url = target
        raise Transient(f"more than {MAX_REDIRECTS} redirects")

    def retrying(
        self,
        fn: Callable[[], T],
        deadline_s: float | None = None,
        on_retry: Callable[[Transient, float], None] | None = None,
        max_attempts: int | None = None,
    ) -> T:
        """`fn()` again after each Transient until it succeeds, the deadline would pass or
        `max_attempts` calls were made; then the last Transient is raised. Waits: the server's
        Retry-After (capped; a Transient with retry_after 0 is tried again at once), else
        exponential backoff with full jitter, never past the deadline."""
        from tenacity import Retrying, retry_if_exception_type, wait_random_exponential

        deadline = self.service.retry_deadline_s if deadline_s is None else deadline_s
        start = self.clock()
        backoff = wait_random_exponential(multiplier=0.5, max=self.service.max_backoff_s)
        notify = on_retry or self.on_retry

        def elapsed() -> float:
            return self.clock() - start

        def asked(state: RetryCallState) -> float | None:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, Transient) and exc.retry_after is not None:
                return min(exc.retry_after, self.service.max_retry_after_s)
            return None

        def wait(state: RetryCallState) -> float:
            server = asked(state)
            if server is not None:
                return server
            return min(float(backoff(state)), max(0.0, deadline - elapsed()))

        def stop(state: RetryCallState) -> bool:
            server = asked(state)
            if max_attempts is not None and state.attempt_number >= max_attempts:
                return True
            return elapsed() >= deadline or (server is not None and elapsed() + server > deadline)

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            if notify is not None and isinstance(exc, Transient):
                notify(exc, state.next_action.sleep if state.next_action else 0.0)

        retrying = Retrying(
            retry=retry_if_exception_type(Transient),
            wait=wait,
            stop=stop,
            sleep=self.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        return retrying(fn)


def httpx_client(service: Service) -> Any:
    """An `httpx.Client` for arize-phoenix-client with the service's headers and timeout that
    follows redirects on the same host and raises RedirectRefused for any other host (checked
    on each answer, before a redirect is followed)."""
    import httpx

    def refuse_cross_host(response: httpx.Response) -> None:
        if response.is_redirect:
            here = str(response.request.url)
            target = urljoin(here, response.headers.get("location", ""))
            if origin(target) != origin(here):
                raise RedirectRefused(response.status_code, origin(target)[1] or "?")

    return httpx.Client(
        base_url=service.base_url,
        headers=dict(service.headers),
        timeout=service.request_timeout_s,
        follow_redirects=service.follow_same_host_redirects,
        max_redirects=MAX_REDIRECTS,
        event_hooks={"response": [refuse_cross_host]},
    )


def status_error(exc: BaseException) -> tuple[int, Mapping[str, str], str] | None:
    """(status, headers, body) of an httpx status error raised by arize-phoenix-client."""
    import httpx

    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code, exc.response.headers, exc.response.text
    return None


def is_transport_error(exc: BaseException) -> bool:
    """An httpx connection problem (arize-phoenix-client): worth retrying."""
    import httpx

    return isinstance(exc, httpx.TransportError)


def body_chunks(response: requests.Response, size: int) -> Iterator[bytes]:
    """A streamed body, chunk by chunk; a connection that breaks off raises Transient."""
    import requests

    try:
        yield from response.iter_content(size)
    except requests.RequestException as exc:
        raise Transient(describe_connection_error(exc)) from None
