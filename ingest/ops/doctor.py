"""`doctor`: check the set-up end to end and say what to fix.

Each check is a small function returning `Check`s; none of them retries or waits long, since a
health check must answer quickly and the commands themselves retry. Nothing here ever puts a
secret in a message: keys are shown masked (`config.mask`) and response bodies are not echoed.
"""

from __future__ import annotations

import contextlib
import email.utils
import fcntl
import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from ingest.errors import ConfigError, StateError
from ingest.ops.config import ConfigInfo, mask, readable_secrets_warning
from ingest.phoenix.client import PhoenixSettings

OK, WARN, FAIL = "OK", "WARN", "FAIL"
MIN_PHOENIX_MAJOR = 20
MAX_CLOCK_SKEW_S = 60.0
TIMEOUT_S = 10.0
_PROBE_LOG_ID = "portkey-phoenix-ingest-doctor-probe"


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # OK, WARN or FAIL
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class ServerTime:
    """A server's `Date` header and our clock when its answer arrived."""

    server: str
    date_header: str | None
    local: datetime


def _where(origin: str, env: str) -> str:
    """` (from --api-key)` when a setting did not come from its usual variable."""
    return "" if origin in (env, "the default") else f" (from {origin})"


def _set_by(origins: Mapping[str, str], name: str) -> str:
    where = origins.get(name, "the default")
    return "the default" if where == "the default" else f"set by {where}"


def _reason(exc: requests.RequestException) -> str:
    text = str(exc)
    if "Connection refused" in text:
        return "connection refused"
    if isinstance(exc, requests.Timeout):
        return f"no answer within {TIMEOUT_S:g} s"
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "unknown host name"
    return type(exc).__name__


# --------------------------------------------------------------------------- Phoenix


def check_phoenix(
    endpoint: str,
    api_key: str | None,
    project: str,
    headers: Mapping[str, str] | None = None,
    origins: Mapping[str, str] | None = None,
    session: requests.Session | None = None,
) -> tuple[list[Check], ServerTime | None]:
    """Reachable, version, API key, OTLP protobuf accepted, project."""
    origins = origins or {}
    session = session or requests.Session()
    ep_from = _where(origins.get("endpoint", ""), "PHOENIX_COLLECTOR_ENDPOINT")
    key_from = _where(origins.get("api_key", ""), "PHOENIX_API_KEY")
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
    settings = PhoenixSettings(
        endpoint=endpoint, project=project, api_key=api_key or None, headers=dict(headers or {})
    )
    base, auth = settings.base_url, settings.auth_headers()
    checks: list[Check] = []

    try:
        health = session.get(f"{base}/healthz", headers=auth, timeout=TIMEOUT_S)
    except requests.RequestException as exc:
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
    checks.append(_phoenix_version(session, base, auth))

    checks.append(_phoenix_key(session, settings, key_from))
    if checks[-1].status != OK:
        return checks, when
    checks.append(_phoenix_otlp(session, settings))
    checks.append(_phoenix_project(session, settings))
    return checks, when


def _phoenix_key(session: requests.Session, settings: PhoenixSettings, key_from: str) -> Check:
    """A cheap authenticated read: with auth on, /v1 answers 401 to a missing or wrong key."""
    name, base, key = "Phoenix API key", settings.base_url, settings.api_key
    fix = "set PHOENIX_API_KEY (or --api-key) to a valid system or user key"
    try:
        read = session.get(
            f"{base}/v1/projects",
            params={"limit": 1},
            headers=settings.auth_headers(),
            timeout=TIMEOUT_S,
        )
    except requests.RequestException as exc:
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


def _phoenix_version(session: requests.Session, base: str, auth: Mapping[str, str]) -> Check:
    try:
        answer = session.get(f"{base}/arize_phoenix_version", headers=auth, timeout=TIMEOUT_S)
    except requests.RequestException as exc:
        return Check("Phoenix version", WARN, f"unknown ({_reason(exc)})")
    version = answer.text.strip()[:40] if answer.status_code == 200 else ""
    try:
        major = int(version.split(".")[0])
    except ValueError:
        return Check(
            "Phoenix version",
            WARN,
            f"unknown (HTTP {answer.status_code})",
            f"use Phoenix {MIN_PHOENIX_MAJOR}.0 or newer",
        )
    if major < MIN_PHOENIX_MAJOR:
        return Check(
            "Phoenix version",
            WARN,
            f"{version} is older than {MIN_PHOENIX_MAJOR}.0, the oldest version tested",
            f"upgrade Phoenix to {MIN_PHOENIX_MAJOR}.0 or newer",
        )
    return Check("Phoenix version", OK, version)


