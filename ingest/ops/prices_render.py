"""How `prices plan / apply` show their plan and what they wrote: the table with the source
of each price, the notes on what was not fitted, and the --json document."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ingest.ops.prices import INSTANCE_WIDE, Applied, ModelPlan, Plan
from ingest.phoenix.admin.models import PhoenixModel
from ingest.sources.windows import iso


def _prices(prices: Mapping[str, float]) -> str:
    short = {"input": "in", "output": "out", "cache_read": "cache rd", "cache_write": "cache wr",
             "reasoning": "reasoning"}  # fmt: skip
    words = [f"{short[t]} {prices[t]:g}" for t in short if t in prices]
    if "image" in prices:  # Phoenix stores it per million, like tokens: shown per image
        words.append(f"per image {per_image(prices)}")
    return " ".join(words) or "-"


def per_image(prices: Mapping[str, float]) -> float:
    return float(f"{prices['image'] / 1e6:.12g}")


def _image_price(prices: Mapping[str, float]) -> dict[str, float]:
    return {"usd_per_image": per_image(prices)} if "image" in prices else {}


def _now(model: PhoenixModel | None) -> str:
    if model is None:
        return "none (cost 0)"
    return f"{_prices(model.prices)} ({model.name})"


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]


def render(plan: Plan) -> str:
    got = plan.collected
    out = [
        "Token prices (USD per million tokens; images: USD per image) that reproduce "
        f"Portkey's bill, {plan.source} "
        f"({got.logs} logs; {got.unreadable} unreadable, {got.no_model} without a model name):"
    ]
    rows = [
        ["model", "provider", "period", "prices", "logs", "worst error", "source",
         "Phoenix now", "apply"]
    ]  # fmt: skip
    for m in plan.fitted:
        for p, spec, action, now in zip(m.fit.periods, m.specs, m.actions, m.phoenix_now,
                                        strict=True):  # fmt: skip
            period = "always" if spec.start_time is None else f"{iso(p.start)} .. {iso(p.last)}"
            rows.append([m.logs.model, m.logs.provider or "-", period, _prices(spec.prices),
                         str(p.logs), f"{p.max_relative_error:.2%}", m.source, _now(now),
                         action])  # fmt: skip
    if len(rows) > 1:
        out += _table(rows)
    else:
        out.append("  (no model could be fitted)")
    skipped = [(m.logs, m.logs.zero_billed) for m in plan.models
               if m.logs.zero_billed and not m.source.startswith("always")]  # fmt: skip
    if skipped:
        out.append(
            "Not fitted: "
            + ", ".join(f"{n} zero-billed log(s) of {logs.model}" for logs, n in skipped)
            + " (cache hits, failed requests: they carry 0 billable tokens in Phoenix)."
        )
    no_tokens = [m.logs for m in plan.models if m.logs.no_tokens]
    if no_tokens:
        out.append(
            "Billed without token or image counts (Phoenix cannot price these): "
            + ", ".join(
                f"{logs.no_tokens} log(s) of {logs.model} (${logs.no_tokens_usd:.4g})"
                for logs in no_tokens
            )
        )
    if plan.unfit:
        out.append("Cannot fit (Phoenix keeps its current price for these):")
        out += [f"  {m.logs.model} ({m.logs.provider or '-'}): {m.fit.refused}" for m in plan.unfit]
    if plan.stale:
        out.append("No longer planned, will be deleted: " + ", ".join(m.name for m in plan.stale))
    out.append(INSTANCE_WIDE)
    if plan.changes:
        out.append(
            f"{plan.changes} change(s) to Phoenix's price table. Write them with `prices apply "
            "... --yes` BEFORE importing (Phoenix prices a span when it stores it)."
        )
    else:
        out.append("Phoenix already has these prices: `prices apply` would change nothing.")
    return "\n".join(out)


def to_dict(plan: Plan) -> dict[str, Any]:
    def model_dict(m: ModelPlan) -> dict[str, Any]:
        return {
            "model": m.logs.model,
            "provider": m.logs.provider,
            "billed_usd": m.logs.billed_usd,
            "zero_billed_logs": m.logs.zero_billed,
            "refused": m.fit.refused,
            "source": m.source,
            "periods": [
                {
                    "name": spec.name,
                    "name_pattern": spec.name_pattern,
                    "start": iso(p.start),
                    "first_log": iso(p.first),
                    "last_log": iso(p.last),
                    "prices_per_million": spec.prices,  # as Phoenix stores them
                    **_image_price(spec.prices),
                    "logs": p.logs,
                    "max_relative_error": p.max_relative_error,
                    "billed_usd": p.billed_usd,
                    "action": action,
                    "phoenix_now": None
                    if now is None
                    else {"name": now.name, "prices_per_million": now.prices},
                }
                for p, spec, action, now in zip(
                    m.fit.periods, m.specs, m.actions, m.phoenix_now, strict=True
                )
            ],
        }

    return {
        "source": plan.source,
        "tolerance": plan.tolerance,
        "logs": plan.collected.logs,
        "models": [model_dict(m) for m in plan.models],
        "stale": [m.name for m in plan.stale],
        "changes": plan.changes,
        "instance_wide": INSTANCE_WIDE,
    }


def render_applied(done: Applied) -> str:
    if not done.changed:
        return (
            f"Phoenix already had these prices: nothing changed ({len(done.unchanged)} "
            "custom model(s) up to date)."
        )
    parts = [f"{len(v)} {k}" for k, v in (("created", done.created), ("updated", done.updated),
             ("deleted", done.deleted), ("unchanged", done.unchanged)) if v]  # fmt: skip
    names = done.created + done.updated
    return (
        f"Phoenix's price table: {', '.join(parts)}"
        + (f" ({', '.join(names)})" if names else "")
        + f". {INSTANCE_WIDE} Spans stored before keep their old cost (see README: Cost in "
        "Phoenix)."
    )
