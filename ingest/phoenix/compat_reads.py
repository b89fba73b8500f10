"""Span reads that work on every supported Phoenix (12.18.0 and newer), including servers
older than 19.6, which lack the `span_id` filter.

Such a server ignores `span_id` on `GET /v1/projects/{id}/spans` and answers with every span
of the project, so asking it "which of these ids are stored" the new way would be wrong,
not only slow. Two reads work on every supported server (12.18.0 and newer):

- `stored_by_query` (verification, on every server): the span query DSL, `POST /v1/spans` with
  `span_id in [...]` inside the batch's start-time window. Phoenix compiles the condition to
  SQL on its span-id index and answers with the ids only: on 12.18.0 it cost Phoenix less
  CPU than the `span_id` read on 20.26.1 (bench/bench_verify_old_phoenix.py), and on
  20.26.1 about a tenth of it.
- `spans_in_window` (`check` on servers older than 19.6; it compares whole spans):
  `GET /v1/projects/{id}/spans` over the start-time window, every page, keeping the ids
  asked for. It returns full spans, so it costs Phoenix about 15 times the CPU of the query:
  not for every batch.

The functions take callables (`PostText`, `GetJson`), so the reader can wire them to its own
transport, retries and error messages.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

# get_json(path, query parameters) -> the parsed JSON body, or None when Phoenix answered 404
# (the project does not exist yet). Raises on other errors, as the reader's transport does.
GetJson = Callable[[str, Sequence[tuple[str, str]]], Any]
# post_text(path, query parameters, JSON body) -> the response body as text, or None on 404.
# The span query answers `multipart/mixed` (one JSON table per query), hence text.
PostText = Callable[[str, Sequence[tuple[str, str]], Mapping[str, Any]], str | None]

PAGE_LIMIT = 1000  # spans per page; Phoenix pages with `next_cursor`
QUERY_CHUNK = 1000  # ids per span query, as the reader chunks span_id reads
SLACK = timedelta(milliseconds=1)  # Phoenix keeps start times as float seconds


Window = tuple[datetime, datetime] | None  # [earliest, latest] start; None: the whole project


def _bounds(window: Window) -> list[tuple[str, str]]:
    """[earliest, latest] start -> Phoenix's [start_time, end_time) with a little slack."""
    if window is None:
        return []
    return [("start_time", (window[0] - SLACK).isoformat()),
            ("end_time", (window[1] + SLACK).isoformat())]  # fmt: skip


def stored_by_query(
    post_text: PostText, project: str, span_ids: Iterable[str], window: Window
) -> set[str]:
    """Which of `span_ids` (16-hex, as we made them) Phoenix has stored, asked through the
    span query DSL within their start-time window."""
    ids = sorted(set(span_ids))
    bounds = dict(_bounds(window))
    found: set[str] = set()
    for first in range(0, len(ids), QUERY_CHUNK):
        chunk = ids[first : first + QUERY_CHUNK]
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
    get_json: GetJson, project: str, span_ids: Iterable[str], window: Window
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


def stored_in_window(
    get_json: GetJson, project: str, span_ids: Iterable[str], window: Window
) -> set[str]:
    """Which of `span_ids` Phoenix has stored, read from their start-time window."""
    return {_span_id(span) for span in spans_in_window(get_json, project, span_ids, window)}


def _span_id(span: dict[str, Any]) -> str:
    return str(span.get("context", {}).get("span_id", ""))
