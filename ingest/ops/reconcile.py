"""Reconcile Portkey's analytics with what a Phoenix project holds, per day or hour, and
report the cost drift per model (Portkey's billed cost next to Phoenix's computed cost).

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
Portkey: for each bucket, `GET /analytics/graphs/{requests,cost,tokens}` and
`/analytics/summary/cache` over exactly that bucket, reading `summary`: exact whatever size and
time zone Portkey gives its data points (undocumented, reference/portkey-api.md 4.3).
"""

from __future__ import annotations

import json
import logging
import math
import re
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import requests
from openinference.semconv.trace import OpenInferenceSpanKindValues, SpanAttributes

from ingest.errors import ConfigError, PhoenixError, PortkeyError
from ingest.ops.prices import drift_fix, fix_lines
from ingest.phoenix.client import (
    PhoenixSettings,
    _classify,
    _connection_reason,
    _Retrier,
    _Transient,
)
from ingest.sources.windows import Window, iso

log = logging.getLogger(__name__)

BUCKETS = {"day": timedelta(days=1), "hour": timedelta(hours=1)}
MAX_BUCKETS = 2000  # each bucket costs 4 Portkey calls; more is a mistyped range
CHUNK = 20_000  # spans per span query: bounds the memory of one answer
GRAPHQL_BUCKETS_PER_QUERY = 10  # 4 aliases each; Phoenix allows 50 aliases per query
GRAPHQL_MODELS_PER_QUERY = 40
CACHE_HITS = frozenset({"HIT", "SEMANTIC HIT"})

# Attributes this tool writes (attributes.py `portkey_attributes`).
PORTKEY_LOG_ID = "portkey.log_id"
PORTKEY_COST = "portkey.cost"  # cents, as Portkey bills and its analytics sums
PORTKEY_TOTAL_UNITS = "portkey.total_units"
PORTKEY_CACHE_STATUS = "portkey.cache_status"
FROM_PORTKEY = f"{PORTKEY_LOG_ID} is not None"
_LLM = OpenInferenceSpanKindValues.LLM.value
UNPRICED = (
    f"{FROM_PORTKEY} and span_kind == '{_LLM}' and total_cost == 0 and "
    f"({SpanAttributes.LLM_TOKEN_COUNT_PROMPT} > 0 or "
    f"{SpanAttributes.LLM_TOKEN_COUNT_COMPLETION} > 0)"
)
NO_MODEL = "(no llm.model_name)"
_COST = "{ total { cost } }"

FOOTNOTES = {
    "MISSING": "MISSING n: Portkey logged n more requests than Phoenix holds spans for "
    "(not synced yet, quarantined, deleted or lost). This makes the exit code 1.",
    "EXTRA": "EXTRA n: Phoenix holds n more Portkey spans than Portkey's analytics counts "
    "(logs of another workspace imported into this project, logs Portkey's retention has "
    "removed, or analytics not caught up yet). Not a failure.",
    "COST": "COST: the billed cost carried by the spans differs from Portkey's analytics.",
    "TOKENS": "TOKENS: the token units carried by the spans differ from Portkey's analytics.",
    "CACHE": "CACHE: the cache hits carried by the spans differ from Portkey's analytics.",
}
OTHER_NOTE = (
    "other: spans in the project that did not come from Portkey (no portkey.log_id), e.g. "
    "live instrumentation writing to the same project; they are not compared."
)


# --------------------------------------------------------------------------- buckets


