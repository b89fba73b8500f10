"""Single Portkey logs (`GET /logs/{id}` on the gateway) for enrichment: fanned out over a
few threads at a bounded rate, in input order, with bounded look-ahead."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

from ingest.convert.records import ENRICHMENT_FIELDS
from ingest.errors import PortkeyLogNotFoundError
from ingest.sources.portkey_api import PortkeyApi
from ingest.sources.portkey_settings import PortkeySettings


def enrichment(log_object: Mapping[str, Any]) -> dict[str, Any]:
    """The non-exportable fields (`records.ENRICHMENT_FIELDS`) from a LogObject's `metrics`,
    ready to merge into an export record before `parse_record`; null or absent ones are left
    out so they never overwrite a value the export had."""
    metrics = log_object.get("metrics")
    if not isinstance(metrics, Mapping):
        return {}
    return {k: metrics[k] for k in ENRICHMENT_FIELDS if metrics.get(k) not in (None, "")}


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


class LogReader:
    """`GET /logs/{id}`, one at a time or many concurrently."""

    def __init__(
        self,
        settings: PortkeySettings,
        api: PortkeyApi,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings, self._api = settings, api
        self._sleep, self._clock = sleep, clock

    def get_log(self, log_id: str) -> dict[str, Any]:
        """`GET /logs/{logId}` on the gateway (data plane) URL: the LogObject."""
        if not log_id:
            raise ValueError("log_id must not be empty")
        base = self.settings.gateway_url or self.settings.base_url
        return self._api.call("GET", f"/logs/{quote(log_id, safe='')}", base=base, log_id=log_id)

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
