"""What a Phoenix project holds, in aggregate: the Phoenix side of `reconcile`.

How each figure is read, the cheapest correct way found in Phoenix 20.x:
- Span counts, Phoenix's token total and its computed cost per bucket: GraphQL
  `Project.recordCount`, `tokenCountTotal` and `costSummary` with a `timeRange` and a
  `filterCondition` that keeps the spans this tool wrote (`portkey.log_id is not None`). The
  database aggregates; nothing is transferred per span. Buckets are batched with aliases.
- Billed cost, Portkey token units and cache status per span: the span query DSL
  (`POST /v1/spans`, what phoenix.client's get_spans_dataframe sends) selecting only those
  attributes, in time chunks of at most CHUNK spans, summed as each chunk arrives.
  REST `GET .../spans` and GraphQL `Span.attributes` would carry whole spans (bodies included).
- Spans Phoenix could not price: its filter language binds `total_cost` from its span_costs
  table (a missing cost counts as 0), so a second query in the same request selects the LLM
  spans that have tokens but no cost. No per-span cost is ever fetched.
"""

from __future__ import annotations

import json
import logging
import math
import re
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import quote

from openinference.semconv.trace import OpenInferenceSpanKindValues, SpanAttributes

from ingest.convert.usage import IMAGE_COUNT
from ingest.errors import PhoenixError
from ingest.phoenix.api import PhoenixApi, PhoenixSettings

log = logging.getLogger(__name__)

CHUNK = 20_000  # spans per span query: bounds the memory of one answer
GRAPHQL_BUCKETS_PER_QUERY = 10  # 4 aliases each; Phoenix allows 50 aliases per query
GRAPHQL_MODELS_PER_QUERY = 40

# Attributes this tool writes (attributes.py `portkey_attributes`).
PORTKEY_LOG_ID = "portkey.log_id"
PORTKEY_COST = "portkey.cost"  # cents, as Portkey bills and its analytics sums
PORTKEY_TOTAL_UNITS = "portkey.total_units"
PORTKEY_CACHE_STATUS = "portkey.cache_status"
FROM_PORTKEY = f"{PORTKEY_LOG_ID} is not None"
LLM_KIND = OpenInferenceSpanKindValues.LLM.value
# An LLM span with something to price (tokens, or images billed per image) and no cost
UNPRICED = (
    f"{FROM_PORTKEY} and span_kind == '{LLM_KIND}' and total_cost == 0 and "
    f"({SpanAttributes.LLM_TOKEN_COUNT_PROMPT} > 0 or "
    f"{SpanAttributes.LLM_TOKEN_COUNT_COMPLETION} > 0 or "
    f"{IMAGE_COUNT} > 0)"
)
NO_MODEL = "(no llm.model_name)"
_COST = "{ total { cost } }"


class TimeWindow(Protocol):
    """A half-open time range that can be halved (`sources.windows.Window`)."""

    since: datetime
    until: datetime

    def can_split(self) -> bool: ...

    def halves(self) -> tuple[Any, Any]: ...


@dataclass
class PhoenixFigures:
    """What the Phoenix project holds for one bucket."""

    spans: int = 0  # every span in the project
    portkey_spans: int = 0  # spans with portkey.log_id (written by this tool)
    billed_cost_usd: float = 0.0  # sum of portkey.cost over the Portkey spans
    tokens: int = 0  # sum of portkey.total_units
    phoenix_tokens: float = 0.0  # Phoenix's own token total (llm.token_count.total)
    phoenix_cost_usd: float | None = None  # Phoenix's computed cost; None when it has none
    cache_hits: int = 0
    cache_known: int = 0  # spans that carry a cache status at all (enriched)

    @property
    def other_spans(self) -> int:
        return max(0, self.spans - self.portkey_spans)