def make_buckets(since: datetime, until: datetime, size: str) -> list[Window]:
    """`[since, until)` cut at UTC day or hour boundaries; the first and last may be partial."""
    step = BUCKETS[size]
    if since >= until:
        raise ConfigError("--since must be before --until.")
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    since, until = since.astimezone(UTC), until.astimezone(UTC)
    edge = epoch + ((since - epoch) // step) * step
    if math.ceil((until - edge) / step) > MAX_BUCKETS:
        raise ConfigError(
            f"{since:%Y-%m-%d %H:%M}..{until:%Y-%m-%d %H:%M} is more than {MAX_BUCKETS} "
            f"{size} buckets: use --bucket day or a shorter range."
        )
    windows: list[Window] = []
    start = since
    while start < until:
        edge += step
        end = min(edge, until)
        if end > start:
            windows.append(Window(start, end))
        start = end
    return windows


def bucket_label(window: Window, size: str) -> str:
    """`2026-07-01` (a whole day), `2026-07-01 05:00` (a whole hour), else the exact range."""
    whole = window.duration == BUCKETS[size]
    if whole and size == "day":
        return f"{window.since:%Y-%m-%d}"
    if whole:
        return f"{window.since:%Y-%m-%d %H:%M}"
    return f"{window.since:%Y-%m-%d %H:%M:%S}..{window.until:%Y-%m-%d %H:%M:%S}"


# --------------------------------------------------------------------------- figures


@dataclass(frozen=True)
class PortkeyFigures:
    """Portkey's analytics for one bucket."""

    requests: int = 0
    cost_usd: float = 0.0
    tokens: int = 0
    cache_hits: int | None = None  # None: the cache summary was not available


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


@dataclass(frozen=True)
class BucketRow:
    label: str
    window: Window
    portkey: PortkeyFigures
    phoenix: PhoenixFigures

    @property
    def missing(self) -> int:
        return max(0, self.portkey.requests - self.phoenix.portkey_spans)

    @property
    def extra(self) -> int:
        return max(0, self.phoenix.portkey_spans - self.portkey.requests)

    @property
    def cache_comparable(self) -> bool:
        """Only enriched spans carry a cache status; compare only when all of them do."""
        return (
            self.portkey.cache_hits is not None
            and self.phoenix.portkey_spans > 0
            and self.phoenix.cache_known == self.phoenix.portkey_spans
        )

    @property
    def flags(self) -> list[str]:
        flags = []
        if self.missing:
            flags.append(f"MISSING {self.missing}")
        if self.extra:
            flags.append(f"EXTRA {self.extra}")
        if not self.missing and not self.extra:
            if not costs_match(self.portkey.cost_usd, self.phoenix.billed_cost_usd):
                flags.append("COST")
            if self.portkey.tokens != self.phoenix.tokens:
                flags.append("TOKENS")
            if self.cache_comparable and self.portkey.cache_hits != self.phoenix.cache_hits:
                flags.append("CACHE")
        return flags


def costs_match(a: float, b: float) -> bool:
    """Equal up to float summation noise (a millionth of a dollar or of the amount)."""
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6)


@dataclass
class ModelTally:
    """One model's Portkey LLM spans in the range."""

    model: str
    provider: str | None = None
    spans: int = 0
    billed_cost_usd: float = 0.0
    phoenix_cost_usd: float | None = None
    unpriced_spans: int = 0
    unpriced_billed_usd: float = 0.0
    first_unpriced: str | None = None  # ISO start of the earliest unpriced span

    @property
    def drift_usd(self) -> float | None:
        """Phoenix's cost minus Portkey's billed cost, over the spans Phoenix priced."""
        if self.phoenix_cost_usd is None or self.unpriced_spans >= self.spans:
            return None
        return self.phoenix_cost_usd - (self.billed_cost_usd - self.unpriced_billed_usd)