def _phoenix_otlp(session: requests.Session, settings: PhoenixSettings) -> Check:
    """An empty ExportTraceServiceRequest (zero bytes): Phoenix answers 200 and stores nothing."""
    headers = {**settings.auth_headers(), "Content-Type": "application/x-protobuf"}
    try:
        answer = session.post(settings.traces_url, data=b"", headers=headers, timeout=TIMEOUT_S)
    except requests.RequestException as exc:
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
        "check that PHOENIX_COLLECTOR_ENDPOINT is a Phoenix server (20.0 or newer) and not a "
        "proxy that rewrites requests",
    )


def _phoenix_project(session: requests.Session, settings: PhoenixSettings) -> Check:
    url = f"{settings.base_url}/v1/projects/{quote(settings.project, safe='')}"
    try:
        answer = session.get(url, headers=settings.auth_headers(), timeout=TIMEOUT_S)
    except requests.RequestException as exc:
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
    session: requests.Session | None = None,
) -> tuple[list[Check], ServerTime | None]:
    """Key present, key accepted with the logs.export scope (and logs.view for --enrich)."""
    from ingest.sources.portkey import PortkeySettings

    origins = origins or {}
    if not api_key or not api_key.strip():
        if required:
            return [
                Check(
                    "Portkey API key",
                    FAIL,
                    "PORTKEY_API_KEY is not set; sync and backfill need it.",
                    "set PORTKEY_API_KEY (or --portkey-api-key) to a Portkey API key with the "
                    "logs.export scope",
                )
            ], None
        return [
            Check(
                "Portkey API key",
                WARN,
                "not configured: only needed for sync/backfill (import reads files).",
                "for sync/backfill, set PORTKEY_API_KEY to a key with the logs.export scope",
            )
        ], None
    try:
        settings = PortkeySettings(
            api_key=api_key.strip(),
            base_url=base_url,
            workspace=(workspace or "").strip() or None,
            gateway_url=(gateway_url or "").strip() or None,
        )
    except ConfigError as exc:
        return [Check("Portkey settings", FAIL, str(exc))], None  # the message says what to set

    key_from = _where(origins.get("portkey_api_key", ""), "PORTKEY_API_KEY")
    session = session or requests.Session()
    headers = {"x-portkey-api-key": settings.api_key, "Accept": "application/json"}
    params = {"workspace_id": settings.workspace} if settings.workspace else {}
    url = f"{settings.base_url}/logs/exports"
    try:
        answer = session.get(
            url, params=params, headers=headers, timeout=TIMEOUT_S, allow_redirects=False
        )
    except requests.RequestException as exc:
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
    checks.append(_export_scope(answer, settings, key_from))
    if enrich and checks[-1].status == OK:
        checks.append(_log_scope(session, settings, headers, key_from))
    return checks, when


def _code(answer: requests.Response) -> str:
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