class PhoenixTotals:
    """Aggregates of one Phoenix project: GraphQL counts and sums, and the span query DSL."""

    def __init__(
        self,
        settings: PhoenixSettings,
        session: Any = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self._api = PhoenixApi(settings, session, sleep)
        self._project_id: str | None = None
        # Phoenix caches these aggregates for up to an hour per (range, filter), and
        # `DELETE /v1/spans/{id}` invalidates the wrong cache entry (20.26 passes a trace rowid
        # where the handler expects a project id). A clause unique to this run that is always
        # true makes every answer come from the database.
        self._fresh = f"'{secrets.token_hex(6)}' != ''"

    def _condition(self, condition: str | None = None) -> str:
        return f"{condition} and {self._fresh}" if condition else self._fresh

    def _request(self, method: str, path: str, action: str, **kw: Any) -> Any:
        """One call with retries; a 404 is returned for the caller to read."""
        headers = {"Accept": "application/json"}
        return self._api.request(method, path, action, allow=(404,), headers=headers, **kw)

    def project_id(self) -> str | None:
        """The project's GraphQL id; None when Phoenix has no such project."""
        if self._project_id is None:
            path = f"/v1/projects/{quote(self.settings.project, safe='')}"
            response = self._request("GET", path, "describe the project")
            if response.status_code == 404:
                return None
            self._project_id = str(response.json()["data"]["id"])
        return self._project_id

    def graphql(self, query: str, variables: Mapping[str, Any]) -> dict[str, Any]:
        response = self._request(
            "POST",
            "/graphql",
            "answer a GraphQL query",
            json={"query": query, "variables": variables},
        )
        if response.status_code == 404:
            raise PhoenixError(f"Phoenix at {self.settings.base_url} has no /graphql endpoint.")
        body = response.json()
        if body.get("errors"):
            message = "; ".join(str(e.get("message"))[:200] for e in body["errors"])
            raise PhoenixError(f"Phoenix refused a GraphQL query: {message}")
        data: dict[str, Any] = body["data"]
        return data

    def _project_fields(self, fields: str, variables: dict[str, Any], decl: str) -> dict[str, Any]:
        query = f"query($id: ID!{decl}) {{ node(id: $id) {{ ... on Project {{ {fields} }} }} }}"
        node: dict[str, Any] = self.graphql(query, {"id": self.project_id(), **variables})["node"]
        return node

    def bucket_counts(self, windows: Sequence[TimeWindow]) -> list[PhoenixFigures]:
        """Counts, Phoenix's token total and computed cost per window (no span transferred)."""
        if self.project_id() is None:
            return [PhoenixFigures() for _ in windows]
        figures: list[PhoenixFigures] = []
        for start in range(0, len(windows), GRAPHQL_BUCKETS_PER_QUERY):
            batch = windows[start : start + GRAPHQL_BUCKETS_PER_QUERY]
            fields, decl = [], ", $all: String!, $f: String!"
            variables = {"all": self._condition(), "f": self._condition(FROM_PORTKEY)}
            for i, window in enumerate(batch):
                decl += f", $t{i}: TimeRange!"
                variables[f"t{i}"] = _time_range(window)
                fields.append(
                    f"a{i}: recordCount(timeRange: $t{i}, filterCondition: $all) "
                    f"p{i}: recordCount(timeRange: $t{i}, filterCondition: $f) "
                    f"k{i}: tokenCountTotal(timeRange: $t{i}, filterCondition: $f) "
                    f"c{i}: costSummary(timeRange: $t{i}, filterCondition: $f) {_COST}"
                )
            node = self._project_fields(" ".join(fields), variables, decl)
            for i in range(len(batch)):
                cost = (node[f"c{i}"] or {}).get("total") or {}
                figures.append(
                    PhoenixFigures(
                        spans=int(node[f"a{i}"]),
                        portkey_spans=int(node[f"p{i}"]),
                        phoenix_tokens=float(node[f"k{i}"] or 0),
                        phoenix_cost_usd=None if cost.get("cost") is None else float(cost["cost"]),
                    )
                )
        return figures

    def count(self, window: TimeWindow, condition: str) -> int:
        node = self._project_fields(
            "n: recordCount(timeRange: $t, filterCondition: $f)",
            {"t": _time_range(window), "f": self._condition(condition)},
            ", $t: TimeRange!, $f: String!",
        )
        return int(node["n"])

    def model_costs(self, models: Iterable[str], window: TimeWindow) -> dict[str, float | None]:
        """Phoenix's computed cost of each model's Portkey spans over `window`."""
        names = [m for m in models if m != NO_MODEL]
        costs: dict[str, float | None] = {}
        for start in range(0, len(names), GRAPHQL_MODELS_PER_QUERY):
            batch = names[start : start + GRAPHQL_MODELS_PER_QUERY]
            decl, variables, fields = ", $t: TimeRange!", {"t": _time_range(window)}, []
            for i, name in enumerate(batch):
                decl += f", $m{i}: String!"
                condition = f"{FROM_PORTKEY} and {SpanAttributes.LLM_MODEL_NAME} == {name!r}"
                variables[f"m{i}"] = self._condition(condition)
                fields.append(f"m{i}: costSummary(timeRange: $t, filterCondition: $m{i}) {_COST}")
            node = self._project_fields(" ".join(fields), variables, decl)
            for i, name in enumerate(batch):
                cost = ((node[f"m{i}"] or {}).get("total") or {}).get("cost")
                costs[name] = None if cost is None else float(cost)
        return costs

    def span_rows(self, window: TimeWindow, expected: int) -> Iterator[tuple[str, dict[str, Any]]]:
        """("span" | "unpriced", row) for the Portkey spans of `window`, in chunks of at most
        CHUNK spans (split by time using recordCount), each chunk one request."""
        if expected == 0 or self.project_id() is None:
            return
        if expected > CHUNK and window.can_split():
            for half in window.halves():
                yield from self.span_rows(half, self.count(half, FROM_PORTKEY))
            return
        yield from self._query(window, expected + CHUNK)

    def _query(self, window: TimeWindow, limit: int) -> Iterator[tuple[str, dict[str, Any]]]:
        spans = {
            "select": {
                "cost": {"key": PORTKEY_COST},
                "units": {"key": PORTKEY_TOTAL_UNITS},
                "cache": {"key": PORTKEY_CACHE_STATUS},
                "model": {"key": SpanAttributes.LLM_MODEL_NAME},
                "provider": {"key": SpanAttributes.LLM_PROVIDER},
                "kind": {"key": "span_kind"},
            },
            "filter": {"condition": FROM_PORTKEY},
        }
        unpriced = {
            "select": {
                "cost": {"key": PORTKEY_COST},
                "model": {"key": SpanAttributes.LLM_MODEL_NAME},
                "start": {"key": "start_time"},
            },
            "filter": {"condition": UNPRICED},
        }
        body = {
            "queries": [spans, unpriced],
            "start_time": window.since.isoformat(),
            "end_time": window.until.isoformat(),
            "limit": limit,
        }
        response = self._request(
            "POST",
            "/v1/spans",
            "answer a span query",
            params={"project_name": self.settings.project},
            json=body,
        )
        if response.status_code == 404:
            return  # no such project (any more)
        parts = parse_multipart_json(response.headers.get("Content-Type", ""), response.text)
        if len(parts) != 2:
            raise PhoenixError(
                f"Phoenix answered a span query with {len(parts)} result(s) instead of 2."
            )
        for kind, part in zip(("span", "unpriced"), parts, strict=True):
            rows = frame_rows(part)
            if len(rows) >= limit:
                log.warning("span query for %s hit its limit of %d rows", window, limit)
            for row in rows:
                yield kind, row


def _time_range(window: TimeWindow) -> dict[str, str]:
    return {"start": window.since.isoformat(), "end": window.until.isoformat()}


def parse_multipart_json(content_type: str, text: str) -> list[Any]:
    """The JSON documents of a `multipart/mixed` answer (Phoenix's span query with
    Accept: application/json), in order."""
    found = re.search(r'boundary="?([^";]+)"?', content_type)
    if not found:
        raise PhoenixError(f"Phoenix answered a span query with {content_type!r}, not multipart.")
    documents = []
    for part in text.split(f"--{found.group(1)}"):
        _, sep, payload = part.partition("\r\n\r\n")
        if sep and payload.strip():
            documents.append(json.loads(payload))
    return documents


def frame_rows(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Rows of a pandas `to_json(orient="table")`-like document with `<i>_<name>` columns,
    keyed by `<name>`; NaN becomes None."""
    rows = []
    for record in document.get("data", []):
        row = {}
        for key, value in record.items():
            name = key.split("_", 1)[1] if "_" in key else key
            if isinstance(value, float) and math.isnan(value):
                value = None
            row[name] = value
        rows.append(row)
    return rows