@dataclass
class Report:
    project: str
    phoenix_url: str
    since: datetime
    until: datetime
    bucket: str
    rows: list[BucketRow]
    models: list[ModelTally] = field(default_factory=list)

    @property
    def missing_rows(self) -> list[BucketRow]:
        return [row for row in self.rows if row.missing]

    @property
    def ok(self) -> bool:
        return not self.missing_rows

    @property
    def unpriced(self) -> list[ModelTally]:
        return [model for model in self.models if model.unpriced_spans]

    def totals(self) -> BucketRow:
        pk = PortkeyFigures(
            requests=sum(r.portkey.requests for r in self.rows),
            cost_usd=math.fsum(r.portkey.cost_usd for r in self.rows),
            tokens=sum(r.portkey.tokens for r in self.rows),
            cache_hits=None
            if any(r.portkey.cache_hits is None for r in self.rows)
            else sum(r.portkey.cache_hits or 0 for r in self.rows),
        )
        costs = [r.phoenix.phoenix_cost_usd for r in self.rows]
        ph = PhoenixFigures(
            spans=sum(r.phoenix.spans for r in self.rows),
            portkey_spans=sum(r.phoenix.portkey_spans for r in self.rows),
            billed_cost_usd=math.fsum(r.phoenix.billed_cost_usd for r in self.rows),
            tokens=sum(r.phoenix.tokens for r in self.rows),
            phoenix_tokens=math.fsum(r.phoenix.phoenix_tokens for r in self.rows),
            phoenix_cost_usd=None
            if all(c is None for c in costs)
            else math.fsum(c for c in costs if c is not None),
            cache_hits=sum(r.phoenix.cache_hits for r in self.rows),
            cache_known=sum(r.phoenix.cache_known for r in self.rows),
        )
        return BucketRow("total", Window(self.since, self.until), pk, ph)


# --------------------------------------------------------------------------- output


def _usd(value: float | None) -> str:
    return "-" if value is None else f"{value:.6f}"


def _cache(row: BucketRow) -> str:
    portkey = "-" if row.portkey.cache_hits is None else str(row.portkey.cache_hits)
    phoenix = str(row.phoenix.cache_hits) if row.phoenix.cache_known else "-"
    return f"{portkey}/{phoenix}"


_COLUMNS = (
    "bucket", "requests", "spans", "other", "billed $ Portkey", "billed $ spans",
    "Phoenix cost $", "tokens Portkey", "tokens spans", "cache hits", "flags",
)  # fmt: skip


def _cells(row: BucketRow) -> list[str]:
    return [
        row.label,
        str(row.portkey.requests),
        str(row.phoenix.portkey_spans),
        str(row.phoenix.other_spans),
        _usd(row.portkey.cost_usd),
        _usd(row.phoenix.billed_cost_usd),
        _usd(row.phoenix.phoenix_cost_usd),
        str(row.portkey.tokens),
        str(row.phoenix.tokens),
        _cache(row),
        " ".join(row.flags),
    ]


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        out = [cells[0].ljust(widths[0])]
        out += [cell.rjust(width) for cell, width in zip(cells[1:-1], widths[1:-1], strict=True)]
        out.append(cells[-1])
        return "  ".join(out).rstrip()

    return [line(header), *(line(r) for r in rows)]


def render(report: Report) -> str:
    """The human-readable report: the bucket table, its footnotes, the model drift table and
    the unpriced-model hint."""
    out = [
        f"Reconcile Portkey analytics with Phoenix project '{report.project}' at "
        f"{report.phoenix_url}, {iso(report.since)} .. {iso(report.until)} by {report.bucket}",
        "",
    ]
    totals = report.totals()
    out += _table(_COLUMNS, [_cells(r) for r in report.rows] + [_cells(totals)])
    out.append("")
    out += [
        "requests: Portkey analytics. spans: Phoenix spans from Portkey (portkey.log_id); "
        "other: the rest.",
        "billed $: Portkey's cost, from its analytics and from the spans' portkey.cost. "
        "Phoenix cost $: Phoenix's own price for the spans.",
        "cache hits: Portkey/spans ('-' when the spans carry no cache status: import with "
        "--enrich).",
    ]
    seen = {flag.split()[0] for row in report.rows for flag in row.flags}
    out += [f"  {FOOTNOTES[name]}" for name in FOOTNOTES if name in seen]
    if totals.phoenix.other_spans:
        out.append(f"  {OTHER_NOTE}")
    if report.missing_rows:
        which = ", ".join(f"{r.label} ({r.missing})" for r in report.missing_rows)
        out.append(f"Phoenix is missing requests Portkey logged in: {which}")
        start = min(r.window.since for r in report.missing_rows)
        end = max(r.window.until for r in report.missing_rows)
        out.append(
            f"To re-import: portkey-phoenix-ingest backfill --since {iso(start)} --until "
            f"{iso(end)} --project '{report.project}' --state-dir <a new directory>  "
            "(finished backfill windows are not exported again; spans Phoenix still holds "
            "are not sent twice)."
        )
    else:
        out.append("No bucket is missing requests.")
    if report.models:
        out += ["", "Cost by model (Portkey LLM spans in the range):"]
        out += _table(
            ("model", "spans", "billed $ Portkey", "Phoenix cost $", "drift $", "unpriced", ""),
            [_model_cells(m) for m in report.models],
        )
        out.append(
            "  drift $: Phoenix's cost minus Portkey's billed cost over the spans Phoenix priced."
        )
        out += fix_lines(report.models, report.since, report.until)  # issue 11
    out += hint_lines(report.unpriced)
    return "\n".join(out)


