"""Gateway annotations: what Portkey knows, shown where Phoenix shows judgements.

Phoenix ignores `llm.cost.*` and has no notion of a gateway cache, so attributes alone do not
show billed cost, cache hits, routing or error classes in its UI. Span annotations do: they
are columns and filters in the project view. They are upserts keyed by (span, name,
identifier), so re-runs correct them (unlike spans, which are write-once). Annotations are
written after the spans are verified and read back like spans; a failure to annotate is
counted and reported, and never loses or blocks a span.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from ingest.convert.ids import span_hex
from ingest.errors import PhoenixError
from ingest.phoenix.api import PhoenixApi
from ingest.phoenix.reader import SpanReader

log = logging.getLogger(__name__)

ANNOTATOR = "portkey-phoenix-ingest"  # the identifier: our upserts never touch others'
BILLED_COST = "portkey billed cost"
CACHE = "portkey cache"
ROUTING = "portkey routing"
OUTCOME = "portkey outcome"
NAMES = (BILLED_COST, CACHE, ROUTING, OUTCOME)
READ_SPANS = 1000  # span ids per read: the most Phoenix accepts in one request
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
    the rest. Posts are read back only when `verify_after`
    annotations are pending, and at the end, in reads of 1,000 spans: by then Phoenix has
    long inserted them, so no read waits on the annotations it checks. What is still
    missing is posted again, synchronously; what fails is counted and never blocks a span.
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

    def annotate(self, spans: Sequence[ReadableSpan], fresh: Collection[str] = ()) -> None:
        """Post the annotations of these (verified) spans that Phoenix does not hold yet.

        `fresh`: ids of spans this run stored (absent when it checked before sending). They
        hold no annotation yet, so what Phoenix holds is read for the others only: on a
        first import, no read at all (each read waits behind Phoenix's span inserts)."""
        wanted = [item for span in spans for item in annotations_for(span)]
        if not wanted:
            return
        to_read = {item["span_id"] for item in wanted}.difference(fresh)
        try:
            stored = {_key(item) for item in self._read_back(to_read)} if to_read else set()
        except Exception as exc:  # cannot tell what is there: write everything
            log.warning("could not read annotations (%s); writing them all", _reason(exc))
            stored = set()
        to_write = [item for item in wanted if _key(item) not in stored]
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
                        len({item["span_id"] for item in wanted}), _reason(exc))  # fmt: skip
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
        if missing:
            self.failed += len(missing)
            log.warning("%d annotations were not stored as sent", len(missing))

    def _missing(self, wanted: list[dict[str, Any]]) -> list[dict[str, Any]]:
        try:
            stored = {_key(item) for item in self._read_back({i["span_id"] for i in wanted})}
        except Exception as exc:
            log.warning("could not read annotations back (%s)", _reason(exc))
            return wanted
        return [item for item in wanted if _key(item) not in stored]

    def _read_back(self, span_ids: Iterable[str]) -> list[dict[str, Any]]:
        ids = sorted(span_ids)
        found: list[dict[str, Any]] = []
        for start in range(0, len(ids), READ_SPANS):
            found.extend(
                self.reader.client.spans.get_span_annotations(
                    span_ids=ids[start : start + READ_SPANS],
                    project_identifier=self.reader.project_path,
                    include_annotation_names=list(NAMES),
                    limit=READ_SPANS * len(NAMES),
                    timeout=int(self.reader.settings.request_timeout_s),
                )
            )
        return [dict(item) for item in found if item.get("identifier") == ANNOTATOR]


def _reason(exc: Exception) -> str:
    if isinstance(exc, PhoenixError):
        return str(exc)
    response = getattr(exc, "response", None)
    if response is not None:
        return f"HTTP {response.status_code}"
    return type(exc).__name__


# ---- annotations others made, kept across a resync -----------------------------------------

NOTE = "note"  # Phoenix's span notes: written only through POST /v1/span_notes
WRITE_CHUNK = 100  # annotations per synchronous post


def is_ours(annotation: Mapping[str, Any]) -> bool:
    """A gateway annotation this tool writes (and rewrites on every delivery)."""
    return annotation.get("identifier") == ANNOTATOR and annotation.get("name") in NAMES


def kept_form(annotation: Mapping[str, Any]) -> dict[str, Any]:
    """A stored annotation as it can be written back (POST /v1/span_annotations), with what
    Phoenix's API does not let a client write (author, source, times) under `original`."""
    result = annotation.get("result") or {}
    return {
        "span_id": annotation["span_id"], "name": annotation["name"],
        "annotator_kind": annotation.get("annotator_kind") or "HUMAN",
        "result": {key: result.get(key) for key in ("label", "score", "explanation")},
        "metadata": annotation.get("metadata") or {},
        "identifier": annotation.get("identifier") or "",
        "original": {key: annotation.get(key)
                     for key in ("id", "source", "user_id", "created_at", "updated_at")},
    }  # fmt: skip


