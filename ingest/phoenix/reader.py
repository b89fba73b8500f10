"""Read spans back from a Phoenix project by id, on every supported Phoenix (12.18.0 and newer).

Which of a batch's ids are stored (verification, every batch) is asked through the span query
DSL on every server (`stored_by_query`): `POST /v1/spans` with `span_id in [...]` inside the
batch's start-time window. Phoenix compiles the condition to SQL on its span-id index and
answers with the ids only: about a tenth of the CPU of the `span_id` read
(docs/phoenix-versions.md, bench/bench_verify_old_phoenix.py). Whole spans (`check`) are read
through `arize-phoenix-client` with the `span_id` filter on Phoenix 19.6 and newer; older
servers ignore that filter and answer with every span of the project, so there they are read
from the start-time window, every page, keeping the ids asked for (`spans_in_window`; about 15
times the CPU of the query: not for every batch). The server's features are read once per
reader (`capabilities.detect`).

`phoenix.client` is imported lazily, since importing it costs seconds when the server package
is installed beside it. It talks through our httpx client (`http.httpx_client`): the same
headers, redirects followed on the same host only; one to another host is an error naming it.
Every answer is judged by `api.answer_error`, as every other Phoenix request is.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ingest.errors import PhoenixAuthError, PhoenixError, RedirectRefused, Transient
from ingest.http import describe_connection_error, httpx_client, is_transport_error, status_error
from ingest.phoenix import capabilities
from ingest.phoenix.api import PhoenixApi, PhoenixSettings, answer_error, redirect_error

if TYPE_CHECKING:
    from phoenix.client import Client

VERIFY_CHUNK = 1000  # Phoenix answers up to ~1,000 ids per read; more overflows the URL
# get_json(path, query parameters) -> the parsed JSON body, or None when Phoenix answered 404
# (the project does not exist yet). Raises on other errors, as the reader's transport does.
GetJson = Callable[[str, Sequence[tuple[str, str]]], Any]
# post_text(path, query parameters, JSON body) -> the response body as text, or None on 404.
# The span query answers `multipart/mixed` (one JSON table per query), hence text.
PostText = Callable[[str, Sequence[tuple[str, str]], Mapping[str, Any]], str | None]

PAGE_LIMIT = 1000  # spans per page; Phoenix pages with `next_cursor`
SLACK = timedelta(milliseconds=1)  # Phoenix keeps start times as float seconds


StartRange = tuple[datetime, datetime] | None  # [earliest, latest] start; None: the whole project


def _bounds(window: StartRange) -> list[tuple[str, str]]:
    """[earliest, latest] start -> Phoenix's [start_time, end_time) with a little slack."""
    if window is None:
        return []
    return [("start_time", (window[0] - SLACK).isoformat()),
            ("end_time", (window[1] + SLACK).isoformat())]  # fmt: skip


def stored_by_query(
    post_text: PostText, project: str, span_ids: Iterable[str], window: StartRange
) -> set[str]:
    """Which of `span_ids` (16-hex, as we made them) Phoenix has stored, asked through the
    span query DSL within their start-time window."""
    ids = sorted(set(span_ids))
    bounds = dict(_bounds(window))
    found: set[str] = set()
    for first in range(0, len(ids), VERIFY_CHUNK):
        chunk = ids[first : first + VERIFY_CHUNK]
        body = {
            "queries": [
                {
                    "select": {"span_id": {"key": "context.span_id"}},
                    # our ids are hex, so repr() is a safe DSL literal
                    "filter": {"condition": f"span_id in {chunk!r}"},
                }
            ],
            **bounds,
            "limit": len(chunk),
        }
        text = post_text("/v1/spans", [("project_name", project)], body)
        found |= _values(text or "") & set(chunk)
    return found


def _values(multipart: str) -> set[str]:
    """Every string cell of the JSON tables in a `multipart/mixed` span query answer."""
    cells: set[str] = set()
    for line in multipart.splitlines():
        if not line.startswith("{"):
            continue  # boundaries and part headers
        try:
            table = json.loads(line)
        except ValueError:
            continue
        for row in table.get("data", ()) if isinstance(table, dict) else ():
            if isinstance(row, dict):
                cells.update(value for value in row.values() if isinstance(value, str))
    return cells