def _model_cells(model: ModelTally) -> list[str]:
    drift = model.drift_usd
    billed = model.billed_cost_usd - model.unpriced_billed_usd
    share = f" ({drift / billed:+.0%})" if drift is not None and billed else ""
    return [
        model.model,
        str(model.spans),
        _usd(model.billed_cost_usd),
        "-" if model.unpriced_spans >= model.spans else _usd(model.phoenix_cost_usd),
        "-" if drift is None else f"{drift:+.6f}{share}",
        str(model.unpriced_spans),
        drift_fix(drift, billed, model.unpriced_spans),  # issue 11: names `prices apply`
    ]


def name_pattern(model: str) -> str:
    """The regex to give Phoenix: this exact name (Phoenix's match is an unanchored search)."""
    return "^" + re.sub(r"([.^$*+?{}\[\]\\|()])", r"\\\1", model) + "$"


def hint_lines(unpriced: Sequence[ModelTally]) -> list[str]:
    if not unpriced:
        return []
    total = sum(m.unpriced_spans for m in unpriced)
    out = [
        "",
        f"Phoenix could not price {total} span(s) of {len(unpriced)} model(s); their cost is "
        "blank in Phoenix:",
    ]
    for m in unpriced:
        since = (m.first_unpriced or "")[:10] or "?"
        out.append(
            f"  {m.model}: {m.unpriced_spans} span(s) from {since}, billed "
            f"${m.unpriced_billed_usd:.6f} by Portkey"
        )
    out += [
        "To price them, add a custom model in Phoenix: Settings > Models > Add model, with the "
        "name pattern below, input and output prices per million tokens, and a start date on "
        "or before the first span:",
    ]
    for m in unpriced:
        if m.model == NO_MODEL:
            continue
        start = f"{(m.first_unpriced or '1970-01-01')[:10]}T00:00:00Z"
        out.append(f"  name pattern {name_pattern(m.model)}  start date {start}")
        create = {
            "name": m.model,
            "provider": m.provider or "",
            "namePattern": name_pattern(m.model),
            "startTime": start,
            "costs": [
                {"tokenType": "input", "costPerMillionTokens": "<price>", "kind": "PROMPT"},
                {"tokenType": "output", "costPerMillionTokens": "<price>", "kind": "COMPLETION"},
            ],
        }
        out.append(
            "    or GraphQL: mutation($in: CreateModelMutationInput!) "
            "{ createModel(input: $in) { model { id } } }  with $in = " + json.dumps(create)
        )
    out.append(
        "Phoenix prices a span once, when it arrives: spans already stored keep a blank cost. "
        "After adding the price, delete those spans in Phoenix and run `backfill` over their "
        "range again with a fresh --state-dir (spans still present are not sent twice)."
    )
    return out


