"""`prices plan / apply / remove`: Phoenix's own cost made equal to what Portkey billed.

Phoenix prices every LLM span itself, once, when it stores it, from `llm.model_name`, the
token counts and its price table; it ignores `llm.cost.*`. So the fix is Phoenix's price
table: per model (as our spans name it) and period, the prices that reproduce the bill
(`price_fit`), written as custom models named `portkey:...` that carry this tool's marker
(`remove` deletes exactly the marked ones, whatever their name). Custom prices are
instance-wide: every project with spans of that model.

Every billed model gets a price, and the plan says where it came from: a fit of its logs;
where they are too few, Portkey's own list price (when a Portkey key is set and the price
reproduces the logs) or an exact fit of those few logs; a model always billed 0 while tokens
were counted (self-hosted, free) gets a price of 0, so Phoenix's cost stays the bill. An
image model billed per image (its spans carry an image count, token type `image`) gets a
price per image the same ways (Portkey's list price for the default size, or a fit).

Logs are converted exactly as the spans are (`build_span_facts`), so the model name,
provider and token counts fitted here are the ones Phoenix will price.
"""

from __future__ import annotations

import math
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ingest.convert.attributes import LLM, build_span_facts
from ingest.convert.records import parse_record
from ingest.errors import ConfigError, RecordError
from ingest.ops.price_fit import (
    DEFAULT_TOLERANCE,
    PROMPT_KIND,
    ModelFit,
    Observation,
    Period,
    billable_tokens,
    choose_prices,
)
from ingest.phoenix.admin.models import ModelSpec, ModelTable, PhoenixModel, wait_for_refresh
from ingest.sources.files import decode_line, expand_paths, read_lines
from ingest.sources.windows import Window, iso

PREFIX = "portkey:"  # the names of the custom models this tool creates (its marker tells them)
ListPrice = Callable[[str, str], "dict[str, float] | None"]  # (ai_org, ai_model) -> $/1M
INSTANCE_WIDE = (
    "Custom prices are instance-wide in Phoenix: they price every project's spans of these "
    "models, and only spans stored after they are written."
)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # a free model's price holds for all time
_MODEL = "llm.model_name"
_PROVIDER = "llm.provider"
_KIND = "openinference.span.kind"


# ---- reading logs ------------------------------------------------------------------------


@dataclass
class ModelLogs:
    """One model's logs, as Phoenix will see their spans."""

    model: str
    provider: str
    observations: list[Observation] = field(default_factory=list)
    zero_billed: int = 0  # cost 0 (cache hits, failures, free models)
    zero_billed_tokens: int = 0  # of those, with billable tokens in Phoenix (a free model)
    portkey_name: tuple[str, str] = ("", "")  # (ai_org, ai_model): for Portkey's list price
    no_cost: int = 0  # no cost, or not in USD
    no_cost_tokens: int = 0  # of those, with billable tokens (Phoenix prices them anyway)
    no_tokens: int = 0  # billed, but no token (or image) counts to price
    no_tokens_usd: float = 0.0  # what those were billed: Phoenix cannot show it
    not_llm: int = 0  # embeddings etc.: Phoenix prices only LLM spans
    billed_usd: float = 0.0


@dataclass
class Collected:
    models: dict[tuple[str, str], ModelLogs] = field(default_factory=dict)
    logs: int = 0
    unreadable: int = 0
    no_model: int = 0


def collect(raws: Iterable[Any]) -> Collected:
    """Group decoded export lines by (model name, provider) as our spans carry them."""
    out = Collected()
    for raw in raws:
        out.logs += 1
        try:
            record = parse_record(raw)
        except RecordError:
            out.unreadable += 1
            continue
        attributes = build_span_facts(record).attributes
        model = str(attributes.get(_MODEL) or "").strip()
        if not model:
            out.no_model += 1
            continue
        provider = str(attributes.get(_PROVIDER) or "")
        entry = out.models.setdefault((model, provider), ModelLogs(model, provider))
        if not all(entry.portkey_name):
            entry.portkey_name = ((record.ai_org or "")[:100], (record.ai_model or model)[:200])
        usd = record.cost_currency is None or record.cost_currency.upper() == "USD"
        if attributes.get(_KIND) != LLM:
            entry.not_llm += 1
        elif record.cost is None or not usd:
            entry.no_cost += 1
            entry.no_cost_tokens += any(billable_tokens(attributes))
        elif record.cost == 0:
            entry.zero_billed += 1
            entry.zero_billed_tokens += any(billable_tokens(attributes))
        else:
            tokens = billable_tokens(attributes)
            entry.billed_usd += record.cost / 100
            if not any(tokens):
                entry.no_tokens += 1
                entry.no_tokens_usd += record.cost / 100
            else:
                entry.observations.append(
                    Observation(record.created_at, tokens, record.cost / 100, record.log_id)
                )
    return out


