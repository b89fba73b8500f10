"""Read spans back from a Phoenix project by id, through `arize-phoenix-client`.

`phoenix.client` is imported lazily, since importing it costs seconds when the server package
is installed beside it. It talks through our httpx client (`http.httpx_client`): the same
headers, redirects followed on the same host only; one to another host is an error naming it.
"""

from __future__ import annotations

import importlib.util
import sys
import time
import types
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urljoin, urlsplit

from ingest.errors import PhoenixError
from ingest.http import (
    Outcome,
    RedirectRefused,
    Transient,
    classify,
    describe_connection_error,
    httpx_client,
    is_transport_error,
    retry_after_seconds,
    status_error,
)
from ingest.phoenix.api import PhoenixApi, auth_error, redirect_error
from ingest.phoenix.settings import PhoenixSettings

if TYPE_CHECKING:
    from phoenix.client import Client

VERIFY_CHUNK = 1000  # Phoenix answers up to ~1,000 ids per read; more overflows the URL


def import_phoenix_client() -> type[Client]:
    """`phoenix.client.Client`, without running `phoenix/__init__.py`.

    With the Phoenix server package installed beside the client (the `server` extra), that
    file imports the whole server: 5-9 s and ~380 MB before the first read. The client does
    not need it, so the `phoenix` namespace is set up bare and only `phoenix.client` loads.
    """
    if "phoenix" not in sys.modules:
        spec = importlib.util.find_spec("phoenix")  # locates the package, runs nothing
        if spec is not None and spec.submodule_search_locations is not None:
            namespace = types.ModuleType("phoenix")
            namespace.__path__ = list(spec.submodule_search_locations)
            namespace.__spec__ = spec
            sys.modules["phoenix"] = namespace
    from phoenix.client import Client

    return Client


class SpanReader:
    """Reads spans back from a Phoenix project through `arize-phoenix-client`."""

    def __init__(
        self, settings: PhoenixSettings, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.settings = settings
        self._api = PhoenixApi(settings, sleep=sleep)
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            Client = import_phoenix_client()
            # Our own httpx client: same headers (key as Bearer), no hop to another host.
            self._client = Client(http_client=httpx_client(self.settings.service()))
        return self._client

    @property
    def project_path(self) -> str:
        """The project name as a URL path segment (names may hold spaces or slashes)."""
        return quote(self.settings.project, safe="")

    def existing(
        self, span_ids: Iterable[str], window: tuple[datetime, datetime] | None = None
    ) -> set[str]:
        """Which of these span ids (16-hex) Phoenix has stored in the project.

        `window` ([earliest start, latest start]) bounds the read by start time: Phoenix
        filters a project's spans by time through an index, while a filter on ids alone
        scans the whole project, so reads would slow down as a backfill grows.
        """
        return {span["context"]["span_id"] for span in self.fetch(span_ids, window)}

    def fetch(
        self, span_ids: Iterable[str], window: tuple[datetime, datetime] | None = None
    ) -> list[dict[str, Any]]:
        """The stored spans among these ids (full spans, as the Phoenix REST API returns them)."""
        ids = list(span_ids)
        bounds = None
        if window is not None:  # a millisecond of slack: Phoenix keeps float seconds
            bounds = (window[0] - timedelta(milliseconds=1), window[1] + timedelta(milliseconds=1))
        found: list[dict[str, Any]] = []
        for start in range(0, len(ids), VERIFY_CHUNK):
            chunk = ids[start : start + VERIFY_CHUNK]
            found.extend(self._api.call("answer a read", lambda c=chunk: self._get(c, bounds)))
        return found

    def _get(
        self, chunk: list[str], bounds: tuple[datetime, datetime] | None
    ) -> list[dict[str, Any]]:
        try:
            spans = self.client.spans.get_spans(
                project_identifier=self.project_path,
                span_ids=chunk,
                start_time=bounds[0] if bounds else None,
                end_time=bounds[1] if bounds else None,
                limit=len(chunk),
                timeout=int(self.settings.request_timeout_s),
            )
        except Exception as exc:
            answered = status_error(exc)
            if answered is not None and answered[0] == 404:
                return []  # the project does not exist yet: nothing is stored
            raise self._error(exc) from None
        return [dict(span) for span in spans]

    def _error(self, exc: Exception) -> Exception:
        if isinstance(exc, RedirectRefused):
            return redirect_error(self.settings, exc.host, exc.status)
        answered = status_error(exc)
        if answered is not None:
            status, headers, text = answered
            outcome = classify(status)
            if outcome is Outcome.REDIRECT:
                target = urljoin(self.settings.base_url + "/", headers.get("location", ""))
                return redirect_error(self.settings, urlsplit(target).hostname or "?", status)
            if outcome is Outcome.AUTH:
                return auth_error(self.settings, status)
            if outcome is Outcome.RETRY:
                return Transient(f"HTTP {status}", status, None,
                                 retry_after_seconds(headers.get("retry-after")))  # fmt: skip
            return PhoenixError(
                f"Phoenix at {self.settings.base_url} refused to answer a read "
                f"(HTTP {status}: {text[:300]})."
            )
        if is_transport_error(exc):
            return Transient(describe_connection_error(exc))
        # The client's own checks, e.g. "version could not be determined"; never its text,
        # which may quote a header.
        return PhoenixError(
            f"Phoenix at {self.settings.base_url} did not answer a span read as Phoenix "
            f"does ({type(exc).__name__}). Check PHOENIX_COLLECTOR_ENDPOINT points "
            "at a Phoenix server."
        )
