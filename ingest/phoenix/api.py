"""Phoenix over the shared transport: its answers turned into this tool's errors.

401/403 -> PhoenixAuthError saying which key to set; 408/429/5xx (503: queue full) and
connection trouble are retried until the deadline, then PhoenixUnreachableError; a redirect to
another host -> PhoenixError naming that host (the client headers and spans never go there).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from ingest.errors import PhoenixAuthError, PhoenixError, PhoenixUnreachableError
from ingest.http import (
    Outcome,
    RedirectRefused,
    Transient,
    Transport,
    classify,
    retry_after_seconds,
)
from ingest.phoenix.settings import PhoenixSettings

T = TypeVar("T")


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


def raise_for(
    settings: PhoenixSettings, status: int, reason: str, retry_after: str | None, text: str,
    action: str,
) -> None:  # fmt: skip
    """Raise the right error for a non-2xx answer; return quietly on success."""
    outcome = classify(status)
    if outcome is Outcome.OK:
        return
    if outcome is Outcome.AUTH:
        raise auth_error(settings, status)
    said = f"HTTP {status} {reason or ''}".strip()
    if outcome is Outcome.RETRY:
        raise Transient(said, status, retry_after=retry_after_seconds(retry_after))
    detail = text.strip().replace("\n", " ")[:300]
    raise PhoenixError(
        f"Phoenix at {settings.base_url} refused to {action} ({said}: {detail}). "
        "Check PHOENIX_COLLECTOR_ENDPOINT points at a Phoenix server."
    )


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

    def request(self, method: str, path: str, action: str, *, allow: tuple[int, ...] = (),
                **kw: Any) -> Any:  # fmt: skip
        """One call with retries; answers with a status in `allow` (e.g. 404) are returned."""

        def attempt() -> Any:
            response = self.transport.send(method, path, **kw)
            if response.status_code not in allow:
                raise_for(
                    self.settings,
                    response.status_code,
                    response.reason,
                    response.headers.get("Retry-After"),
                    response.text,
                    action,
                )
            return response

        return self.call(action, attempt)