def lines_of(paths: Sequence[Path]) -> Iterator[Any]:
    """Decoded lines of export files; lines that are not JSON count as unreadable."""
    for path in expand_paths(list(paths)):
        for line in read_lines(path):
            try:
                yield decode_line(line)
            except RecordError:
                yield None


def portkey_lines(portkey: Any, since: datetime, until: datetime) -> Iterator[Any]:
    """Decoded lines of Portkey exports of [since, until), downloaded to a temporary folder
    (the export client `backfill` uses; windows over 50,000 logs are split)."""
    from ingest.sources.portkey.api import PortkeyApi
    from ingest.sources.portkey.exports import ExportJobs

    client = ExportJobs(PortkeyApi(portkey))
    with tempfile.TemporaryDirectory(prefix="portkey-prices-") as folder:
        for export in client.windows(Window(since, until), Path(folder)):
            yield from lines_of([export.path])
            export.path.unlink(missing_ok=True)


# ---- the plan ----------------------------------------------------------------------------


def exact_pattern(model: str, period: int = 0) -> str:
    """An anchored regex matching exactly `model`. Phoenix allows one custom model per
    (pattern, provider), so later periods wrap the name in more (?:) groups: the pattern is
    longer, hence more specific in Phoenix's ranking, and wins from its start time on."""
    return "^" + "(?:" * period + re.escape(model) + ")" * period + "$"


PROMPT_TYPES = {**PROMPT_KIND, "reasoning": False}  # Portkey's list prices may have reasoning


def model_name(model: str, provider: str, start: datetime | None = None) -> str:
    base = f"{PREFIX}{provider}/{model}" if provider else f"{PREFIX}{model}"
    return base if start is None else f"{base} from {iso(start)}"


def base_name(name: str) -> str:
    return name.split(" from ", 1)[0]


@dataclass
class ModelPlan:
    logs: ModelLogs
    fit: ModelFit
    source: str = ""  # where the prices came from, in words
    specs: list[ModelSpec] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)  # per period: create / update / unchanged
    phoenix_now: list[PhoenixModel | None] = field(default_factory=list)  # per period


@dataclass
class Plan:
    source: str
    tolerance: float
    models: list[ModelPlan]
    collected: Collected
    stale: list[PhoenixModel] = field(default_factory=list)  # ours, for planned models, unused

    @property
    def fitted(self) -> list[ModelPlan]:
        return [m for m in self.models if m.fit.refused is None]

    @property
    def unfit(self) -> list[ModelPlan]:
        return [m for m in self.models if m.fit.refused is not None]

    @property
    def changes(self) -> int:
        return sum(a != "unchanged" for m in self.fitted for a in m.actions) + len(self.stale)


def _same(spec: ModelSpec, model: PhoenixModel) -> bool:
    return (
        spec.name_pattern == model.name_pattern
        and spec.provider == model.provider
        and spec.start_time == model.start_time
        and spec.prices.keys() == model.prices.keys()
        and all(math.isclose(p, model.prices[t], rel_tol=1e-9) for t, p in spec.prices.items())
    )


def phoenix_price(table: Sequence[PhoenixModel], model: str, provider: str,
                  at: datetime) -> PhoenixModel | None:  # fmt: skip
    """The price Phoenix would use for a span of `model` starting `at` (its lookup: custom
    models first, the span's provider preferred, then the most specific pattern (approximated
    by its length) and the latest start)."""
    candidates = [
        m
        for m in table
        if (m.start_time is None or m.start_time <= at) and re.search(m.name_pattern, model)
    ]
    for custom in (True, False):
        tier = [m for m in candidates if m.custom == custom]
        if provider and any(m.provider == provider for m in tier):
            tier = [m for m in tier if m.provider == provider]
        if tier:
            return max(tier, key=lambda m: (len(m.name_pattern), m.start_time.timestamp()
                                            if m.start_time else 0.0))  # fmt: skip
    return None


def price_model(logs: ModelLogs, tolerance: float = DEFAULT_TOLERANCE,
                list_price: ListPrice | None = None) -> tuple[ModelFit, str]:  # fmt: skip
    """The model's prices and where they came from (see the module note)."""
    if not logs.observations:
        if logs.no_tokens:
            return ModelFit(refused="its billed logs carry no token or image counts to price"), ""
        return ModelFit(
            periods=[priced_as_free(logs)]
        ), f"always billed 0 ({logs.zero_billed} logs)"

    def listed() -> dict[str, float] | None:
        return list_price(*logs.portkey_name) if list_price and all(logs.portkey_name) else None

    return choose_prices(logs.observations, tolerance, listed)


