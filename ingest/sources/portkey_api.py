"""Portkey's API over the shared transport: one request with retries, its answer unwrapped or
turned into the right error (the message names the endpoint and the export or log).

Every call retries 429, 5xx, timeouts and dropped connections with backoff and jitter (or
Retry-After) until a deadline. 401/403 stop at once. A redirect is an error naming where it
pointed: the key is never sent on. Neither the API key nor a signed URL's query string ever
reaches a message, a log line or an exception.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from ingest.errors import (
    PortkeyAuthError,
    PortkeyError,
    PortkeyExportError,
    PortkeyLogNotFoundError,
    PortkeyUnavailableError,
)
from ingest.http import (
    Outcome,
    Response,
    Transient,
    Transport,
    classify,
    public_url,
    retry_after_seconds,
)
from ingest.sources.portkey_settings import PortkeySettings, PortkeyStats

log = logging.getLogger(__name__)

EXPORT_SCOPE = (
    "the `logs.export` scope (a Workspace or Admin API key; log exports also need "
    "Portkey's Enterprise plan)"
)
LOG_SCOPE = "the `logs.view` or `logs.read` scope to read single logs (enrichment)"


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
        stats: PortkeyStats,
        session: Any = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings, self.stats = settings, stats
        self._transport = Transport(settings.service(), session, sleep=sleep, clock=clock)
        self._lock = threading.Lock()

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
                text = (
                    f"Portkey rejected PORTKEY_API_KEY on {endpoint} ({said}). Check that "
                    f"the key is valid for this Portkey ({url}) and has {need}."
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
