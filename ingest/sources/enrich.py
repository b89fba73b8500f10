"""`--enrich`: add what exports cannot carry (span ids, cache status, retries, virtual key)
from `GET /logs/{id}` (bounded concurrency and rate: `PortkeyClient.get_logs`), cached on disk
so re-runs do not fetch again.

Enrichment only adds attributes: span and trace ids never depend on it (DESIGN.md,
invariant 1). A log the single-log API does not know is delivered without enrichment and
counted; a wrong key or an unavailable API stops the run (nothing past the last verified
record is committed).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

from ingest.sources.portkey import PortkeyClient, PortkeySettings, enrichment

log = logging.getLogger(__name__)


class Enricher:
    def __init__(self, settings: PortkeySettings, cache_path: Path) -> None:
        self.client = PortkeyClient(settings)
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
        for log_id, log_object in self.client.get_logs(i for i in by_id if i not in known):
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
