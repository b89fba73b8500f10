"""Portkey's API: export jobs (count, split, start, poll, download, verify) and single logs.

Export lifecycle (reference/portkey-api.md 2): `POST /logs/exports` creates a draft and tells how
many logs it holds (`total`), so a window over the export limit is bisected before anything is
started; the draft of a window that was too big is reused for the next count (`PUT` new
filters) instead of piling up drafts. Then `POST .../start`, poll `GET .../{id}`,
`GET .../download` for a signed URL on object storage, and a plain GET of that URL (never with
the Portkey key). The file is streamed to disk and must hold exactly `total` records; a short
file is never returned: the window is split and fetched again.

Every API call retries 429, 5xx, timeouts and dropped connections with backoff and jitter (or
Retry-After) until a deadline. 401/403 stop at once. Neither the API key nor a signed URL's
query string (its signature) ever reaches a message, a log line or an exception.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import requests
from requests.adapters import HTTPAdapter
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from ingest.convert.records import ENRICHMENT_FIELDS, EXPORT_FIELDS
from ingest.errors import (
    ConfigError,
    PortkeyAuthError,
    PortkeyError,
    PortkeyExportError,
    PortkeyLogNotFoundError,
    PortkeyUnavailableError,
)
from ingest.sources.windows import Window, concatenate, iso

__all__ = [
    "EXPORT_FIELDS",
    "PortkeyClient",
    "PortkeySettings",
    "PortkeyStats",
    "Window",
    "WindowFile",
    "enrichment",
]

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.portkey.ai/v1"
PORTKEY_EXPORT_LIMIT = 50_000  # logs per export job (reference 2.10)
DESCRIPTION_PREFIX = "portkey-phoenix-ingest"
STATUSES = ("draft", "in_progress", "success", "failed", "stopped")
_RETRY_STATUS = frozenset({408, 429}) | frozenset(range(500, 600))
_CHUNK = 1 << 16
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_EXPORT_SCOPE = (
    "the `logs.export` scope (a Workspace or Admin API key; log exports also need "
    "Portkey's Enterprise plan)"
)
_LOG_SCOPE = "the `logs.view` or `logs.read` scope to read single logs (enrichment)"


@dataclass(frozen=True)
class PortkeySettings:
    api_key: str = field(repr=False)
    base_url: str = DEFAULT_BASE_URL  # self-hosted control planes use their own URL
    workspace: str | None = None  # the workspace SLUG (a UUID silently matches nothing)
    gateway_url: str | None = None  # for GET /logs/{id}; default base_url
    retry_deadline_s: float = 300.0
    poll_interval_s: float = 5.0
    job_timeout_s: float = 3600.0  # a job still in_progress after this: error
    export_limit: int = PORTKEY_EXPORT_LIMIT
    max_job_restarts: int = 3
    request_timeout_s: float = 60.0
    max_download_attempts: int = 5  # signed URL + GET, per export
    enrich_concurrency: int = 4  # GET /logs/{id} in flight at once
    enrich_rate_per_s: float = 10.0  # GET /logs/{id} started per second

    def __post_init__(self) -> None:
        if not self.api_key or not self.api_key.strip():
            raise ConfigError(
                "PORTKEY_API_KEY is empty: set it to a Portkey API key with the logs.export scope."
            )
        for name, env in (("base_url", "PORTKEY_BASE_URL"), ("gateway_url", "PORTKEY_GATEWAY_URL")):
            url = getattr(self, name)
            if url is None:
                continue
            parts = urlsplit(url.strip())
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(
                    f"{env} must be an http(s) URL such as {DEFAULT_BASE_URL}, got {url!r}."
                )
            object.__setattr__(self, name, url.strip().rstrip("/"))
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
            "enrich_concurrency",
            "enrich_rate_per_s",
        )
        for name in positive:
            if not getattr(self, name) > 0:
                raise ConfigError(f"Portkey setting {name} must be positive.")
        if self.max_job_restarts < 0:
            raise ConfigError("Portkey setting max_job_restarts must be 0 or more.")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> PortkeySettings:
        """PORTKEY_API_KEY (required), PORTKEY_BASE_URL, PORTKEY_WORKSPACE, PORTKEY_GATEWAY_URL."""
        env = os.environ if env is None else env
        key = (env.get("PORTKEY_API_KEY") or "").strip()
        if not key:
            raise ConfigError(
                "PORTKEY_API_KEY is not set: create a Portkey API key with the "
                "logs.export scope (and logs.view for enrichment) and export it."
            )
        values: dict[str, Any] = {
            "api_key": key,
            "base_url": (env.get("PORTKEY_BASE_URL") or "").strip() or DEFAULT_BASE_URL,
            "workspace": (env.get("PORTKEY_WORKSPACE") or "").strip() or None,
            "gateway_url": (env.get("PORTKEY_GATEWAY_URL") or "").strip() or None,
        }
        return cls(**{**values, **overrides})


@dataclass(frozen=True)
class WindowFile:
    window: Window
    path: Path  # the downloaded JSONL, complete
    total: int  # Portkey's count; == number of records (non-blank lines) in the file


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


def enrichment(log_object: Mapping[str, Any]) -> dict[str, Any]:
    """The non-exportable fields (`records.ENRICHMENT_FIELDS`) from a LogObject's `metrics`,
    ready to merge into an export record before `parse_record`; null or absent ones are left
    out so they never overwrite a value the export had."""
    metrics = log_object.get("metrics")
    if not isinstance(metrics, Mapping):
        return {}
    return {k: metrics[k] for k in ENRICHMENT_FIELDS if metrics.get(k) not in (None, "")}


# --------------------------------------------------------------------------- answers


class _Transient(Exception):
    """Worth retrying: connection trouble, timeout, 408/429/5xx."""

    def __init__(
        self,
        reason: str,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(reason)
        self.status, self.code, self.retry_after = status, code, retry_after


class _DownloadProblem(Exception):
    """One download attempt failed; `backoff` False means ask for a new URL at once."""

    def __init__(self, reason: str, backoff: bool, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.backoff, self.retry_after = backoff, retry_after


def _retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds or an HTTP date (RFC 9110); None when absent or unreadable."""
    if not value or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


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


