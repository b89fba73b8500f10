"""One run's Portkey client: export jobs (`portkey_exports`, `portkey_download`), single logs
(`portkey_logs`) and analytics, over one API connection (`portkey_api`) and one set of stats.

Neither the API key nor a signed URL's query string (its signature) ever reaches a message, a
log line or an exception.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from ingest.convert.records import EXPORT_FIELDS
from ingest.errors import PortkeyAuthError
from ingest.sources.portkey_api import PortkeyApi
from ingest.sources.portkey_exports import ExportJobs
from ingest.sources.portkey_logs import LogReader, enrichment
from ingest.sources.portkey_settings import (
    DEFAULT_BASE_URL,
    PORTKEY_EXPORT_LIMIT,
    PortkeySettings,
    PortkeyStats,
    WindowFile,
)
from ingest.sources.windows import Window

__all__ = [
    "DEFAULT_BASE_URL",
    "EXPORT_FIELDS",
    "PORTKEY_EXPORT_LIMIT",
    "PortkeyClient",
    "PortkeySettings",
    "PortkeyStats",
    "Window",
    "WindowFile",
    "enrichment",
]


class PortkeyClient:
    """One run's Portkey client. Export methods are for one thread; `get_logs` fans out."""

    def __init__(
        self,
        settings: PortkeySettings,
        session: Any = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.stats = PortkeyStats()
        self._api = PortkeyApi(settings, self.stats, session, sleep, clock)
        self.exports = ExportJobs(settings, self._api, self.stats, sleep, clock)
        self.logs = LogReader(settings, self._api, sleep, clock)

    # ---- export jobs

    def count(self, window: Window, draft_id: str | None = None) -> tuple[str, int]:
        """Create a draft for `window` (or PUT its filters into `draft_id`): (export id, total)."""
        return self.exports.count(window, draft_id)

    def plan(self, window: Window) -> list[tuple[Window, str, int]]:
        """Sub-windows of `window` with a draft and a total within the export limit each."""
        return self.exports.plan(window)

    def fetch_window(self, window: Window, dest_dir: Path) -> WindowFile:
        """The whole window in ONE complete file."""
        return self.exports.fetch_window(window, dest_dir)

    def windows(self, window: Window, dest_dir: Path) -> Iterator[WindowFile]:
        """Complete files covering `window`, in time order."""
        return self.exports.windows(window, dest_dir)

    # ---- single logs (enrichment)

    def get_log(self, log_id: str) -> dict[str, Any]:
        """`GET /logs/{logId}` on the gateway (data plane) URL: the LogObject."""
        return self.logs.get_log(log_id)

    def get_logs(self, log_ids: Iterable[str]) -> Iterator[tuple[str, dict[str, Any] | None]]:
        """(id, LogObject or None when Portkey has no such log), in input order."""
        return self.logs.get_logs(log_ids)

    # ---- analytics

    def analytics(self, path: str, params: Mapping[str, str]) -> dict[str, Any]:
        """`GET /analytics/...` (e.g. `/analytics/graphs/requests`) with these query
        parameters, plus `workspace_slug` when a workspace is set; the JSON answer."""
        query = dict(params)
        if self.settings.workspace:
            query["workspace_slug"] = self.settings.workspace
        try:
            return self._api.call("GET", f"{path}?{urlencode(query)}")
        except PortkeyAuthError as exc:
            raise PortkeyAuthError(
                f"Portkey refused GET {path} (HTTP {exc.status}): PORTKEY_API_KEY needs the "
                "`analytics.view` scope to read analytics.",
                status=exc.status,
                code=exc.code,
            ) from None
