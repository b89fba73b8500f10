"""Span reads for Phoenix servers older than 19.6, which lack the `span_id` filter.

Such a server ignores `span_id` on `GET /v1/projects/{id}/spans` and answers with every span
of the project, so asking it "which of these ids are stored" the new way would be wrong,
not only slow. Instead read the batch's start-time window (Phoenix filters a project's spans
by start time through an index) and keep the ids asked for. A delivery batch holds logs that
are consecutive in time, so the window holds little besides the batch itself
(bench/bench_verify_old_phoenix.py measures the cost beside today's read).

The functions take a `GetJson` callable, so the reader can wire them to its own transport.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

# get_json(path, query parameters) -> the parsed JSON body, or None when Phoenix answered 404
# (the project does not exist yet). Raises on other errors, as the reader's transport does.
GetJson = Callable[[str, Sequence[tuple[str, str]]], Any]

PAGE_LIMIT = 1000  # spans per page; Phoenix pages with `next_cursor`
SLACK = timedelta(milliseconds=1)  # Phoenix keeps start times as float seconds


def spans_in_window(
    get_json: GetJson, project: str, span_ids: Iterable[str], window: tuple[datetime, datetime]
) -> list[dict[str, Any]]:
    """The stored spans among `span_ids`, read from their start-time window ([earliest,
    latest] start of the spans asked about), as the REST API returns them."""
    wanted = set(span_ids)
    if not wanted:
        return []
    path = f"/v1/projects/{quote(project, safe='')}/spans"
    base = [
        ("start_time", (window[0] - SLACK).isoformat()),
        ("end_time", (window[1] + SLACK).isoformat()),  # exclusive upper bound
        ("limit", str(PAGE_LIMIT)),
    ]
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


def stored_in_window(
    get_json: GetJson, project: str, span_ids: Iterable[str], window: tuple[datetime, datetime]
) -> set[str]:
    """Which of `span_ids` Phoenix has stored, read from their start-time window."""
    return {_span_id(span) for span in spans_in_window(get_json, project, span_ids, window)}


def _span_id(span: dict[str, Any]) -> str:
    return str(span.get("context", {}).get("span_id", ""))
