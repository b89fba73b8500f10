"""Read spans back from a Phoenix project by id.

Which of a batch's ids are stored (verification, every batch) is asked through the span
query DSL on every server: it answers with ids only and costs Phoenix about a tenth of the
CPU of the `span_id` read (docs/phoenix-versions.md). Whole spans (`check`) are read through
`arize-phoenix-client` with the `span_id` filter on Phoenix 19.6 and newer, and from the
start-time window on older servers, which ignore that filter. The server's features are read
once per reader (`capabilities.detect`).

`phoenix.client` is imported lazily, since importing it costs seconds when the server package
is installed beside it. It talks through our httpx client (`http.httpx_client`): the same
headers, redirects followed on the same host only; one to another host is an error naming it.
"""

from __future__ import annotations

import importlib.util
import sys
import time
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
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
from ingest.phoenix import capabilities
from ingest.phoenix.api import PhoenixApi, auth_error, redirect_error
from ingest.phoenix.compat_reads import Window, spans_in_window, stored_by_query
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
        self._features: capabilities.ServerFeatures | None = None

    @property
    def features(self) -> capabilities.ServerFeatures:
        """What the server offers, read on first use and kept for the run."""
        if self._features is None:
            self._features = capabilities.detect(self._get_text)
        return self._features

    def _get_text(self, path: str) -> str | None:
        response = self._api.call("answer", lambda: self._api.transport.send("GET", path))
        if classify(response.status_code) is Outcome.AUTH:
            raise auth_error(self.settings, response.status_code)
        return response.text if response.ok else None

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

    def existing(self, span_ids: Iterable[str], window: Window = None) -> set[str]:
        """Which of these span ids (16-hex) Phoenix has stored in the project.

        `window` ([earliest start, latest start]) bounds the read by start time: Phoenix
        filters a project's spans by time through an index, while a filter on ids alone
        scans the whole project, so reads would slow down as a backfill grows.
        """
        ids = list(span_ids)
        if not ids:
            return set()
        return stored_by_query(self._post_text, self.settings.project, ids, window)

    def fetch(self, span_ids: Iterable[str], window: Window = None) -> list[dict[str, Any]]:
        """The stored spans among these ids (full spans, as the Phoenix REST API returns them).
        Servers older than 19.6 are read over `window` (the whole project when None)."""
        ids = list(span_ids)
        if not self.features.supports(capabilities.SPAN_READ_BY_ID):
            return spans_in_window(self._get_json, self.settings.project, ids, window)
        bounds = None
        if window is not None:  # a millisecond of slack: Phoenix keeps float seconds
            bounds = (window[0] - timedelta(milliseconds=1), window[1] + timedelta(milliseconds=1))
        found: list[dict[str, Any]] = []
        for start in range(0, len(ids), VERIFY_CHUNK):
            chunk = ids[start : start + VERIFY_CHUNK]
            found.extend(self._api.call("answer a read", lambda c=chunk: self._get(c, bounds)))
        return found

    def _post_text(self, path: str, params: Sequence[tuple[str, str]],
                   body: Mapping[str, Any]) -> str | None:  # fmt: skip
        headers = {"accept": "application/json"}
        response = self._read("POST", path, params=list(params), json=dict(body), headers=headers)
        return None if response is None else response.text

    def _get_json(self, path: str, params: Sequence[tuple[str, str]]) -> Any:
        response = self._read("GET", path, params=list(params))
        return None if response is None else response.json()

    def _read(self, method: str, path: str, **kw: Any) -> Any:
        """One read with retries; None when Phoenix answers 404 (no such project yet)."""

        def attempt() -> Any:
            response = self._api.transport.send(method, path, **kw)
            outcome = classify(response.status_code)
            if response.status_code == 404:
                return None
            if outcome is Outcome.OK:
                return response
            if outcome is Outcome.AUTH:
                raise auth_error(self.settings, response.status_code)
            if outcome is Outcome.RETRY:
                wait = retry_after_seconds(response.headers.get("retry-after"))
                raise Transient(f"HTTP {response.status_code}", response.status_code, None, wait)
            detail = response.text.strip().replace("\n", " ")[:300]
            raise self._unexpected(f"HTTP {response.status_code}: {detail}")

        return self._api.call("answer a read", attempt)

    def _unexpected(self, what: str) -> PhoenixError:
        """A read Phoenix answered, but not as this tool expects. When the server named its
        version, say which (an older Phoenix is not a wrong endpoint); else check the URL."""
        base = self.settings.base_url
        features = self._features
        if features is not None and features.version is not None:
            oldest = capabilities.format_version(capabilities.OLDEST_SUPPORTED)
            newest = capabilities.format_version(capabilities.NEWEST_TESTED)
            return PhoenixError(
                f"Phoenix {features.found()} at {base} did not answer a span read as this tool "
                f"expects ({what}). This tool supports Phoenix {oldest} to {newest}: upgrade "
                "Phoenix if it is older, and run `doctor` to see which features it offers."
            )
        return PhoenixError(
            f"Phoenix at {base} did not answer a span read as Phoenix does ({what}). "
            "Check PHOENIX_COLLECTOR_ENDPOINT points at a Phoenix server."
        )

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
            return self._unexpected(f"HTTP {status}: {text[:300]}")
        if is_transport_error(exc):
            return Transient(describe_connection_error(exc))
        # The client's own checks, e.g. "version could not be determined"; never its text,
        # which may quote a header.
        return self._unexpected(type(exc).__name__)
