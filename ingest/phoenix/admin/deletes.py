"""Delete spans from Phoenix one by one, by their OpenTelemetry span id.

`DELETE /v1/spans/{span_id}` (every supported Phoenix, 12.18 to 20.x) removes exactly one
span and its annotations; its children stay, and a deleted id can be inserted again. The id
is matched server-wide (span ids are unique across a Phoenix server), so callers delete only
ids they have just read back from their own project. An unknown id answers 404: already
gone, which makes a repeated delete harmless. There is no bulk form by id; a trace or
time-window delete would also take spans this tool did not re-deliver, so this is the exact
way.

A span's delete takes its annotations with it, so `AnnotationKeeper` reads the ones that are
not this tool's (people's labels and notes, evaluations) before, and writes them back to the
span's new copy after: only what Phoenix's API lets a client write (not the author, source or
times).
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ingest.errors import PhoenixError
from ingest.http import segment
from ingest.phoenix.api import PhoenixApi, PhoenixSettings
from ingest.phoenix.capabilities import SPAN_DELETE, format_version
from ingest.phoenix.reader import ANNOTATOR, NAMES, READ_SPANS, SpanReader, failure_reason

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


# ---- annotations others made, kept across a delete ------------------------------------------

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
                    project_identifier=self.reader.path_of(None),
                    exclude_annotation_names=[],  # the client hides notes unless told
                    limit=10_000,
                    timeout=int(self.reader.settings.request_timeout_s),
                ))  # fmt: skip
            except Exception as exc:
                if getattr(getattr(exc, "response", None), "status_code", None) == 404:
                    continue  # none of these spans is stored (Phoenix 12.x answers 404)
                raise PhoenixError(
                    f"could not read the annotations of {len(ids)} spans in project "
                    f"'{self.reader.settings.project}' ({failure_reason(exc)}): nothing was "
                    "deleted, since what people added could not be kept. Rerun when Phoenix "
                    "answers."
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
            reasons.append(failure_reason(exc))
            return False
        return True

    def _write_note(self, note: Mapping[str, Any]) -> list[str]:
        """Notes have their own endpoint (not in Phoenix 12.18; it keeps the identifier from
        15.7): text, annotator kind HUMAN, empty metadata."""
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