def to_dict(report: Report) -> dict[str, Any]:
    """The --json document (keys documented in README.md)."""

    def row_dict(row: BucketRow) -> dict[str, Any]:
        return {
            "bucket": row.label,
            "since": iso(row.window.since),
            "until": iso(row.window.until),
            "portkey": asdict(row.portkey),
            "phoenix": {**asdict(row.phoenix), "other_spans": row.phoenix.other_spans},
            "missing": row.missing,
            "extra": row.extra,
            "flags": row.flags,
        }

    return {
        "project": report.project,
        "phoenix_url": report.phoenix_url,
        "since": iso(report.since),
        "until": iso(report.until),
        "bucket": report.bucket,
        "ok": report.ok,
        "buckets": [row_dict(row) for row in report.rows],
        "totals": row_dict(report.totals()),
        "missing_buckets": [{"bucket": r.label, "missing": r.missing} for r in report.missing_rows],
        "models": [
            {**asdict(m), "drift_usd": m.drift_usd, "name_pattern": name_pattern(m.model)}
            for m in report.models
        ],
        "unpriced_models": [m.model for m in report.unpriced],
    }


# --------------------------------------------------------------------------- Portkey


def _number(answer: Mapping[str, Any], key: str, endpoint: str) -> float:
    summary = answer.get("summary")
    value = summary.get(key) if isinstance(summary, Mapping) else None
    if value is None:
        return 0.0  # an empty bucket may come without totals
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise PortkeyError(
            f"Portkey's answer to GET {endpoint} has no usable summary.{key} "
            f"(got {str(value)[:40]!r})."
        )
    return number


def portkey_figures(get: Callable[[str, dict[str, str]], dict[str, Any]], window: Window,
                    ) -> PortkeyFigures:  # fmt: skip
    """One bucket's analytics; `get(path, params)` is `PortkeyClient.analytics`."""
    params = {
        "time_of_generation_min": _offset_iso(window.since),
        "time_of_generation_max": _offset_iso(window.until),
    }

    def total(path: str, key: str = "total") -> float:
        return _number(get(path, params), key, path)

    requests_ = int(total("/analytics/graphs/requests"))
    cost_cents = total("/analytics/graphs/cost")
    tokens = int(total("/analytics/graphs/tokens"))
    try:
        hits: int | None = int(total("/analytics/summary/cache", "hits"))
    except PortkeyError as exc:  # cache analytics is optional: report it as unknown
        if exc.status is None or exc.status in (401, 403) or exc.status >= 500:
            raise
        log.info("no cache summary for %s: %s", window, exc)
        hits = None
    return PortkeyFigures(requests_, cost_cents / 100, tokens, hits)


def _offset_iso(moment: datetime) -> str:
    """`2026-07-01T00:00:00+00:00`: the form Portkey documents for analytics (4.2)."""
    return iso(moment).removesuffix("Z") + "+00:00"


# --------------------------------------------------------------------------- Phoenix