def kept_key(annotation: Mapping[str, Any]) -> tuple[Any, ...]:
    """One kept annotation: Phoenix upserts on (span, name, identifier)."""
    return (annotation["span_id"], annotation["name"], annotation.get("identifier") or "")


def merged(*groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One annotation per (span, name, identifier); a later group wins."""
    return list({kept_key(item): item for group in groups for item in group}.values())


def _same(annotation: Mapping[str, Any]) -> tuple[Any, ...]:
    """What must be back in place, values included. A note is its text: Phoenix before 15.7
    stamps a new identifier on every note written."""
    result = annotation.get("result") or {}
    if annotation["name"] == NOTE:
        return (annotation["span_id"], NOTE, result.get("explanation"))
    score = result.get("score")
    return (*kept_key(annotation), annotation.get("annotator_kind"), result.get("label"),
            None if score is None else round(float(score), 12), result.get("explanation"),
            json.dumps(annotation.get("metadata") or {}, sort_keys=True, default=str))  # fmt: skip


class AnnotationKeeper:
    """Reads the annotations people and evaluators made on spans (every name, notes
    included, all but this tool's own) and writes them back after the spans are replaced."""

    def __init__(self, reader: SpanReader) -> None:
        self.reader = reader
        self._api = PhoenixApi(reader.settings)

    def read(self, span_ids: Iterable[str]) -> list[dict[str, Any]]:
        """The annotations on these spans that are not this tool's, in their kept form."""
        ids = sorted(set(span_ids))
        found: list[dict[str, Any]] = []
        for start in range(0, len(ids), READ_SPANS):
            try:
                found.extend(self.reader.client.spans.get_span_annotations(
                    span_ids=ids[start : start + READ_SPANS],
                    project_identifier=self.reader.project_path,
                    exclude_annotation_names=[],  # the client hides notes unless told
                    limit=10_000,
                    timeout=int(self.reader.settings.request_timeout_s),
                ))  # fmt: skip
            except Exception as exc:
                if getattr(getattr(exc, "response", None), "status_code", None) == 404:
                    continue  # none of these spans is stored (Phoenix 12.x answers 404)
                raise PhoenixError(
                    f"could not read the annotations of {len(ids)} spans in project "
                    f"'{self.reader.settings.project}' ({_reason(exc)}): nothing was deleted, "
                    "since what people added could not be kept. Rerun when Phoenix answers."
                ) from None
        return [kept_form(dict(item)) for item in found if not is_ours(item)]

    def restore(self, kept: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], str]:
        """Write these annotations back (spans verified); read them back. Returns the ones
        not in place afterwards, and why (the first refusal)."""
        reasons: list[str] = []
        notes = [item for item in kept if item["name"] == NOTE]
        others = [item for item in kept if item["name"] != NOTE]
        for start in range(0, len(others), WRITE_CHUNK):
            chunk = [_writable(item) for item in others[start : start + WRITE_CHUNK]]
            if not self._post(chunk, reasons) and len(chunk) > 1:
                for item in chunk:  # one refused annotation must not keep back the others
                    self._post([item], reasons)
        for note in notes:
            reasons.extend(self._write_note(note))
        if not kept:
            return [], ""
        try:
            stored = {_same(item) for item in self.read(item["span_id"] for item in kept)}
        except PhoenixError as exc:
            return [dict(item) for item in kept], str(exc)
        missing = [dict(item) for item in kept if _same(item) not in stored]
        return missing, (reasons[0] if reasons else "not stored as sent") if missing else ""

    def _post(self, annotations: list[dict[str, Any]], reasons: list[str]) -> bool:
        try:
            self.reader.client.spans.log_span_annotations(span_annotations=annotations, sync=True)
        except Exception as exc:
            reasons.append(_reason(exc))
            return False
        return True

    def _write_note(self, note: Mapping[str, Any]) -> list[str]:
        """Notes have their own endpoint (Phoenix 12.22 and newer; keeping the identifier
        from 15.7): text, author kind HUMAN, empty metadata."""
        body = {"data": {"span_id": note["span_id"], "note": note["result"]["explanation"] or "",
                         "identifier": note["identifier"]}}  # fmt: skip
        try:
            response = self._api.request("POST", "/v1/span_notes", "write a span note",
                                         allow=(404, 405, 422), json=body)  # fmt: skip
        except PhoenixError as exc:
            return [str(exc)]
        if response.status_code >= 400:
            return [f"POST /v1/span_notes answered HTTP {response.status_code} (notes need "
                    "a Phoenix that offers it)"]  # fmt: skip
        return []


def _writable(item: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in item.items() if key != "original"}