def spans_in_window(
    get_json: GetJson, project: str, span_ids: Iterable[str], window: StartRange
) -> list[dict[str, Any]]:
    """The stored spans among `span_ids`, read from their start-time window ([earliest,
    latest] start of the spans asked about), as the REST API returns them."""
    wanted = set(span_ids)
    if not wanted:
        return []
    path = f"/v1/projects/{quote(project, safe='')}/spans"
    base = [*_bounds(window), ("limit", str(PAGE_LIMIT))]
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = get_json(path, base + ([("cursor", cursor)] if cursor else []))
        if page is None:
            return []  # no such project: nothing is stored
        found.extend(span for span in page.get("data", ()) if _span_id(span) in wanted)
        cursor = page.get("next_cursor")
        if not cursor or len(found) == len(wanted):
            return found


def _span_id(span: dict[str, Any]) -> str:
    return str(span.get("context", {}).get("span_id", ""))


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
        """A GET's body, or None when the server does not offer it; a refused key stops."""
        response = self._api.call("answer", lambda: self._api.transport.send("GET", path))
        error = answer_error(
            self.settings, response.status_code, response.headers, "", PhoenixError
        )
        if isinstance(error, PhoenixAuthError):
            raise error
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
        return self.path_of(None)

    def path_of(self, project: str | None) -> str:
        """A project's name (None: the settings' project) as a URL path segment."""
        return quote(project or self.settings.project, safe="")

    def existing(
        self, span_ids: Iterable[str], window: StartRange = None, project: str | None = None
    ) -> set[str]:
        """Which of these span ids (16-hex) Phoenix has stored in `project` (None: the
        settings' project; a routed run reads each project for its own spans).

        `window` ([earliest start, latest start]) bounds the read by start time: Phoenix
        filters a project's spans by time through an index, while a filter on ids alone
        scans the whole project, so reads would slow down as a backfill grows.
        """
        ids = list(span_ids)
        if not ids:
            return set()
        return stored_by_query(self._post_text, project or self.settings.project, ids, window)

    def fetch(
        self, span_ids: Iterable[str], window: StartRange = None, project: str | None = None
    ) -> list[dict[str, Any]]:
        """The stored spans among these ids (full spans, as the Phoenix REST API returns them).
        Servers older than 19.6 are read over `window` (the whole project when None)."""
        ids = list(span_ids)
        if not self.features.supports(capabilities.SPAN_READ_BY_ID):
            return spans_in_window(self._get_json, project or self.settings.project, ids, window)
        bounds = None
        if window is not None:  # a millisecond of slack: Phoenix keeps float seconds
            bounds = (window[0] - timedelta(milliseconds=1), window[1] + timedelta(milliseconds=1))
        found: list[dict[str, Any]] = []
        for start in range(0, len(ids), VERIFY_CHUNK):
            chunk = ids[start : start + VERIFY_CHUNK]
            found.extend(self._api.call("answer a read",
                                        lambda c=chunk: self._get(c, bounds, project)))  # fmt: skip
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
        response = self._api.request(
            method, path, "answer a read", allow=(404,), refused=self._unexpected, **kw
        )
        return None if response.status_code == 404 else response

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
        self, chunk: list[str], bounds: tuple[datetime, datetime] | None, project: str | None
    ) -> list[dict[str, Any]]:
        try:
            spans = self.client.spans.get_spans(
                project_identifier=self.path_of(project),
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
            error = answer_error(self.settings, status, headers, text, self._unexpected)
            return error or self._unexpected(f"HTTP {status}")
        if is_transport_error(exc):
            return Transient(describe_connection_error(exc))
        # The client's own checks, e.g. "version could not be determined"; never its text,
        # which may quote a header.
        return self._unexpected(type(exc).__name__)
