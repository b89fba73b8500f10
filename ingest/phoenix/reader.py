"""Read spans back from a Phoenix project by id, on every supported Phoenix (12.18.0 and newer),
and keep the gateway annotations of the spans delivered.

Which of a batch's ids are stored (verification) is asked through the span query DSL on every
server (`stored_by_query`): `POST /v1/spans`, `span_id in [...]` in the batch's start-time
window; Phoenix answers with the ids only, from its span-id index (a tenth of the CPU of the
`span_id` read: docs/phoenix-versions.md). Whole spans (`check`) are read
through `arize-phoenix-client` with the `span_id` filter on Phoenix 19.6 and newer; older
servers ignore that filter and answer with every span of the project, so there they are read
from the start-time window, every page, keeping the ids asked for (`spans_in_window`; about 15
times the CPU of the query: not for every batch). The server's features are read once per
reader (`capabilities.detect`). The client talks through our httpx client; every answer is
judged by `api.answer_error`, as every other Phoenix request is.

Gateway annotations (`SpanAnnotator`) show what Portkey knows (billed cost, cache, routing,
error class) where Phoenix shows judgements. They are upserts keyed by (span, name,
identifier), so re-runs correct them; written after the spans are verified, read back like
spans; a failure is counted, never losing a span. A routed run reads each project for its own.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from itertools import groupby
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ingest.convert.ids import span_hex
from ingest.convert.spans import project_of
from ingest.errors import PhoenixAuthError, PhoenixError, RedirectRefused, Transient
from ingest.http import describe_connection_error, httpx_client, is_transport_error, status_error
from ingest.phoenix import capabilities
from ingest.phoenix.api import (
    PhoenixApi,
    PhoenixSettings,
    answer_error,
    import_phoenix_client,
    redirect_error,
    unexpected_read,
)

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan
    from phoenix.client import Client

log = logging.getLogger(__name__)

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

    def path_of(self, project: str | None) -> str:
        """A project's name (None: the settings' one) as a URL path segment."""
        return quote(project or self.settings.project, safe="")

    def existing(self, span_ids: Iterable[str], window: StartRange = None,
                 project: str | None = None) -> set[str]:  # fmt: skip
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

    def fetch(self, span_ids: Iterable[str], window: StartRange = None,
              project: str | None = None) -> list[dict[str, Any]]:  # fmt: skip
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
        features = self._features
        found = features.found() if features is not None and features.version is not None else None
        return unexpected_read(self.settings, found, what)

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


ANNOTATOR = "portkey-phoenix-ingest"  # the identifier: our upserts never touch others'
BILLED_COST = "portkey billed cost"
CACHE = "portkey cache"
ROUTING = "portkey routing"
OUTCOME = "portkey outcome"
NAMES = (BILLED_COST, CACHE, ROUTING, OUTCOME)
READ_SPANS = VERIFY_CHUNK  # span ids per annotation read
FIRST_WAIT_S = 0.2  # before reading back a post just made (2 of Phoenix's idle ticks)


def outcome_label(status_code: Any, is_success: Any) -> str:
    """success, or the class of error a user filters on."""
    if isinstance(status_code, int):
        if status_code < 400:
            return "success"
        if status_code == 429:
            return "rate_limited"
        if status_code in (401, 403):
            return "auth_error"
        if status_code in (408, 504, 524):
            return "timeout"
        return "client_error" if status_code < 500 else "provider_error"
    if is_success is True:
        return "success"
    return "error" if is_success is False else "unknown"


def annotations_for(span: ReadableSpan) -> list[dict[str, Any]]:
    """The gateway annotations of one converted span (a pure function of its attributes)."""
    attrs = span.attributes or {}
    span_id = span_hex(span.context.span_id)  # type: ignore[union-attr]
    found: list[dict[str, Any]] = []

    def add(name: str, label: str | None = None, score: float | None = None,
            explanation: str | None = None) -> None:  # fmt: skip
        found.append({
            "span_id": span_id, "name": name, "annotator_kind": "CODE", "identifier": ANNOTATOR,
            "result": {"label": label, "score": score, "explanation": explanation},
        })  # fmt: skip

    cost = attrs.get("llm.cost.total")
    if isinstance(cost, int | float):
        cents = attrs.get("portkey.cost")
        add(BILLED_COST, score=float(cost), explanation=f"Portkey billed {cents} cents (USD)")
    cache = attrs.get("portkey.cache_status")
    if isinstance(cache, str) and cache:
        add(CACHE, label=cache.lower())
    mode = attrs.get("portkey.mode")
    if isinstance(mode, str) and mode:
        add(ROUTING, label=mode.lower(), explanation=_routing_explanation(attrs))
    status = attrs.get("portkey.status_code")
    label = outcome_label(status, attrs.get("portkey.is_success"))
    if label != "unknown":
        add(OUTCOME, label=label, explanation=f"HTTP {status}" if status is not None else None)
    return found


def _routing_explanation(attrs: Any) -> str | None:
    parts = []
    if (config := attrs.get("portkey.config")) is not None:
        parts.append(f"config {config}")
    if (index := attrs.get("portkey.last_used_option_index")) is not None:
        parts.append(f"served by target {index}")
    if retries := attrs.get("portkey.retry_success_count"):
        parts.append(f"{retries} retries")
    if provider := attrs.get("llm.provider"):
        parts.append(f"provider {provider}")
    return ", ".join(parts) or None


def _key(annotation: dict[str, Any]) -> tuple[Any, ...]:
    """What makes a stored annotation right: the same span, name and result."""
    result = annotation.get("result") or {}
    score = result.get("score")
    return (
        annotation["span_id"],
        annotation["name"],
        result.get("label"),
        None if score is None else round(float(score), 12),
        result.get("explanation") or None,
    )


class SpanAnnotator:
    """Upserts the gateway annotations of verified spans; reads them back later, in bulk.

    What this costs Phoenix (20.26, measured in bench/RESULTS.md): an asynchronous post is
    queued and inserted by its bulk inserter between span transactions; every read of
    annotations goes through its single writer connection, so a read waits for the span
    transaction in progress and the next one waits for the read. So, per committed group:
    one read of what Phoenix already holds for the spans it held before this run (a re-run
    finds its own values and writes only what changed: an upsert of the same value costs
    as much as an insert; spans this run stored are not read) and one asynchronous post of
    the rest. Posts are read back when `verify_after` are pending, and at the end, in reads
    of 1,000 spans, when Phoenix has long inserted them. What is still missing is posted
    again, synchronously; what fails is counted and never blocks a span.
    """

    def __init__(
        self,
        reader: SpanReader,
        verify_after: int = 20_000,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.reader = reader
        self.verify_after = verify_after
        self.clock = clock
        self.sleep = sleep
        self.written = 0  # in place as wanted, read back: written by this run or unchanged
        self.unchanged = 0  # of those, already stored with the same value: not written again
        self.failed = 0
        self._posted: deque[list[dict[str, Any]]] = deque()  # posted, not yet read back
        self._unverified = 0
        self._last_post_at = float("-inf")
        self._elsewhere: dict[str, str] = {}  # span id -> project, not the reader's (routed)

    def annotate(self, spans: Sequence[ReadableSpan], fresh: Collection[str] = ()) -> None:
        """Post the annotations of these (verified) spans that Phoenix does not hold yet.

        `fresh`: ids of spans this run stored (absent when it checked before sending). They
        hold no annotation yet, so what Phoenix holds is read for the others only: on a
        first import, no read at all (each read waits behind Phoenix's span inserts)."""
        wanted = [item for span in spans for item in annotations_for(span)]
        if not wanted:
            return
        home = ("", self.reader.settings.project)
        self._elsewhere.update((span_hex(span.context.span_id), project) for span in spans
                               if (project := project_of(span.resource)) not in home)  # fmt: skip
        to_read = {item["span_id"] for item in wanted}.difference(fresh)
        try:
            stored = {_key(item) for item in self._read_back(to_read)} if to_read else set()
        except Exception as exc:  # cannot tell what is there: write everything
            log.warning("could not read annotations (%s); writing them all", failure_reason(exc))
            stored = set()
        to_write = [item for item in wanted if _key(item) not in stored]
        self._forget(item for item in wanted if _key(item) in stored)
        unchanged = len(wanted) - len(to_write)
        self.unchanged += unchanged
        self.written += unchanged
        if to_write and self._post(to_write, sync=False):
            self._last_post_at = self.clock()
            self._posted.append(to_write)
            self._unverified += len(to_write)
        if self._unverified >= self.verify_after and len(self._posted) > 1:
            newest = self._posted.pop()  # just posted: may still be in Phoenix's queue
            self._verify(timeout_s=10.0)
            self._posted.append(newest)
            self._unverified = len(newest)

    def flush(self, timeout_s: float = 30.0) -> None:
        """Read back everything posted so far (at the end of a run)."""
        self._verify(timeout_s=timeout_s)
        if self.unchanged:
            log.info("%d annotations already held the right value: not written again",
                     self.unchanged)  # fmt: skip

    def _post(self, wanted: list[dict[str, Any]], sync: bool) -> bool:
        try:
            self.reader.client.spans.log_span_annotations(span_annotations=wanted, sync=sync)
        except Exception as exc:  # annotations are extra: never let them lose a span
            self.failed += len(wanted)
            log.warning("could not annotate %d spans (%s); the spans are delivered",
                        len({item["span_id"] for item in wanted}), failure_reason(exc))  # fmt: skip
            return False
        return True

    def _verify(self, timeout_s: float) -> None:
        wanted = [item for posted in self._posted for item in posted]
        self._posted.clear()
        self._unverified = 0
        if not wanted:
            return
        # Phoenix's bulk inserter takes a post within its 0.1 s tick when it is idle (the end
        # of a file): give the newest that long, then back off while some are still queued.
        self.sleep(max(0.0, FIRST_WAIT_S - (self.clock() - self._last_post_at)))
        missing = self._missing(wanted)
        deadline = self.clock() + timeout_s
        wait = FIRST_WAIT_S
        while missing and self.clock() < deadline:  # still queued in Phoenix: wait
            self.sleep(wait)
            wait = min(wait * 2, 2.0)
            missing = self._missing(missing)
        if missing and self._post(missing, sync=True):  # lost or refused: once more
            missing = self._missing(missing)
        self.written += len(wanted) - len(missing)
        self._forget(wanted)
        if missing:
            self.failed += len(missing)
            log.warning("%d annotations were not stored as sent", len(missing))

    def _missing(self, wanted: list[dict[str, Any]]) -> list[dict[str, Any]]:
        try:
            stored = {_key(item) for item in self._read_back({i["span_id"] for i in wanted})}
        except Exception as exc:
            log.warning("could not read annotations back (%s)", failure_reason(exc))
            return wanted
        return [item for item in wanted if _key(item) not in stored]

    def _forget(self, items: Iterable[dict[str, Any]]) -> None:
        for item in items if self._elsewhere else ():
            self._elsewhere.pop(item["span_id"], None)

    def _read_back(self, span_ids: Iterable[str]) -> list[dict[str, Any]]:
        """The spans' annotations, each read from its span's own project."""
        where = lambda span_id: self._elsewhere.get(span_id, "")  # noqa: E731
        found: list[dict[str, Any]] = []
        for project, group in groupby(sorted(span_ids, key=lambda i: (where(i), i)), where):
            ids = list(group)
            for start in range(0, len(ids), READ_SPANS):
                found.extend(
                    self.reader.client.spans.get_span_annotations(
                        span_ids=ids[start : start + READ_SPANS],
                        project_identifier=self.reader.path_of(project or None),
                        include_annotation_names=list(NAMES),
                        limit=READ_SPANS * len(NAMES),
                        timeout=int(self.reader.settings.request_timeout_s),
                    )
                )
        return [dict(item) for item in found if item.get("identifier") == ANNOTATOR]


def failure_reason(exc: Exception) -> str:  # a client call's failure in a few words
    if isinstance(exc, PhoenixError):
        return str(exc)
    response = getattr(exc, "response", None)
    if response is not None:
        return f"HTTP {response.status_code}"
    return type(exc).__name__
