"""How `reconcile` shows its report: the bucket table with footnotes, the per-model drift
table, the hint for models Phoenix could not price, and the --json document."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from ingest.ops.reconcile import BucketRow, ModelTally, Report
from ingest.phoenix.admin.totals import NO_MODEL
from ingest.sources.windows import iso

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
        out += fix_lines(report.models, report.since, report.until)
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
        drift_fix(drift, billed, model.unpriced_spans),  # names `prices apply`
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


# ---- the fix to name: `prices apply` ------------------------------------------------------


def drift_fix(drift_usd: float | None, billed_usd: float, unpriced_spans: int) -> str:
    """The fix `reconcile` names beside a model whose Phoenix cost drifts from the bill."""
    off = drift_usd is not None and not math.isclose(
        drift_usd + billed_usd, billed_usd, rel_tol=0.01, abs_tol=1e-6
    )
    return "fix: prices apply" if off or unpriced_spans else ""


def fix_lines(models: Sequence[Any], since: datetime, until: datetime) -> list[str]:
    """One line naming the command, when some model's cost drifts (ModelTally-like items)."""
    drifting = [
        m.model
        for m in models
        if drift_fix(m.drift_usd, m.billed_cost_usd - m.unpriced_billed_usd, m.unpriced_spans)
    ]
    if not drifting:
        return []
    return [
        f"To make Phoenix's cost equal the bill for {', '.join(drifting)}: "
        f"portkey-phoenix-ingest prices plan --since {iso(since)} --until {iso(until)}, then "
        "the same with `prices apply ... --yes`, before importing again (spans already stored "
        "keep their cost: README, Cost in Phoenix)."
    ]
