"""Reconcile Portkey's analytics with what a Phoenix project holds, per day or hour, and
tally the cost per model (Portkey's billed cost next to Phoenix's computed cost).

The Phoenix figures come from `phoenix.admin.totals` (GraphQL aggregates and the span query DSL).
Portkey: for each bucket, `GET /analytics/graphs/{requests,cost,tokens}` and
`/analytics/summary/cache` over exactly that bucket, reading `summary`: exact whatever size and
time zone Portkey gives its data points (undocumented; docs/design.md, "Analytics").
Rendering (table, JSON) is in `reconcile_render`.

A routed run (`--project-from`) spread Portkey's logs over several projects: their figures are
summed per bucket and compared with Portkey's (which has no notion of Phoenix projects), and
each project's own totals are listed. A sampled run (`--sample RATE`) kept a share of whole
traces: Phoenix's figures are divided by the rate, and a bucket is MISSING or EXTRA only when
the difference is beyond what sampling explains (`SAMPLE_SIGMAS` standard deviations).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from ingest.convert.usage import CACHE_HITS
from ingest.errors import ConfigError, PortkeyError
from ingest.phoenix.admin.totals import LLM_KIND, NO_MODEL, PhoenixFigures, PhoenixTotals
from ingest.sources.windows import Window, iso

log = logging.getLogger(__name__)

BUCKETS = {"day": timedelta(days=1), "hour": timedelta(hours=1)}
MAX_BUCKETS = 2000  # each bucket costs 4 Portkey calls; more is a mistyped range
SAMPLE_SIGMAS = 4.0  # a sampled bucket's shortfall must exceed this many standard deviations


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


@dataclass(frozen=True)
class BucketRow:
    label: str
    window: Window
    portkey: PortkeyFigures
    phoenix: PhoenixFigures  # divided by `sample` when the run was sampled
    sample: float = 1.0

    @property
    def allowance(self) -> int:
        """How far a sampled estimate may be off by chance (0 for an unsampled run)."""
        if self.sample >= 1.0:
            return 0
        rate = self.sample
        return math.ceil(SAMPLE_SIGMAS * math.sqrt(self.portkey.requests * (1 - rate) / rate))

    @property
    def missing(self) -> int:
        short = self.portkey.requests - self.phoenix.portkey_spans
        return short if short > self.allowance else 0

    @property
    def extra(self) -> int:
        over = self.phoenix.portkey_spans - self.portkey.requests
        return over if over > self.allowance else 0

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
        if not self.missing and not self.extra and self.sample >= 1.0:  # estimates: no exact
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
    sample: float = 1.0
    projects: dict[str, PhoenixFigures] = field(default_factory=dict)  # routed: each one's

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
        return BucketRow("total", Window(self.since, self.until), pk, ph, self.sample)


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
    """One bucket's analytics; `get(path, params)` is `PortkeyApi.analytics`."""
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
        if row.get("kind") == LLM_KIND:
            tally = models.setdefault(model_name, ModelTally(model_name))
            tally.spans += 1
            tally.billed_cost_usd += cents / 100
            tally.provider = tally.provider or row.get("provider")


def add_figures(a: PhoenixFigures, b: PhoenixFigures) -> PhoenixFigures:
    """Two projects' figures for one bucket, together."""
    costs = [c for c in (a.phoenix_cost_usd, b.phoenix_cost_usd) if c is not None]
    summed = {f.name: getattr(a, f.name) + getattr(b, f.name) for f in fields(PhoenixFigures)
              if f.name != "phoenix_cost_usd"}  # fmt: skip
    return PhoenixFigures(**summed, phoenix_cost_usd=math.fsum(costs) if costs else None)


def scale_figures(figures: PhoenixFigures, rate: float) -> PhoenixFigures:
    """What a sampled run's figures stand for: divided by the share kept (counts rounded)."""
    if rate >= 1.0:
        return figures
    cost = figures.phoenix_cost_usd
    return replace(
        figures, spans=round(figures.spans / rate),
        portkey_spans=round(figures.portkey_spans / rate),
        billed_cost_usd=figures.billed_cost_usd / rate, tokens=round(figures.tokens / rate),
        phoenix_tokens=figures.phoenix_tokens / rate,
        phoenix_cost_usd=None if cost is None else cost / rate,
        cache_hits=round(figures.cache_hits / rate), cache_known=round(figures.cache_known / rate),
    )  # fmt: skip


def _project_figures(phoenix: PhoenixTotals, windows: list[Window], whole: Window,
                     models: dict[str, ModelTally]) -> list[PhoenixFigures]:  # fmt: skip
    """One project's figures per bucket; its models' tallies are added to `models`."""
    counts = phoenix.bucket_counts(windows)
    own: dict[str, ModelTally] = {}
    for window, figures in zip(windows, counts, strict=True):
        tally_rows(figures, own, phoenix.span_rows(window, figures.portkey_spans))
    if own and phoenix.project_id() is not None:
        for name, cost in phoenix.model_costs(own, whole).items():
            own[name].phoenix_cost_usd = cost
    for name, tally in own.items():
        if name not in models:
            models[name] = tally
            continue
        into = models[name]
        costs = [c for c in (into.phoenix_cost_usd, tally.phoenix_cost_usd) if c is not None]
        into.spans += tally.spans
        into.billed_cost_usd += tally.billed_cost_usd
        into.phoenix_cost_usd = math.fsum(costs) if costs else None
        into.unpriced_spans += tally.unpriced_spans
        into.unpriced_billed_usd += tally.unpriced_billed_usd
        into.provider = into.provider or tally.provider
        firsts = [f for f in (into.first_unpriced, tally.first_unpriced) if f]
        into.first_unpriced = min(firsts) if firsts else None
    return counts


def reconcile(
    since: datetime,
    until: datetime,
    bucket: str,
    phoenix: PhoenixTotals | list[PhoenixTotals],
    portkey_get: Callable[[str, dict[str, str]], dict[str, Any]],
    sample: float = 1.0,
) -> Report:
    """Portkey's analytics per bucket next to the Phoenix project's figures; several
    projects (a routed run) are summed, a sampled run's figures divided by its rate."""
    projects = phoenix if isinstance(phoenix, list) else [phoenix]
    windows = make_buckets(since, until, bucket)
    whole = Window(since, until)
    models: dict[str, ModelTally] = {}
    summed = [PhoenixFigures() for _ in windows]
    each: dict[str, PhoenixFigures] = {}
    for totals in projects:
        counts = _project_figures(totals, windows, whole, models)
        summed = [add_figures(a, b) for a, b in zip(summed, counts, strict=True)]
        overall = PhoenixFigures()
        for figures in counts:
            overall = add_figures(overall, figures)
        each[totals.settings.project] = overall
    rows = []
    for window, figures in zip(windows, summed, strict=True):
        portkey = portkey_figures(portkey_get, window)
        rows.append(BucketRow(bucket_label(window, bucket), window, portkey,
                              scale_figures(figures, sample), sample))  # fmt: skip
    ordered = sorted(models.values(), key=lambda m: (-m.billed_cost_usd, m.model))
    first = projects[0].settings
    return Report(first.project, first.base_url, since, until, bucket, rows, ordered, sample,
                  each if len(projects) > 1 else {})  # fmt: skip
