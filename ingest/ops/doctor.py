"""`doctor`: check Phoenix and Portkey end to end and say what to fix (the checks of this
machine are in `doctor_local`).

Each check is a small function returning `Check`s; none of them retries or waits long, since a
health check must answer quickly and the commands themselves retry. Nothing here ever puts a
secret in a message: keys are shown masked (`config.mask`) and response bodies are not echoed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from ingest.errors import ConfigError, RedirectRefused, Transient
from ingest.http import Transport
from ingest.ops.config import mask
from ingest.ops.doctor_local import FAIL, OK, WARN, Check, ServerTime, where_from
from ingest.phoenix import capabilities
from ingest.phoenix.api import PhoenixSettings

if TYPE_CHECKING:
    from ingest.http import Response

# The supported Phoenix range: the oldest release and the newest the test suite runs against.
OLDEST_PHOENIX = capabilities.format_version(capabilities.OLDEST_SUPPORTED)
NEWEST_PHOENIX = capabilities.format_version(capabilities.NEWEST_TESTED)
TIMEOUT_S = 10.0
_PROBE_LOG_ID = "portkey-phoenix-ingest-doctor-probe"

__all__ = ["FAIL", "OK", "WARN", "Check", "ServerTime", "check_phoenix", "check_portkey"]


def _set_by(origins: Mapping[str, str], name: str) -> str:
    where = origins.get(name, "the default")
    return "the default" if where == "the default" else f"set by {where}"


def _reason(exc: Transient | RedirectRefused) -> str:
    """What went wrong, without any header value (the transport's own words)."""
    return str(exc)


# --------------------------------------------------------------------------- Phoenix


def check_phoenix(
    endpoint: str,
    api_key: str | None,
    project: str,
    headers: Mapping[str, str] | None = None,
    origins: Mapping[str, str] | None = None,
    session: Any = None,
) -> tuple[list[Check], ServerTime | None]:
    """Reachable, version, API key, OTLP protobuf accepted, project."""
    origins = origins or {}
    ep_from = where_from(origins.get("endpoint", ""), "PHOENIX_COLLECTOR_ENDPOINT")
    key_from = where_from(origins.get("api_key", ""), "PHOENIX_API_KEY")
    if (
        not endpoint.strip().startswith(("http://", "https://"))
        or not urlsplit(endpoint.strip()).hostname
    ):
        return [
            Check(
                "Phoenix endpoint",
                FAIL,
                f"PHOENIX_COLLECTOR_ENDPOINT{ep_from} is not an http(s) URL: {endpoint!r}.",
                "set PHOENIX_COLLECTOR_ENDPOINT (or --endpoint) to the Phoenix URL, "
                "e.g. http://localhost:6006",
            )
        ], None
    try:
        options = {"endpoint": endpoint, "project": project, "api_key": api_key,
                   "client_headers": headers}  # fmt: skip
        settings = PhoenixSettings.from_options(options)
    except ConfigError as exc:  # the message names the variable, never the value
        return [Check("Phoenix settings", FAIL, str(exc))], None
    base = settings.base_url
    http = Transport(settings.service(TIMEOUT_S), session)
    checks: list[Check] = []

    try:
        health = http.send("GET", "/healthz")
    except RedirectRefused as exc:
        return [
            Check(
                "Phoenix reachable",
                FAIL,
                f"{base}/healthz redirects to another host, {exc.host}; nothing was sent there.",
                "set PHOENIX_COLLECTOR_ENDPOINT (or --endpoint) to the final URL",
            )
        ], None
    except Transient as exc:
        return [
            Check(
                "Phoenix reachable",
                FAIL,
                f"no Phoenix at {base} ({_reason(exc)}); "
                f"the URL is {_set_by(origins, 'endpoint')}.",
                "start Phoenix, or set PHOENIX_COLLECTOR_ENDPOINT (or --endpoint) to its URL",
            )
        ], None
    when = ServerTime("Phoenix", health.headers.get("Date"), datetime.now(UTC))
    if health.status_code != 200:
        fix = "check PHOENIX_COLLECTOR_ENDPOINT points at the Phoenix server itself"
        if health.status_code in (401, 403, 407):
            fix = (
                "a proxy in front of Phoenix wants credentials: pass them with "
                "PHOENIX_CLIENT_HEADERS (or --client-headers)"
            )
        checks.append(
            Check(
                "Phoenix reachable",
                FAIL,
                f"{base}/healthz answered HTTP {health.status_code}, not Phoenix's 200 OK.",
                fix,
            )
        )
        return checks, when
    checks.append(Check("Phoenix reachable", OK, f"{base} answers"))
    features = capabilities.detect(lambda path: _get_text(http, path))
    checks.append(_phoenix_version(features))
    checks.append(_phoenix_features(features))

    checks.append(_phoenix_key(http, settings, key_from))
    if checks[-1].status != OK:
        return checks, when
    checks.append(_phoenix_otlp(http, settings))
    checks.append(_phoenix_project(http, settings))
    return checks, when


def _phoenix_key(http: Transport, settings: PhoenixSettings, key_from: str) -> Check:
    """A cheap authenticated read: with auth on, /v1 answers 401 to a missing or wrong key."""
    name, base, key = "Phoenix API key", settings.base_url, settings.api_key
    fix = "set PHOENIX_API_KEY (or --api-key) to a valid system or user key"
    try:
        read = http.send("GET", "/v1/projects", params={"limit": 1})
    except (Transient, RedirectRefused) as exc:
        return Check(name, FAIL, f"GET /v1/projects failed ({_reason(exc)}).",
                     "check that Phoenix is healthy (its server log)")  # fmt: skip
    status = read.status_code
    if status in (401, 403) and key:
        detail = (
            f"PHOENIX_API_KEY{key_from} rejected: Phoenix at {base} answered HTTP {status} "
            f"for key {mask(key)}."
        )
        return Check(name, FAIL, detail, f"{fix} (Phoenix: Settings > API Keys)")
    if status in (401, 403):
        detail = (
            f"PHOENIX_API_KEY is not set, and Phoenix at {base} requires authentication "
            f"(HTTP {status})."
        )
        return Check(name, FAIL, detail, f"{fix} (Phoenix: Settings > API Keys)")
    if status != 200:
        return Check(name, FAIL, f"GET /v1/projects answered HTTP {status}.",
                     "check PHOENIX_COLLECTOR_ENDPOINT and Phoenix's server log")  # fmt: skip
    return Check(name, OK, f"key {mask(key)} accepted" if key else "no key needed (auth is off)")


def _get_text(http: Transport, path: str) -> str | None:
    try:
        answer = http.send("GET", path)
    except (Transient, RedirectRefused):
        return None
    return answer.text if answer.status_code == 200 else None


def _phoenix_version(features: capabilities.ServerFeatures) -> Check:
    supported = f"supported: {OLDEST_PHOENIX} to {NEWEST_PHOENIX}"
    if features.version is None:
        return Check("Phoenix version", WARN, f"{features.found()} ({supported})",
                     f"use Phoenix {OLDEST_PHOENIX} or newer")  # fmt: skip
    if features.version < capabilities.OLDEST_SUPPORTED:
        return Check(
            "Phoenix version",
            WARN,
            f"{features.found()} is older than {OLDEST_PHOENIX}, the oldest supported",
            f"upgrade Phoenix to {OLDEST_PHOENIX} or newer",
        )
    if features.version > capabilities.NEWEST_TESTED:
        return Check("Phoenix version", OK, f"{features.found()} (newer than {NEWEST_PHOENIX}, "
                     "the newest tested)")  # fmt: skip
    return Check("Phoenix version", OK, f"{features.found()} ({supported})")


def _phoenix_features(features: capabilities.ServerFeatures) -> Check:
    """Which features this server offers; what it lacks is refused or done another way."""
    summary = features.summary()
    detail = "supported: " + ", ".join(f.key.replace("_", " ") for f, ok in summary if ok)
    lacking = [
        f"{f.key.replace('_', ' ')} (needs {capabilities.format_version(f.since)}: {f.instead})"
        for f, ok in summary
        if not ok
    ]
    if lacking:
        detail += "; not on this server: " + "; ".join(lacking)
    return Check("Phoenix features", OK, detail)


def _phoenix_otlp(http: Transport, settings: PhoenixSettings) -> Check:
    """An empty ExportTraceServiceRequest (zero bytes): Phoenix answers 200 and stores nothing."""
    headers = {"Content-Type": "application/x-protobuf"}
    try:
        answer = http.send("POST", "/v1/traces", data=b"", headers=headers)
    except (Transient, RedirectRefused) as exc:
        return Check(
            "Phoenix OTLP",
            FAIL,
            f"POST /v1/traces failed ({_reason(exc)}).",
            "check that Phoenix is healthy (its server log)",
        )
    if answer.status_code == 200:
        return Check("Phoenix OTLP", OK, f"{settings.traces_url} accepts protobuf spans")
    if answer.status_code in (401, 403):
        return Check(
            "Phoenix OTLP",
            FAIL,
            f"the key may read but not write spans (HTTP {answer.status_code} on POST /v1/traces).",
            "use a system key or a MEMBER/ADMIN user key for PHOENIX_API_KEY (not a VIEWER's)",
        )
    return Check(
        "Phoenix OTLP",
        FAIL,
        f"POST /v1/traces answered HTTP {answer.status_code} to an empty protobuf request.",
        f"check that PHOENIX_COLLECTOR_ENDPOINT is a Phoenix server ({OLDEST_PHOENIX} or newer) "
        "and not a proxy that rewrites requests",
    )


def _phoenix_project(http: Transport, settings: PhoenixSettings) -> Check:
    path = f"/v1/projects/{quote(settings.project, safe='')}"
    try:
        answer = http.send("GET", path)
    except (Transient, RedirectRefused) as exc:
        return Check("Phoenix project", WARN, f"could not look it up ({_reason(exc)})")
    if answer.status_code == 404:
        return Check("Phoenix project", OK, f"'{settings.project}' will be created on first use")
    if answer.status_code == 200:
        return Check("Phoenix project", OK, f"'{settings.project}' exists")
    return Check("Phoenix project", WARN, f"lookup answered HTTP {answer.status_code}")


# --------------------------------------------------------------------------- Portkey


def check_portkey(
    api_key: str | None,
    base_url: str,
    workspace: str | None = None,
    gateway_url: str | None = None,
    enrich: bool = False,
    required: bool = False,
    origins: Mapping[str, str] | None = None,
    session: Any = None,
    auth: str | None = None,
) -> tuple[list[Check], ServerTime | None]:
    """Key present, key accepted (sent the configured way, else the other way: which one
    works is said), the export API there, with the logs.export scope (and logs.view for
    --enrich)."""
    from ingest.sources.portkey.api import PortkeySettings

    origins = origins or {}
    if not api_key or not api_key.strip():
        if required:
            return [
                Check(
                    "Portkey API key",
                    FAIL,
                    "PORTKEY_API_KEY is not set; sync, backfill and reconcile need it.",
                    "set PORTKEY_API_KEY (or --portkey-api-key) to a Portkey API key with the "
                    "logs.export scope",
                )
            ], None
        return [
            Check(
                "Portkey API key",
                WARN,
                "not configured: only needed for sync, backfill, reconcile, prices plan/apply "
                "from Portkey and resync of a time range (import reads files).",
                "for those, set PORTKEY_API_KEY to a key with the logs.export scope "
                "(analytics.view too for reconcile)",
            )
        ], None
    try:
        options = {"portkey_api_key": api_key, "portkey_base_url": base_url, "portkey_auth": auth,
                   "workspace": workspace, "gateway_url": gateway_url}  # fmt: skip
        settings = PortkeySettings.from_options(options)
    except ConfigError as exc:
        return [Check("Portkey settings", FAIL, str(exc))], None  # the message says what to set

    key_from = where_from(origins.get("portkey_api_key", ""), "PORTKEY_API_KEY")
    http = Transport(replace(settings.service(), request_timeout_s=TIMEOUT_S), session)
    params = {"workspace_id": settings.workspace} if settings.workspace else {}
    try:
        answer = http.send("GET", "/logs/exports", params=params)
    except (Transient, RedirectRefused) as exc:
        return [
            Check(
                "Portkey reachable",
                FAIL,
                f"no answer from {settings.base_url} ({_reason(exc)}).",
                "check PORTKEY_BASE_URL (or --portkey-base-url) and the network/proxy",
            )
        ], None
    when = ServerTime("Portkey", answer.headers.get("Date"), datetime.now(UTC))
    checks = [Check("Portkey reachable", OK, f"{settings.base_url} answers")]
    if answer.status_code in (401, 404, 405):  # 404/405: no exports; is the key right anyway?
        path = "/logs/exports" if answer.status_code == 401 else f"/logs/{_PROBE_LOG_ID}"
        other = _other_auth(settings, session, path, params, key_from)
        if other is not None:
            checks.append(other[1])
            settings = other[0]
            if answer.status_code == 401:
                http = Transport(replace(settings.service(), request_timeout_s=TIMEOUT_S), session)
                answer = http.send("GET", "/logs/exports", params=params)
    checks.append(_export_scope(answer, settings, key_from))
    if enrich and checks[-1].status == OK:
        checks.append(_log_scope(http, settings, key_from))
    return checks, when


def _other_auth(settings: Any, session: Any, path: str, params: Mapping[str, str],
                key_from: str) -> tuple[Any, Check] | None:  # fmt: skip
    """When the key sent the configured way is rejected on `path` (401) and the other way is
    not: the settings that work and a check saying so; else None."""
    from ingest.sources.portkey.api import AUTH_MODES

    answers = {}
    for mode in (settings.auth, AUTH_MODES[1 - AUTH_MODES.index(settings.auth)]):
        service = replace(replace(settings, auth=mode).service(), request_timeout_s=TIMEOUT_S)
        try:
            answers[mode] = Transport(service, session).send("GET", path, params=params)
        except (Transient, RedirectRefused):
            return None
    first, second = (answers[mode].status_code for mode in answers)
    if first != 401 or second == 401:
        return None
    mode = next(m for m in answers if m != settings.auth)
    return replace(settings, auth=mode), Check(
        "Portkey auth",
        FAIL,
        f"PORTKEY_API_KEY{key_from} is rejected sent as {settings.auth} (HTTP 401 on GET "
        f"{path}) but accepted sent as {mode} (HTTP {second}).",
        f"set PORTKEY_AUTH to {mode} (or --portkey-auth {mode}; `portkey_auth` in the config file)",
    )


def _code(answer: Response) -> str:
    """Portkey's errorCode, e.g. ', AB03' (bodies are not echoed: they may quote the request)."""
    try:
        payload: Any = answer.json()
    except ValueError:
        return ""
    for key in ("data", "error"):
        inner = payload.get(key) if isinstance(payload, dict) else None
        if isinstance(inner, dict) and isinstance(inner.get("errorCode"), str):
            return f", {inner['errorCode'][:12]}"
    return ""


def _export_scope(answer: Response, settings: Any, key_from: str) -> Check:
    from ingest.sources.portkey.api import no_export_api

    status, code, key = answer.status_code, _code(answer), mask(settings.api_key)
    name = "Portkey API key"
    if status == 200:
        return Check(name, OK, f"key {key} accepted, with the logs.export scope")
    if status == 401:
        return Check(
            name,
            FAIL,
            f"PORTKEY_API_KEY{key_from} rejected: {settings.base_url} answered HTTP 401{code} "
            f"for key {key}.",
            "set PORTKEY_API_KEY to a valid key of this Portkey (keys of a self-hosted control "
            "plane need its PORTKEY_BASE_URL)",
        )
    if status == 403:
        return Check(
            name,
            FAIL,
            f"PORTKEY_API_KEY{key_from} lacks the logs.export scope (HTTP 403{code} on "
            "GET /logs/exports).",
            "in Portkey, give the key the logs.export scope (a Workspace or Admin API key; log "
            "exports also need the Enterprise plan)",
        )
    if 300 <= status < 400:
        return Check(
            name,
            FAIL,
            f"{settings.base_url} redirects (HTTP {status}); the key is never sent on redirects.",
            "set PORTKEY_BASE_URL to the final URL",
        )
    if status in (404, 405):
        return Check(
            "Portkey export API",
            FAIL,
            no_export_api(settings.base_url, "GET /logs/exports", f"HTTP {status}{code}", False),
            "import files exported from the gateway's UI; or check PORTKEY_BASE_URL",
        )
    if settings.workspace and status == 500:
        return Check(
            name,
            FAIL,
            f"Portkey failed to list exports of workspace '{settings.workspace}' (HTTP 500{code}).",
            "set PORTKEY_WORKSPACE to a workspace slug this key can see (like ws-example-a1b2c3)",
        )
    return Check(
        name,
        FAIL,
        f"GET /logs/exports answered HTTP {status}{code}.",
        "try again later; if it persists, check Portkey's status page",
    )


def _log_scope(http: Transport, settings: Any, key_from: str) -> Check:
    """--enrich reads single logs: a made-up id gives 404 with the scope, 403 without it."""
    base = settings.gateway_url or settings.base_url
    name = "Portkey logs.view scope"
    try:
        answer = http.send("GET", f"{base}/logs/{_PROBE_LOG_ID}")
    except (Transient, RedirectRefused) as exc:
        return Check(
            name,
            FAIL,
            f"no answer from {base} ({_reason(exc)}).",
            "check PORTKEY_GATEWAY_URL (or PORTKEY_BASE_URL)",
        )
    if answer.status_code in (200, 404):
        return Check(name, OK, "--enrich can read single logs")
    if answer.status_code in (401, 403):
        return Check(
            name,
            FAIL,
            f"PORTKEY_API_KEY{key_from} cannot read single logs (HTTP {answer.status_code}"
            f"{_code(answer)} on GET /logs/{{id}}), which --enrich needs.",
            "give the key the logs.view scope, or drop --enrich",
        )
    return Check(name, WARN, f"GET /logs/{{id}} answered HTTP {answer.status_code}")