def priced_as_free(logs: ModelLogs) -> Period:
    """A period at price 0 for a model that Portkey billed 0 every time."""
    return Period(start=EPOCH, first=EPOCH, last=EPOCH, prices={"input": 0.0, "output": 0.0},
                  logs=logs.zero_billed, max_relative_error=0.0, billed_usd=0.0)  # fmt: skip


def make_plan(collected: Collected, table: Sequence[PhoenixModel], source: str,
              tolerance: float = DEFAULT_TOLERANCE,
              list_price: ListPrice | None = None) -> Plan:  # fmt: skip
    ours = {m.name: m for m in table if m.ours}
    plans: list[ModelPlan] = []
    wanted: set[str] = set()
    bases: set[str] = set()
    for key in sorted(collected.models):
        logs = collected.models[key]
        if not logs.observations and not logs.no_tokens and not logs.zero_billed_tokens:
            continue  # nothing billed to fit (only cache hits, embeddings, no cost)
        fit, how = price_model(logs, tolerance, list_price)
        plan = ModelPlan(logs, fit, how)
        bases.add(model_name(logs.model, logs.provider))
        for index, period in enumerate(fit.periods):
            name = model_name(logs.model, logs.provider, period.start if index else None)
            spec = ModelSpec(
                name=name,
                provider=logs.provider,
                name_pattern=exact_pattern(logs.model, index),
                start_time=None if period.start == EPOCH else period.start,
                prices={"input": 0.0, "output": 0.0, **period.prices},
                ours=True,
            )
            existing = ours.get(name)
            plan.specs.append(spec)
            plan.actions.append(
                "create" if existing is None else "unchanged" if _same(spec, existing) else "update"
            )
            plan.phoenix_now.append(phoenix_price(table, logs.model, logs.provider, period.last))
            wanted.add(name)
        plans.append(plan)
    stale = [m for n, m in ours.items() if base_name(n) in bases and n not in wanted]
    return Plan(source, tolerance, plans, collected, stale)


# ---- apply and remove --------------------------------------------------------------------


@dataclass
class Applied:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.deleted)


def require_yes(yes: bool, what: Sequence[str]) -> None:
    """Nothing is written to Phoenix's price table without --yes (it is instance-wide)."""
    if yes or not what:
        return
    listing = "; ".join(what)
    raise ConfigError(
        "Phoenix's price table is instance-wide, so changing it needs --yes; nothing was "
        f"changed. With --yes this would: {listing}"
    )


def describe_changes(plan: Plan) -> list[str]:
    lines = [f"delete {m.name}" for m in plan.stale]
    for model in plan.fitted:
        for spec, action in zip(model.specs, model.actions, strict=True):
            if action != "unchanged":
                prices = ", ".join(f"{t} {p:g}" for t, p in spec.prices.items() if t != "image")
                if "image" in spec.prices:  # stored per million images, like tokens
                    prices += f"; $ per image {spec.prices['image'] / 1e6:g}"
                start = iso(spec.start_time) if spec.start_time else "-"
                lines.append(
                    f"{action} {spec.name}: pattern {spec.name_pattern}, provider "
                    f"{spec.provider or '-'}, from {start}, $/1M tokens {prices}"
                )
    return lines


def apply_plan(plan: Plan, table: ModelTable, yes: bool, wait: bool = True) -> Applied:
    """Write the plan's prices; a second run with the same logs changes nothing."""
    require_yes(yes, describe_changes(plan))
    ours = {m.name: m for m in table.list() if m.ours}
    done = Applied()
    for stale in plan.stale:  # first, so their patterns are free for the update/create below
        table.delete(stale.id)
        done.deleted.append(stale.name)
    for model in plan.fitted:
        for spec in model.specs:
            existing = ours.get(spec.name)
            if existing is None:
                table.create(spec, PROMPT_TYPES)
                done.created.append(spec.name)
            elif _same(spec, existing):
                done.unchanged.append(spec.name)
            else:
                table.update(existing.id, spec, PROMPT_TYPES)
                done.updated.append(spec.name)
    if done.changed and wait:
        wait_for_refresh()
    return done


def ours_in(table: Sequence[PhoenixModel]) -> list[PhoenixModel]:
    return [m for m in table if m.ours]


def remove(table: ModelTable, yes: bool) -> list[str]:
    """Delete every custom model this tool created (it carries the tool's marker; a model
    someone else named `portkey:...` is not ours), nothing else."""
    mine = ours_in(table.list())
    require_yes(yes, [f"delete {m.name}" for m in mine])
    for model in mine:
        table.delete(model.id)
    return [m.name for m in mine]
