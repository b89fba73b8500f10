"""`--enrich`: add what exports cannot carry (span ids, cache status, retries, virtual key)
from single logs (`GET /logs/{id}` on the gateway), fanned out over a few threads at a bounded
rate, in input order, with bounded look-ahead, and cached on disk so re-runs do not fetch again.

Enrichment only adds attributes: span and trace ids never depend on it (docs/design.md). A log
the single-log API does not know is delivered without enrichment and counted; a wrong key or an
unavailable API stops the run (nothing past the last verified record is committed).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ingest.convert.records import ENRICHMENT_FIELDS
from ingest.errors import PortkeyLogNotFoundError
from ingest.sources.portkey.api import PortkeyApi, PortkeySettings

log = logging.getLogger(__name__)


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

    def __init__(self, api: PortkeyApi) -> None:
        self.settings, self._api = api.settings, api
        self._sleep, self._clock = api.sleep, api.clock

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


class LogEnricher:
    """Merges single-log fields into export records, through an on-disk cache."""

    def __init__(self, settings: PortkeySettings, cache_path: Path) -> None:
        self.logs = LogReader(PortkeyApi(settings))
        self.fetched = 0
        self.not_found = 0
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(cache_path)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS enrichment (log_id TEXT PRIMARY KEY, fields TEXT)"
        )

    def enrich(self, raws: list[dict[str, Any]]) -> None:
        """Merge enrichment fields into these export records (in place), fetching what the
        cache does not hold. Fields the record already carries are kept as they are."""
        by_id = {str(raw["id"]): raw for raw in raws if isinstance(raw.get("id"), str | int)}
        known = self._cached(list(by_id))
        fetched: dict[str, dict[str, Any]] = {}
        for log_id, log_object in self.logs.get_logs(i for i in by_id if i not in known):
            if log_object is None:
                self.not_found += 1
                log.warning("log %s: unknown to GET /logs/{id}; delivered without enrichment",
                            log_id)  # fmt: skip
                continue
            fetched[log_id] = enrichment(log_object)
        self.fetched += len(fetched)
        self._store(fetched)
        known.update(fetched)
        for log_id, raw in by_id.items():
            for name, value in known.get(log_id, {}).items():
                if raw.get(name) in (None, ""):
                    raw[name] = value

    def _cached(self, log_ids: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(log_ids), 500):
            chunk = log_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT log_id, fields FROM enrichment WHERE log_id IN ({marks})", chunk
            )
            found.update((log_id, json.loads(fields)) for log_id, fields in rows)
        return found

    def _store(self, fields: dict[str, dict[str, Any]]) -> None:
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO enrichment VALUES (?, ?)",
                [(log_id, json.dumps(value)) for log_id, value in fields.items()],
            )

    def close(self) -> None:
        self._db.close()