class PhoenixTotals:
    """Aggregates of one Phoenix project: GraphQL counts and sums, and the span query DSL."""

    def __init__(
        self,
        settings: PhoenixSettings,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.session = session or requests.Session()
        self._retrier = _Retrier(settings, sleep)
        self._project_id: str | None = None
        # Phoenix caches these aggregates for up to an hour per (range, filter), and
        # `DELETE /v1/spans/{id}` invalidates the wrong cache entry (20.26 passes a trace rowid
        # where the handler expects a project id). A clause unique to this run that is always
        # true makes every answer come from the database.
        self._fresh = f"'{secrets.token_hex(6)}' != ''"

    def _condition(self, condition: str | None = None) -> str:
        return f"{condition} and {self._fresh}" if condition else self._fresh

    def _request(self, method: str, path: str, action: str, **kw: Any) -> requests.Response:
        url = f"{self.settings.base_url}{path}"
        headers = {**self.settings.auth_headers(), "Accept": "application/json"}

        def attempt() -> requests.Response:
            try:
                response = self.session.request(
                    method,
                    url,
                    headers=headers,
                    timeout=self.settings.request_timeout_s,
                    **kw,
                )
            except requests.RequestException as exc:
                raise _Transient(_connection_reason(exc)) from None
            if response.status_code != 404:
                _classify(self.settings, response, action)
            return response

        response: requests.Response = self._retrier.call(action, attempt)
        return response

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

    def bucket_counts(self, windows: Sequence[Window]) -> list[PhoenixFigures]:
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

    def count(self, window: Window, condition: str) -> int:
        node = self._project_fields(
            "n: recordCount(timeRange: $t, filterCondition: $f)",
            {"t": _time_range(window), "f": self._condition(condition)},
            ", $t: TimeRange!, $f: String!",
        )
        return int(node["n"])

    def model_costs(self, models: Iterable[str], window: Window) -> dict[str, float | None]:
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

    def span_rows(self, window: Window, expected: int) -> Iterator[tuple[str, dict[str, Any]]]:
        """("span" | "unpriced", row) for the Portkey spans of `window`, in chunks of at most
        CHUNK spans (split by time using recordCount), each chunk one request."""
        if expected == 0 or self.project_id() is None:
            return
        if expected > CHUNK and window.can_split():
            for half in window.halves():
                yield from self.span_rows(half, self.count(half, FROM_PORTKEY))
            return
        yield from self._query(window, expected + CHUNK)

    def _query(self, window: Window, limit: int) -> Iterator[tuple[str, dict[str, Any]]]:
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


def _time_range(window: Window) -> dict[str, str]:
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


# --------------------------------------------------------------------------- reconcile


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def tally_rows(figures: PhoenixFigures, models: dict[str, ModelTally],
               rows: Iterable[tuple[str, Mapping[str, Any]]]) -> None:  # fmt: skip
    """Add span-query rows to a bucket's figures and to the per-model tallies."""
    for kind, row in rows:
        model_name = row.get("model") or NO_MODEL
        cents = _float(row.get("cost")) or 0.0
        if kind == "unpriced":
            tally = models.setdefault(model_name, ModelTally(model_name))
            tally.unpriced_spans += 1
            tally.unpriced_billed_usd += cents / 100
            start = str(row.get("start") or "")
            if start and (tally.first_unpriced is None or start < tally.first_unpriced):
                tally.first_unpriced = start
            continue
        figures.billed_cost_usd += cents / 100
        figures.tokens += int(_float(row.get("units")) or 0)
        if row.get("cache"):
            figures.cache_known += 1
            figures.cache_hits += str(row["cache"]).upper() in CACHE_HITS
        if row.get("kind") == _LLM:
            tally = models.setdefault(model_name, ModelTally(model_name))
            tally.spans += 1
            tally.billed_cost_usd += cents / 100
            tally.provider = tally.provider or row.get("provider")


def reconcile(
    since: datetime,
    until: datetime,
    bucket: str,
    phoenix: PhoenixTotals,
    portkey_get: Callable[[str, dict[str, str]], dict[str, Any]],
) -> Report:
    windows = make_buckets(since, until, bucket)
    counts = phoenix.bucket_counts(windows)
    models: dict[str, ModelTally] = {}
    rows = []
    for window, figures in zip(windows, counts, strict=True):
        tally_rows(figures, models, phoenix.span_rows(window, figures.portkey_spans))
        portkey = portkey_figures(portkey_get, window)
        rows.append(BucketRow(bucket_label(window, bucket), window, portkey, figures))
    whole = Window(since, until)
    if models and phoenix.project_id() is not None:
        for name, cost in phoenix.model_costs(models, whole).items():
            models[name].phoenix_cost_usd = cost
    ordered = sorted(models.values(), key=lambda m: (-m.billed_cost_usd, m.model))
    return Report(phoenix.settings.project, phoenix.settings.base_url, since, until, bucket,
                  rows, ordered)  # fmt: skip
