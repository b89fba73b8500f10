"""Portkey's API: its settings, and one request with retries over the shared transport, its
answer unwrapped or turned into the right error (the message names the endpoint and the export
or log).

Every call retries 429, 5xx, timeouts and dropped connections with backoff and jitter (or
Retry-After) until a deadline. 401/403 stop at once. A redirect is an error naming where it
pointed: the key is never sent on. The API key is stripped of surrounding whitespace when
read; one that still is not a valid header value is a configuration error naming the variable.
Neither the API key nor a signed URL's query string ever reaches a message, a log line or an
exception.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

from ingest.errors import (
    ConfigError,
    PortkeyAuthError,
    PortkeyError,
    PortkeyExportError,
    PortkeyLogNotFoundError,
    PortkeyUnavailableError,
    RedirectRefused,
    Transient,
)
from ingest.http import (
    Outcome,
    Service,
    Transport,
    classify,
    plain_http_to_remote,
    public_url,
    retry_after_seconds,
    split_userinfo,
    valid_header_value,
)

if TYPE_CHECKING:
    from ingest.http import Response

DEFAULT_BASE_URL = "https://api.portkey.ai/v1"
PRISMA_AIRS_BASE_URL = "https://api.apps.paloaltonetworks.com/ai_gw/v2"  # same API, another brand
# How the key is sent: Portkey's own API reads `x-portkey-api-key`; the Prisma AIRS AI Gateway
# spec reads only `Authorization: Bearer`.
AUTH_MODES = ("x-portkey-api-key", "bearer")
PRICING_PATH = "/model-configs/pricing"  # Portkey's list prices, beside /v1 (no key needed)
PORTKEY_EXPORT_LIMIT = 50_000  # logs per export job (reference 2.10)
# option name (CLI and config file) -> field
_OPTION_FIELDS = {
    "portkey_base_url": "base_url",
    "portkey_auth": "auth",
    "workspace": "workspace",
    "gateway_url": "gateway_url",
    "export_limit": "export_limit",
    "poll_interval": "poll_interval_s",
    "portkey_retry_deadline": "retry_deadline_s",
    "enrich_concurrency": "enrich_concurrency",
    "enrich_rate": "enrich_rate_per_s",
    "max_download_mib": "max_download_mib",
}
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


@dataclass(frozen=True)
class PortkeySettings:
    api_key: str = field(repr=False)
    base_url: str = DEFAULT_BASE_URL  # self-hosted control planes use their own URL
    auth: str = AUTH_MODES[0]  # how the key is sent (PORTKEY_AUTH)
    workspace: str | None = None  # the workspace SLUG (a UUID silently matches nothing)
    gateway_url: str | None = None  # for GET /logs/{id}; default base_url
    retry_deadline_s: float = 300.0
    poll_interval_s: float = 5.0
    job_timeout_s: float = 3600.0  # a job still in_progress after this: error
    export_limit: int = PORTKEY_EXPORT_LIMIT
    max_job_restarts: int = 3
    request_timeout_s: float = 60.0
    max_download_attempts: int = 5  # signed URL + GET, per export
    max_download_mib: int = 8192  # one export's file; a bigger one stops its download
    enrich_concurrency: int = 4  # GET /logs/{id} in flight at once
    enrich_rate_per_s: float = 10.0  # GET /logs/{id} started per second
    # `user:pass@` of the base (or gateway) URL, sent as a Basic header; never in the URL
    basic_auth: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        key = (self.api_key or "").strip()
        if not key:
            raise ConfigError(
                "PORTKEY_API_KEY is empty: set it to a Portkey API key with the logs.export scope."
            )
        if not valid_header_value(key):
            raise ConfigError(
                "PORTKEY_API_KEY (or --portkey-api-key) holds a line break or another character "
                "a header cannot carry: set it to the key alone."
            )
        object.__setattr__(self, "api_key", key)
        auth = (self.auth or "").strip().lower()
        if auth not in AUTH_MODES:
            raise ConfigError(
                f"PORTKEY_AUTH (or --portkey-auth) must be one of {', '.join(AUTH_MODES)}, "
                f"got {self.auth[:40]!r}."
            )
        object.__setattr__(self, "auth", auth)
        for name, env in (("base_url", "PORTKEY_BASE_URL"), ("gateway_url", "PORTKEY_GATEWAY_URL")):
            url = getattr(self, name)
            if url is None:
                continue
            parts = urlsplit(url.strip())
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(
                    f"{env} must be an http(s) URL such as {DEFAULT_BASE_URL}, got "
                    f"{split_userinfo(url.strip())[0]!r}."
                )
            url, basic = split_userinfo(url.strip().rstrip("/"))
            object.__setattr__(self, name, url)
            if basic and self.basic_auth is None:
                object.__setattr__(self, "basic_auth", basic)
        if self.workspace is not None and _UUID.match(self.workspace.strip()):
            raise ConfigError(
                "PORTKEY_WORKSPACE must be the workspace slug (like "
                "ws-example-a1b2c3), not its UUID: Portkey silently exports "
                "nothing for a UUID."
            )
        positive = (
            "retry_deadline_s",
            "poll_interval_s",
            "job_timeout_s",
            "request_timeout_s",
            "export_limit",
            "max_download_attempts",
            "max_download_mib",
            "enrich_concurrency",
            "enrich_rate_per_s",
        )
        for name in positive:
            if not getattr(self, name) > 0:
                raise ConfigError(f"Portkey setting {name} must be positive.")
        if self.max_job_restarts < 0:
            raise ConfigError("Portkey setting max_job_restarts must be 0 or more.")

    @classmethod
    def from_options(cls, options: Mapping[str, Any], scope: str = "the logs.export scope"
                     ) -> PortkeySettings:  # fmt: skip
        """The settings from option values (`portkey_api_key`, `portkey_base_url`,
        `workspace`, ..., as the CLI and the config file name them): every command builds its
        Portkey settings here; an option a command lacks keeps the default. Without a key, the
        error asks for one with `scope`."""
        key = str(options.get("portkey_api_key") or "").strip()
        if not key:
            raise ConfigError(
                f"no Portkey API key: set PORTKEY_API_KEY (or --portkey-api-key) to a key with "
                f"{scope}."
            )
        values: dict[str, Any] = {"api_key": key}
        for option, name in _OPTION_FIELDS.items():
            value = options.get(option)
            if isinstance(value, str):
                value = value.strip() or None
            if value is not None:
                values[name] = value
        settings = cls(**values)
        for url, env in ((settings.base_url, "PORTKEY_BASE_URL"),
                         (settings.gateway_url, "PORTKEY_GATEWAY_URL")):  # fmt: skip
            if url and plain_http_to_remote(url):
                if options.get("strict"):
                    raise ConfigError(
                        f"--strict refuses to send PORTKEY_API_KEY over plain http:// to "
                        f"{urlsplit(url).netloc} ({env}): anyone on the network path could "
                        "read it. Use https://. Nothing was sent."
                    )
                log.warning(
                    "PORTKEY_API_KEY is sent over plain http:// to %s (%s): anyone on the "
                    "network path can read it. Use https://.",
                    urlsplit(url).netloc, env,
                )  # fmt: skip
        return settings

    def key_headers(self, auth: str | None = None) -> dict[str, str]:
        """The key as `auth` (default: the configured way) sends it."""
        if (auth or self.auth) == "bearer":
            return {"Authorization": f"Bearer {self.api_key}"}
        return {"x-portkey-api-key": self.api_key}

    @property
    def pricing_url(self) -> str:
        """Where Portkey's list prices are: beside `/v1` on Portkey's own host, under the base
        URL elsewhere (the Prisma AIRS spec lists the path under its control plane)."""
        return self.base_url.removesuffix("/v1") + PRICING_PATH

    def service(self, base_url: str | None = None) -> Service:
        """The Portkey API (or the gateway, for `GET /logs/{id}`) for the shared transport."""
        return Service(
            name="Portkey",
            base_url=base_url or self.base_url,
            headers={  # with PORTKEY_AUTH=bearer the key takes Authorization over userinfo
                **({"Authorization": self.basic_auth} if self.basic_auth else {}),
                **self.key_headers(),
                "Accept": "application/json",
            },
            retry_deadline_s=self.retry_deadline_s,
            request_timeout_s=self.request_timeout_s,
            max_retry_after_s=float("inf"),  # a longer wait than the deadline gives up at once
            follow_same_host_redirects=False,  # a redirect is an error naming the final URL
            pool_size=max(10, self.enrich_concurrency),
        )


@dataclass
class PortkeyStats:
    """What the client did, for the run summary."""

    retries: int = 0
    drafts_created: int = 0
    drafts_reused: int = 0
    jobs_started: int = 0
    job_restarts: int = 0
    downloads: int = 0
    splits: int = 0
    logs_fetched: int = 0


log = logging.getLogger(__name__)

EXPORT_SCOPE = (
    "the `logs.export` scope (a Workspace or Admin API key; log exports also need "
    "Portkey's Enterprise plan)"
)
LOG_SCOPE = "the `logs.view` or `logs.read` scope to read single logs (enrichment)"


def no_export_api(base_url: str, endpoint: str, said: str, run: bool = True) -> str:
    """The message for a control plane without the log export endpoints (Prisma AIRS AI
    Gateway's published API, some self-hosted versions)."""
    host = urlsplit(base_url).netloc.rsplit("@", 1)[-1]
    return (
        f"Portkey at {host} offers no log export API ({endpoint}: {said}): this deployment "
        "(the Prisma AIRS AI Gateway's API, or a control plane without exports) cannot serve "
        f"sync or backfill{'; nothing was committed' if run else ''}. What works: export the "
        "logs in the "
        "gateway's UI (Logs > Export) and load the files with `portkey-phoenix-ingest import "
        "FILE...`. If this is Portkey's own API, check PORTKEY_BASE_URL (it ends in /v1)."
    )


# Portkey's pricing fields (cents per token) -> Phoenix token types
_PRICE_FIELDS = {
    "request_token": "input",
    "response_token": "output",
    "cache_read_input_token": "cache_read",
    "cache_write_input_token": "cache_write",
}


def list_prices(payload: Any) -> dict[str, float] | None:
    """Portkey's pricing config (`{"pay_as_you_go": {"request_token": {"price": cents}, ...,
    "additional_units": {"thinking_token": ...}}, "currency": "USD"}`, possibly inside
    `pricing_config`) as USD per million tokens by Phoenix token type; None when it holds no
    input and output price in USD. An image model's price per image (`"image": {quality:
    {size: {"price": cents}}}`) is its default quality and size, as type `image` (USD per
    million images): the plan uses it only where it reproduces the logs."""
    if isinstance(payload, Mapping) and isinstance(payload.get("pricing_config"), Mapping):
        payload = payload["pricing_config"]
    if not isinstance(payload, Mapping) or str(payload.get("currency") or "USD") != "USD":
        return None
    plan = payload.get("pay_as_you_go")
    if not isinstance(plan, Mapping):
        return None

    def price(entry: Any) -> float | None:
        value = entry.get("price") if isinstance(entry, Mapping) else None
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
            return None
        return float(f"{value * 1e4:.12g}")  # cents per token -> USD per million tokens

    found = ((name, price(plan.get(key))) for key, name in _PRICE_FIELDS.items())
    out = {name: p for name, p in found if p is not None}
    extra = plan.get("additional_units")
    thinking = price(extra.get("thinking_token")) if isinstance(extra, Mapping) else None
    if thinking is not None:
        out["reasoning"] = thinking
    image = price(_default_image(plan.get("image")))
    if image is not None:
        out["image"] = image
    elif "input" not in out or "output" not in out:
        return None
    return out


def _default_image(entry: Any) -> Any:
    """`{"price": c}`, or the `default` entry of each level (quality, then size) down to it."""
    for _ in range(3):
        if not isinstance(entry, Mapping) or "price" in entry:
            break
        entry = entry.get("default")
    return entry


def _error_fields(payload: Any) -> tuple[str | None, str | None]:
    """(errorCode, message) from `{"success": false, "data": {...}}` or `{"error": {...}}`."""
    if not isinstance(payload, Mapping):
        return None, None
    for key in ("data", "error"):
        inner = payload.get(key)
        if isinstance(inner, Mapping) and ("message" in inner or "errorCode" in inner):
            code, message = inner.get("errorCode"), inner.get("message")
            return (str(code)[:40] if code else None), (str(message)[:300] if message else None)
    message = payload.get("message")
    return None, (message[:300] if isinstance(message, str) else None)


class PortkeyApi:
    """Requests to Portkey's control plane (and gateway), shared by a run's threads."""

    def __init__(
        self,
        settings: PortkeySettings,
        session: Any = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings, self.stats = settings, PortkeyStats()
        self.sleep, self.clock = sleep, clock  # the export and log readers wait with these
        self._transport = Transport(settings.service(), session, sleep=sleep, clock=clock)
        self._lock = threading.Lock()
        self._pricing_down = False

    def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        export_id: str | None = None,
        base: str | None = None,
        log_id: str | None = None,
    ) -> dict[str, Any]:
        """One API request with retries; the (unwrapped) JSON object it answered."""
        url = (base or self.settings.base_url) + path
        endpoint = f"{method} {path}"

        def attempt() -> dict[str, Any]:
            response = self._transport.send(method, url, json=body)
            return self._answer(response, endpoint, export_id, log_id)

        def on_retry(exc: Transient, wait: float) -> None:
            with self._lock:
                self.stats.retries += 1
            log.warning("Portkey %s: %s; retrying in %.1f s", endpoint, exc, wait)

        try:
            return self._transport.retrying(attempt, on_retry=on_retry)
        except Transient as exc:
            host = urlsplit(url).netloc.rsplit("@", 1)[-1]
            which = f" for export {export_id}" if export_id else ""
            deadline = self.settings.retry_deadline_s
            raise PortkeyUnavailableError(
                f"Portkey ({host}) did not answer {endpoint}{which} within {deadline:g} s of "
                f"retries; last answer: {exc}. Portkey may be down or rate-limiting this key "
                "(AB06 is its rate-limit code): rerun later, or allow a longer retry deadline.",
                status=exc.status,
                code=exc.code,
            ) from None

    def analytics(self, path: str, params: Mapping[str, str]) -> dict[str, Any]:
        """`GET /analytics/...` (e.g. `/analytics/graphs/requests`) with these query
        parameters, plus `workspace_slug` when a workspace is set; the JSON answer."""
        query = dict(params)
        if self.settings.workspace:
            query["workspace_slug"] = self.settings.workspace
        try:
            return self.call("GET", f"{path}?{urlencode(query)}")
        except PortkeyAuthError as exc:
            raise PortkeyAuthError(
                f"Portkey refused GET {path} (HTTP {exc.status}): PORTKEY_API_KEY needs the "
                "`analytics.view` scope to read analytics.",
                status=exc.status,
                code=exc.code,
            ) from None

    def _answer(
        self, response: Response, endpoint: str, export_id: str | None, log_id: str | None
    ) -> dict[str, Any]:
        status = response.status_code
        text = self._scrub(response.text)  # nothing Portkey echoes can carry the key onwards
        try:
            payload: Any = json.loads(text)
        except ValueError:
            payload = None
        code, message = _error_fields(payload)
        said = (
            f"HTTP {status}"
            + (f", errorCode {code}" if code else "")
            + (f": {message}" if message else "")
        )
        if payload is None and text:
            said += f" (not JSON: {' '.join(text.split())[:120]!r})"
        which = f" for export {export_id}" if export_id else ""
        error_cls = PortkeyError if log_id is not None else PortkeyExportError

        if 300 <= status < 400:
            where = public_url(response.headers.get("Location", "") or "?")
            raise PortkeyError(
                f"Portkey answered {endpoint} with a redirect ({said}) to "
                f"{where}: set PORTKEY_BASE_URL (or PORTKEY_GATEWAY_URL) to the "
                "final URL; the key is not sent on redirects.",
                status=status,
            )
        if status in (401, 403):
            need = LOG_SCOPE if log_id is not None else EXPORT_SCOPE
            if status == 401:
                url = "PORTKEY_GATEWAY_URL or PORTKEY_BASE_URL" if log_id else "PORTKEY_BASE_URL"
                other = AUTH_MODES[1 - AUTH_MODES.index(self.settings.auth)]
                text = (
                    f"Portkey rejected PORTKEY_API_KEY on {endpoint} ({said}), sent as "
                    f"{self.settings.auth}. Check that the key is valid for this Portkey ({url}) "
                    f"and has {need}; a deployment that reads the other header needs "
                    f"PORTKEY_AUTH set to {other} (`doctor` tries both)."
                )
            else:
                text = f"Portkey refused {endpoint} ({said}): PORTKEY_API_KEY needs {need}."
            raise PortkeyAuthError(text, status=status, code=code)
        if classify(status) is Outcome.RETRY:
            retry_after = retry_after_seconds(response.headers.get("Retry-After"))
            if retry_after is not None:
                said += f", Retry-After {retry_after:g} s"
            raise Transient(said, status, code, retry_after)
        if status == 404 and log_id is not None:
            raise PortkeyLogNotFoundError(
                f"Portkey has no log {log_id!r} ({endpoint}: {said}). It may not be published "
                "yet, or retention removed it.",
                status=status,
                code=code,
            )
        if (
            status in (404, 405)
            and export_id is None
            and endpoint.split(" ")[-1].startswith("/logs/exports")
        ):
            raise PortkeyExportError(no_export_api(self.settings.base_url, endpoint, said),
                                     status=status, code=code)  # fmt: skip
        if status >= 400:
            hint = (
                " Check PORTKEY_BASE_URL (it usually ends in /v1)."
                if status == 404 and export_id is None
                else ""
            )
            raise error_cls(
                f"Portkey refused {endpoint}{which} ({said}).{hint}", status=status, code=code
            )
        if not isinstance(payload, dict):
            raise error_cls(
                f"Portkey answered {endpoint}{which} with something that is not a "
                f"JSON object ({said}). Rerun later; if it persists, report it.",
                status=status,
            )
        if payload.get("success") is False:
            raise error_cls(
                f"Portkey answered {endpoint}{which} with success=false ({said}).",
                status=status,
                code=code,
            )
        data = payload.get("data")
        if isinstance(data, dict) and set(payload) <= {"data", "success", "object", "message"}:
            return data  # tolerate a `{"data": {...}}` envelope around a success body
        return payload

    def model_price(self, provider: str, model: str) -> dict[str, float] | None:
        """Portkey's list price of a model (USD per million tokens by Phoenix token type), or
        None when Portkey has none or cannot be asked. One attempt, no retries: a price is a
        nicety, and after one failure to connect no other model is looked up."""
        if self._pricing_down or not provider or not model:
            return None
        url = f"{self.settings.pricing_url}/{quote(provider, safe='')}/{quote(model, safe='')}"
        try:
            response = self._transport.send("GET", url)
        except (Transient, RedirectRefused, OSError) as exc:
            self._pricing_down = True
            log.info("Portkey's model prices are not reachable (%s)", type(exc).__name__)
            return None
        if response.status_code != 200:
            return None
        try:
            return list_prices(json.loads(self._scrub(response.text)))
        except ValueError:
            return None

    def _scrub(self, text: str) -> str:
        """Server text may echo what it was sent: make sure the key never travels on."""
        return text.replace(self.settings.api_key, "[REDACTED]")
