"""Delete spans from Phoenix one by one, by their OpenTelemetry span id.

`DELETE /v1/spans/{span_id}` (every supported Phoenix, 12.18 to 20.x) removes exactly one
span and its annotations; its children stay, and a deleted id can be inserted again. The id
is matched server-wide (span ids are unique across a Phoenix server), so callers delete only
ids they have just read back from their own project. An unknown id answers 404: already
gone, which makes a repeated delete harmless. There is no bulk form by id; a trace or
time-window delete would also take spans this tool did not re-deliver, so this is the exact
way.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from ingest.errors import PhoenixError
from ingest.http import segment
from ingest.phoenix.api import PhoenixApi, PhoenixSettings
from ingest.phoenix.capabilities import SPAN_DELETE, format_version

# Tests only: SIGKILL this process right after the N-th span delete (a crash between the
# delete and the re-delivery, at a point the test chooses).
KILL_AFTER_ENV = "INGEST_TEST_KILL_AFTER_DELETES"


class SpanDeleter:
    """Deletes spans by id, a few requests at a time; counts what was and was not there."""

    def __init__(
        self,
        settings: PhoenixSettings,
        workers: int = 4,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.workers = max(1, workers)
        self._api = PhoenixApi(settings, sleep=sleep)
        self.deleted = 0
        self.absent = 0
        self._kill_after = int(os.environ.get(KILL_AFTER_ENV) or 0)

    def delete(self, span_ids: Iterable[str]) -> None:
        ids = list(span_ids)
        if self._kill_after:  # sequential, so the test knows exactly what was deleted
            for span_id in ids:
                self._count(self._delete_one(span_id))
                if self.deleted >= self._kill_after:
                    os.kill(os.getpid(), signal.SIGKILL)
            return
        with ThreadPoolExecutor(self.workers, thread_name_prefix="delete") as pool:
            for gone in pool.map(self._delete_one, ids):
                self._count(gone)

    def _count(self, gone: bool) -> None:
        if gone:
            self.deleted += 1
        else:
            self.absent += 1

    def _delete_one(self, span_id: str) -> bool:
        """True when the span was there and is now deleted; False when it was already gone."""
        response = self._api.request(
            "DELETE", f"/v1/spans/{segment(span_id)}", "delete a span", allow=(404, 405)
        )
        if response.status_code == 204 or response.status_code == 200:
            return True
        if response.status_code == 404 and "span_id" in response.text:
            return False  # "Span with span_id '...' not found": already deleted
        raise PhoenixError(missing_endpoint(self.settings, response.status_code))


def missing_endpoint(settings: PhoenixSettings, status: int) -> str:
    """The refusal when this Phoenix has no span delete: the feature, the version it needs
    and what the server answered."""
    return (
        f"Phoenix at {settings.base_url} cannot delete a span by id (DELETE /v1/spans/{{id}} "
        f"answered HTTP {status}): {SPAN_DELETE.title} needs Phoenix "
        f"{format_version(SPAN_DELETE.since)} or newer. Nothing was deleted by this request; "
        "upgrade Phoenix, then rerun resync."
    )