def _public(url: str) -> str:
    """scheme://host/path of a URL: never its query (a signed URL's signature lives there)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}{parts.path}"


def _scan(path: Path) -> tuple[int, bool]:
    """(non-blank lines, complete): incomplete when the last line is cut mid-record."""
    lines, last = 0, b""
    with path.open("rb") as stream:
        for raw in stream:  # one line in memory at a time
            if raw.strip():
                lines += 1
            last = raw
    if not last.strip() or last.endswith(b"\n"):
        return lines, True
    try:  # no final newline: complete only if the last line is a whole JSON value
        json.loads(last)
    except ValueError:
        return lines, False
    return lines, True


class _RateLimiter:
    """At most `rate` acquisitions per second, spaced evenly, shared by threads."""

    def __init__(self, rate: float, clock: Callable[[], float], sleep: Callable[[float], None]):
        self._interval, self._clock, self._sleep = 1.0 / rate, clock, sleep
        self._next: float | None = None
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            now = self._clock()
            at = now if self._next is None else max(now, self._next)
            self._next = at + self._interval
        if at > now:
            self._sleep(at - now)


# --------------------------------------------------------------------------- client


class PortkeyClient:
    """One run's Portkey client. Export methods are for one thread; `get_logs` fans out."""

    def __init__(
        self,
        settings: PortkeySettings,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        if session is None:
            session = requests.Session()
            size = max(10, settings.enrich_concurrency)
            session.mount("https://", HTTPAdapter(pool_connections=size, pool_maxsize=size))
            session.mount("http://", HTTPAdapter(pool_connections=size, pool_maxsize=size))
        self._session = session
        self._storage = requests.Session()  # signed URLs: a session that never holds the key
        self._sleep, self._clock = sleep, clock
        self._headers = {"x-portkey-api-key": settings.api_key, "Accept": "application/json"}
        self._spare: str | None = None  # a draft whose filters may be overwritten (PUT)
        self._lock = threading.Lock()
        self.stats = PortkeyStats()

    # ---- export jobs: counting and planning

    def count(self, window: Window, draft_id: str | None = None) -> tuple[str, int]:
        """Create a draft for `window` (or PUT its filters into `draft_id`): (export id, total)."""
        body: dict[str, Any] = {"filters": window.filters(), "requested_data": list(EXPORT_FIELDS)}
        if self.settings.workspace:
            body["workspace_id"] = self.settings.workspace
        if draft_id is not None:
            path = f"/logs/exports/{draft_id}"
            try:
                answer = self._call("PUT", path, body=body, export_id=draft_id)
            except PortkeyExportError as exc:
                if exc.status not in (400, 404, 409):
                    raise
                log.info(
                    "draft export %s cannot be reused (HTTP %s); creating a new one",
                    draft_id,
                    exc.status,
                )
            else:
                self.stats.drafts_reused += 1
                return draft_id, self._total(answer, f"PUT {path}", draft_id)
        body["description"] = f"{DESCRIPTION_PREFIX} {iso(window.since)}..{iso(window.until)}"
        answer = self._call("POST", "/logs/exports", body=body)
        export_id = answer.get("id")
        if not isinstance(export_id, str) or not export_id.strip():
            raise PortkeyExportError(
                "Portkey's answer to POST /logs/exports has no export id "
                f"(got keys {sorted(answer)})."
            )
        self.stats.drafts_created += 1
        return export_id, self._total(answer, "POST /logs/exports", export_id)

    def plan(self, window: Window) -> list[tuple[Window, str, int]]:
        """Sub-windows of `window` in time order, each with a draft and a total within the
        export limit; no job is started. A window with total 0 needs no job: its draft is kept
        for the next count, so its id may appear again on a later entry."""
        return list(self._plan(window))

    def _plan(self, window: Window) -> Iterator[tuple[Window, str, int]]:
        todo = [window]
        while todo:
            current = todo.pop()
            export_id, total = self.count(current, self._take_spare())
            if total > self.settings.export_limit:
                self._spare = export_id
                why = (
                    f"it holds {total} logs, more than the export limit of "
                    f"{self.settings.export_limit}"
                )
                todo.extend(reversed(self._split(current, why, export_id)))
                continue
            if total == 0:
                self._spare = export_id  # nothing to run: the draft can count the next window
            yield current, export_id, total

    def _take_spare(self) -> str | None:
        spare, self._spare = self._spare, None
        return spare

    def _split(self, window: Window, why: str, export_id: str) -> tuple[Window, Window]:
        if not window.can_split():
            raise PortkeyExportError(
                f"window {window} cannot be split further: {why} (export {export_id}, "
                "POST /logs/exports), and it is shorter than 1 second. Portkey's time filter "
                "cannot narrow it; export this second some other way or raise the export limit."
            )
        log.info("splitting window %s: %s", window, why)
        self.stats.splits += 1
        return window.halves()

    # ---- export jobs: running and downloading

    def fetch_window(self, window: Window, dest_dir: Path) -> WindowFile:
        """The whole window in ONE complete file (sub-window files concatenated in time order
        when it had to be split; the parts are deleted)."""
        dest_dir = Path(dest_dir)
        parts: list[WindowFile] = []
        whole = False
        try:
            parts.extend(self.windows(window, dest_dir))
            whole = len(parts) == 1
            if whole:
                return parts[0]
            path = dest_dir / window.file_name()
            concatenate([part.path for part in parts], path)
        finally:
            if not whole:  # the parts are concatenated now, or useless after an error
                for part in parts:
                    part.path.unlink(missing_ok=True)
        return WindowFile(window, path, sum(part.total for part in parts))

    def windows(self, window: Window, dest_dir: Path) -> Iterator[WindowFile]:
        """Complete files covering `window`, in time order (several when it had to be split)."""
        dest_dir = Path(dest_dir)
        dest_dir.mkdir(parents=True, exist_ok=True)
        for current, export_id, total in self._plan(window):
            result = self._fetch_planned(current, export_id, total, dest_dir)
            if isinstance(result, WindowFile):
                yield result
                continue
            for half in self._split(current, result, export_id):
                yield from self.windows(half, dest_dir)

    def _fetch_planned(
        self, window: Window, export_id: str, total: int, dest_dir: Path
    ) -> WindowFile | str:
        """The window's file, or why the window must be split and fetched again."""
        path = dest_dir / window.file_name()
        if total == 0:
            path.write_bytes(b"")
            return WindowFile(window, path, 0)
        ran = self._run_job(window, export_id, total)
        if isinstance(ran, str):
            return ran
        export_id, total = ran
        lines = self._download(export_id, path)
        if lines == total:
            self.stats.logs_fetched += total
            return WindowFile(window, path, total)
        path.unlink(missing_ok=True)  # never hand out a short (or overfull) window
        why = f"export {export_id} delivered {lines} records but Portkey counted {total}"
        log.warning("window %s: %s; splitting it and fetching again", window, why)
        return why

    def _run_job(self, window: Window, export_id: str, total: int) -> tuple[str, int] | str:
        """Start the job and wait for success, restarting failed/stopped runs a few times."""
        restarts = 0
        while True:
            self._start(export_id)
            status = self._await(export_id)
            if status == "success":
                return export_id, total
            if restarts >= self.settings.max_job_restarts:
                raise PortkeyExportError(
                    f"export {export_id} for window {window} ended {status} after "
                    f"{restarts} restart(s) (POST /logs/exports/{export_id}/start, then GET "
                    f"/logs/exports/{export_id}). Look at it in Portkey (Logs > Exports) and "
                    "rerun; nothing of this window was committed."
                )
            restarts += 1
            self.stats.job_restarts += 1
            log.warning(
                "export %s for window %s ended %s; restarting (%d of %d)",
                export_id,
                window,
                status,
                restarts,
                self.settings.max_job_restarts,
            )
            if status == "stopped":  # a stopped export cannot be started again: a fresh draft
                export_id, total = self.count(window, self._take_spare())
                if total > self.settings.export_limit:
                    return f"it now holds {total} logs, more than the export limit"

    def _start(self, export_id: str) -> None:
        path = f"/logs/exports/{export_id}/start"
        try:
            self._call("POST", path, export_id=export_id)
        except PortkeyExportError as exc:
            # A retried start whose first attempt took effect is refused (400): fine if it runs.
            if exc.status != 400:
                raise
            status = self._call("GET", f"/logs/exports/{export_id}", export_id=export_id)
            if status.get("status") not in ("in_progress", "success"):
                raise
        self.stats.jobs_started += 1

    def _await(self, export_id: str) -> str:
        """Poll until the job ends; its final status (success, failed or stopped)."""
        path = f"/logs/exports/{export_id}"
        started = self._clock()
        while True:
            status = self._call("GET", path, export_id=export_id).get("status")
            if status in ("success", "failed", "stopped"):
                return status
            if status not in ("draft", "in_progress"):
                shown = repr(status)[:60]
                raise PortkeyExportError(
                    f"Portkey reported status {shown} for export {export_id} (GET {path}); "
                    f"known values are {', '.join(STATUSES)}. Portkey's API may have changed: "
                    "nothing of this window was committed; rerun later or report it.",
                    code=str(status)[:60],
                )
            waited = self._clock() - started
            if waited >= self.settings.job_timeout_s:
                raise PortkeyExportError(
                    f"export {export_id} is still {status} after {waited:.0f} s (GET {path}); "
                    f"gave up after job_timeout_s={self.settings.job_timeout_s:g}. Portkey may "
                    "be busy: rerun later."
                )
            self._sleep(self.settings.poll_interval_s)

    def _download(self, export_id: str, path: Path) -> int:
        """Fetch the export into `path` (via `path.part`); its number of records."""
        part = path.with_name(path.name + ".part")
        attempts = self.settings.max_download_attempts
        backoff = wait_random_exponential(multiplier=0.5, max=30)

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, _DownloadProblem) and not exc.backoff:
                return 0.0  # expired or refused URL: ask for a new one at once
            if isinstance(exc, _DownloadProblem) and exc.retry_after is not None:
                return min(exc.retry_after, self.settings.retry_deadline_s)
            return float(backoff(state))

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "download of export %s failed (%s); asking for a new URL (attempt %d of %d)",
                export_id,
                exc,
                state.attempt_number + 1,
                attempts,
            )

        retrying = Retrying(
            retry=retry_if_exception_type(_DownloadProblem),
            stop=stop_after_attempt(attempts),
            wait=wait,
            sleep=self._sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            lines = retrying(lambda: self._fetch_file(export_id, part))
            part.replace(path)
        except _DownloadProblem as exc:
            raise PortkeyExportError(
                f"could not download export {export_id} (GET /logs/exports/{export_id}/download "
                f"and its signed URL) in {attempts} attempts; last problem: {exc}. Nothing of "
                "this window was committed; rerun later."
            ) from None
        finally:
            part.unlink(missing_ok=True)  # gone already unless the download failed
        self.stats.downloads += 1
        return lines

    def _fetch_file(self, export_id: str, part: Path) -> int:
        answer = self._call("GET", f"/logs/exports/{export_id}/download", export_id=export_id)
        url = answer.get("signed_url")
        if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
            raise PortkeyExportError(
                f"Portkey's answer to GET /logs/exports/{export_id}/download has no usable "
                f"signed_url (got keys {sorted(answer)})."
            )
        where = _public(url)
        log.info("downloading export %s from %s", export_id, where)
        try:
            # No Portkey key here: the URL carries its own signature, on another host.
            with self._storage.get(
                url, stream=True, timeout=self.settings.request_timeout_s
            ) as response:
                if response.status_code != 200:
                    raise self._storage_refusal(response, where)
                with part.open("wb") as out:
                    for chunk in response.iter_content(_CHUNK):
                        out.write(chunk)
        except requests.Timeout:
            raise _DownloadProblem(
                f"{where} did not answer within {self.settings.request_timeout_s:g} s", True
            ) from None
        except (
            requests.ConnectionError,
            requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ContentDecodingError,
        ) as exc:
            raise _DownloadProblem(
                f"the download from {where} broke off ({type(exc).__name__})", True
            ) from None
        lines, complete = _scan(part)
        if not complete:
            raise _DownloadProblem(
                f"the file from {where} ends in the middle of a record (truncated)", True
            )
        return lines

    @staticmethod
    def _storage_refusal(response: requests.Response, where: str) -> _DownloadProblem:
        """S3/Azure/GCS error answer -> a problem; 4xx (e.g. expired) asks for a new URL."""
        status = response.status_code
        head = next(response.iter_content(4096), b"").decode("utf-8", "replace")
        found = [re.search(rf"<{tag}>([^<]{{0,200}})</{tag}>", head) for tag in ("Code", "Message")]
        detail = ": ".join(m.group(1) for m in found if m)
        reason = f"{where} answered HTTP {status}" + (f" ({detail})" if detail else "")
        retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
        return _DownloadProblem(reason, status in _RETRY_STATUS, retry_after)

    # ---- single logs (enrichment)

    def get_log(self, log_id: str) -> dict[str, Any]:
        """`GET /logs/{logId}` on the gateway (data plane) URL: the LogObject."""
        if not log_id:
            raise ValueError("log_id must not be empty")
        base = self.settings.gateway_url or self.settings.base_url
        return self._call("GET", f"/logs/{quote(log_id, safe='')}", base=base, log_id=log_id)

    def get_logs(self, log_ids: Iterable[str]) -> Iterator[tuple[str, dict[str, Any] | None]]:
        """(id, LogObject or None when Portkey has no such log), in input order, with at most
        `enrich_concurrency` requests in flight and `enrich_rate_per_s` started per second."""
        workers = self.settings.enrich_concurrency
        limiter = _RateLimiter(self.settings.enrich_rate_per_s, self._clock, self._sleep)

        def one(log_id: str) -> dict[str, Any] | None:
            limiter.acquire()
            try:
                return self.get_log(log_id)
            except PortkeyLogNotFoundError:
                return None

        pending: deque[tuple[str, Future[dict[str, Any] | None]]] = deque()
        with ThreadPoolExecutor(workers, thread_name_prefix="portkey-enrich") as pool:
            try:
                for log_id in log_ids:
                    pending.append((log_id, pool.submit(one, log_id)))
                    if len(pending) >= 2 * workers:  # bounded look-ahead: memory stays flat
                        done_id, future = pending.popleft()
                        yield done_id, future.result()
                while pending:
                    done_id, future = pending.popleft()
                    yield done_id, future.result()
            finally:
                for _, future in pending:
                    future.cancel()

    # ---- analytics

    def analytics(self, path: str, params: Mapping[str, str]) -> dict[str, Any]:
        """`GET /analytics/...` (e.g. `/analytics/graphs/requests`) with these query
        parameters, plus `workspace_slug` when a workspace is set; the JSON answer."""
        query = dict(params)
        if self.settings.workspace:
            query["workspace_slug"] = self.settings.workspace
        try:
            return self._call("GET", f"{path}?{urlencode(query)}")
        except PortkeyAuthError as exc:
            raise PortkeyAuthError(
                f"Portkey refused GET {path} (HTTP {exc.status}): PORTKEY_API_KEY needs the "
                "`analytics.view` scope to read analytics.",
                status=exc.status,
                code=exc.code,
            ) from None

    # ---- HTTP

    def _total(self, answer: Mapping[str, Any], endpoint: str, export_id: str) -> int:
        total = answer.get("total")
        if isinstance(total, float) and total.is_integer():
            total = int(total)
        if not isinstance(total, int) or isinstance(total, bool) or total < 0:
            raise PortkeyExportError(
                f"Portkey's answer to {endpoint} for export {export_id} "
                f"has no usable total (got {str(total)[:40]!r})."
            )
        return total

    def _call(
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
        timeout = self.settings.request_timeout_s

        def attempt() -> dict[str, Any]:
            try:
                response = self._session.request(
                    method,
                    url,
                    json=body,
                    headers=self._headers,
                    timeout=timeout,
                    allow_redirects=False,  # a redirect would carry the key to another host
                )
            except requests.Timeout:
                raise _Transient(f"no answer within {timeout:g} s") from None
            except (
                requests.ConnectionError,
                requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError,
            ) as exc:
                raise _Transient(f"connection failed or dropped ({type(exc).__name__})") from None
            return self._answer(response, endpoint, export_id, log_id)

        return self._retrying(url, endpoint, export_id, attempt)

    def _retrying(
        self, url: str, endpoint: str, export_id: str | None, fn: Callable[[], dict[str, Any]]
    ) -> dict[str, Any]:
        deadline = self.settings.retry_deadline_s
        start = self._clock()
        backoff = wait_random_exponential(multiplier=0.5, max=30)

        def elapsed() -> float:
            return self._clock() - start

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, _Transient) and exc.retry_after is not None:
                return exc.retry_after
            return min(float(backoff(state)), max(0.0, deadline - elapsed()))

        def stop(state: RetryCallState) -> bool:
            exc = state.outcome.exception() if state.outcome else None
            asked = exc.retry_after if isinstance(exc, _Transient) else None
            return elapsed() >= deadline or (asked is not None and elapsed() + asked > deadline)

        def before_sleep(state: RetryCallState) -> None:
            with self._lock:
                self.stats.retries += 1
            sleep = state.next_action.sleep if state.next_action else 0.0
            exc = state.outcome.exception() if state.outcome else None
            log.warning("Portkey %s: %s; retrying in %.1f s", endpoint, exc, sleep)

        retrying = Retrying(
            retry=retry_if_exception_type(_Transient),
            wait=wait,
            stop=stop,
            sleep=self._sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            return retrying(fn)
        except _Transient as exc:
            host = urlsplit(url).netloc.rsplit("@", 1)[-1]
            which = f" for export {export_id}" if export_id else ""
            raise PortkeyUnavailableError(
                f"Portkey ({host}) did not answer {endpoint}{which} within {deadline:g} s of "
                f"retries; last answer: {exc}. Portkey may be down or rate-limiting this key "
                "(AB06 is its rate-limit code): rerun later, or allow a longer retry deadline.",
                status=exc.status,
                code=exc.code,
            ) from None

    def _answer(
        self, response: requests.Response, endpoint: str, export_id: str | None, log_id: str | None
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
            where = _public(response.headers.get("Location", "") or "?")
            raise PortkeyError(
                f"Portkey answered {endpoint} with a redirect ({said}) to "
                f"{where}: set PORTKEY_BASE_URL (or PORTKEY_GATEWAY_URL) to the "
                "final URL; the key is not sent on redirects.",
                status=status,
            )
        if status in (401, 403):
            need = _LOG_SCOPE if log_id is not None else _EXPORT_SCOPE
            if status == 401:
                url = "PORTKEY_GATEWAY_URL or PORTKEY_BASE_URL" if log_id else "PORTKEY_BASE_URL"
                text = (
                    f"Portkey rejected PORTKEY_API_KEY on {endpoint} ({said}). Check that "
                    f"the key is valid for this Portkey ({url}) and has {need}."
                )
            else:
                text = f"Portkey refused {endpoint} ({said}): PORTKEY_API_KEY needs {need}."
            raise PortkeyAuthError(text, status=status, code=code)
        if status in _RETRY_STATUS:
            retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
            if retry_after is not None:
                said += f", Retry-After {retry_after:g} s"
            raise _Transient(said, status, code, retry_after)
        if status == 404 and log_id is not None:
            raise PortkeyLogNotFoundError(
                f"Portkey has no log {log_id!r} ({endpoint}: {said}). It may not be published "
                "yet, or retention removed it.",
                status=status,
                code=code,
            )
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

    def _scrub(self, text: str) -> str:
        """Server text may echo what it was sent: make sure the key never travels on."""
        return text.replace(self.settings.api_key, "[REDACTED]")