def _export_scope(answer: requests.Response, settings: Any, key_from: str) -> Check:
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
    if status == 404:
        return Check(
            name,
            FAIL,
            f"{settings.base_url}/logs/exports does not exist (HTTP 404{code}).",
            "check PORTKEY_BASE_URL (it usually ends in /v1)",
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


def _log_scope(
    session: requests.Session, settings: Any, headers: Mapping[str, str], key_from: str
) -> Check:
    """--enrich reads single logs: a made-up id gives 404 with the scope, 403 without it."""
    base = settings.gateway_url or settings.base_url
    name = "Portkey logs.view scope"
    try:
        answer = session.get(
            f"{base}/logs/{_PROBE_LOG_ID}",
            headers=headers,
            timeout=TIMEOUT_S,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
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


# --------------------------------------------------------------------------- state directory


def check_state_dir(state_dir: Path, origin: str = "the default") -> list[Check]:
    """Writable (create, write, fsync, delete), lock free, state file readable and known."""
    from ingest.run.state import (
        LOCK_FILE,
        STATE_VERSION,
        StateStore,
        exposed_state_dir,
        make_private_dir,
    )

    where = _where(origin, "INGEST_STATE_DIR")
    fix = "set --state-dir (or INGEST_STATE_DIR) to a directory this user can write"
    try:
        make_private_dir(state_dir)
        fd, tmp = tempfile.mkstemp(prefix=".doctor-", dir=state_dir)
        try:
            os.write(fd, b"doctor")
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(tmp)
    except OSError as exc:
        return [
            Check(
                "State directory",
                FAIL,
                f"{state_dir}{where} is not writable ({exc.strerror or exc}).",
                fix,
            )
        ]
    checks = [Check("State directory", OK, f"{state_dir} is writable")]
    if exposed := exposed_state_dir(state_dir):
        checks.append(Check("State directory", WARN, exposed, f"chmod 700 {state_dir}"))

    lock_path = state_dir / LOCK_FILE
    with contextlib.suppress(OSError), lock_path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            checks.append(
                Check(
                    "State lock",
                    WARN,
                    f"another run holds {lock_path} ({holder}); a run started now exits with 75.",
                    "wait for it to finish (or stop it); if that process is gone, the lock is "
                    "released automatically",
                )
            )
        else:
            fcntl.flock(handle, fcntl.LOCK_UN)
            checks.append(Check("State lock", OK, "free"))

    store = StateStore(state_dir)
    try:
        doc = store.load()
    except StateError as exc:
        checks.append(Check("State file", FAIL, str(exc), "move the state file aside and rerun"))
        return checks
    if not store.path.exists():
        checks.append(Check("State file", OK, "none yet (the first run creates it)"))
    else:
        detail = f"version {doc['version']} (this tool reads {STATE_VERSION}), "
        detail += f"{len(doc.get('files', {}))} file(s) recorded"
        watermark = (
            doc.get("sync", {}).get("watermark") if isinstance(doc.get("sync"), dict) else None
        )
        if watermark:
            detail += f", sync watermark {watermark}"
        checks.append(Check("State file", OK, detail))
    return checks


# --------------------------------------------------------------------------- clock, config file


def check_clock(observed: ServerTime) -> Check:
    """WARN when our clock and the server's `Date` differ by more than a minute: watermarks,
    the sync lag and the Phoenix time-range link all assume a correct clock."""
    name = f"Clock vs {observed.server}"
    if not observed.date_header:
        return Check(name, WARN, f"{observed.server} sent no Date header; skew not checked")
    try:
        server = email.utils.parsedate_to_datetime(observed.date_header)
    except (TypeError, ValueError):
        return Check(name, WARN, f"unreadable Date header {observed.date_header[:40]!r}")
    if server.tzinfo is None:
        server = server.replace(tzinfo=UTC)
    skew = (observed.local - server).total_seconds()
    if abs(skew) > MAX_CLOCK_SKEW_S:
        direction = "ahead of" if skew > 0 else "behind"
        return Check(
            name,
            WARN,
            f"this machine's clock is {abs(skew):.0f} s {direction} {observed.server}'s; "
            "watermarks and --lag assume a correct clock.",
            "synchronise the clock (NTP: `timedatectl set-ntp true`, chrony or ntpd)",
        )
    return Check(name, OK, f"within {MAX_CLOCK_SKEW_S:.0f} s ({skew:+.0f} s)")


def check_config_file(info: ConfigInfo | None) -> Check:
    if info is None:
        return Check("Config file", OK, "none (the --config option is not in use)")
    if not info.exists:
        return Check("Config file", OK, f"{info.path} not present; flags, env and defaults apply")
    warning = readable_secrets_warning(info.path, info.raw)
    if warning:
        return Check(
            "Config file", WARN, warning.removeprefix("warning: "), f"chmod 600 {info.path}"
        )
    return Check("Config file", OK, f"{info.path} loaded")
