"""`prices plan / apply / remove`: Phoenix's model prices fitted to Portkey's bill."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from ingest.cli.options import (
    UtcDateTime,
    phoenix_options,
    phoenix_settings,
    portkey_options,
    start_logging,
    verbosity_options,
)
from ingest.cli.report import command_run
from ingest.errors import EXIT_OK, ConfigError
from ingest.phoenix.api import PhoenixSettings


def _phoenix(kw: dict[str, Any]) -> PhoenixSettings:
    return phoenix_settings(kw["endpoint"], kw["api_key"], "default", kw["retry_deadline"],
                            kw["client_headers"], kw["strict"])  # fmt: skip


def build_plan(kw: dict[str, Any]) -> tuple[Any, Any]:
    """(plan, model table) from export files or from Portkey for [--since, --until)."""
    from ingest.ops import prices
    from ingest.phoenix.admin.models import ModelTable
    from ingest.sources.portkey.api import PortkeySettings
    from ingest.sources.windows import iso

    files: tuple[Path, ...] = kw["files"]
    since: datetime | None = kw["since"]
    until: datetime | None = kw["until"]
    if files and (since or until):
        raise ConfigError("give export files or --since/--until, not both.")
    if files:
        raws, source = prices.lines_of(list(files)), f"from {len(files)} export file(s)"
    elif since and until:
        if since >= until:
            raise ConfigError("--since must be before --until.")
        portkey = PortkeySettings.from_options(
            kw, "the logs.export scope, or give export files instead of --since/--until"
        )
        raws = prices.portkey_lines(portkey, since, until)
        source = f"from Portkey logs {iso(since)} .. {iso(until)}"
    else:
        raise ConfigError(
            "say which logs to fit: export files as arguments, or --since and --until "
            "(exported from Portkey)."
        )
    table = ModelTable(_phoenix(kw))
    collected = prices.collect(raws)  # read the logs before the table: exports take long
    list_price = _list_price(kw) if kw.get("portkey_api_key") else None
    plan = prices.make_plan(collected, table.list(), source, kw["tolerance"], list_price)
    return plan, table


def _list_price(options: Any) -> Any:
    """Portkey's list price lookup (its model-pricing endpoint), with a key set."""
    from ingest.sources.portkey.api import PortkeyApi, PortkeySettings

    settings = options if isinstance(options, PortkeySettings) else None
    return PortkeyApi(settings or PortkeySettings.from_options(options)).model_price


plan_options = [
    click.argument("files", nargs=-1, type=click.Path(exists=True, path_type=Path)),
    phoenix_options,
    portkey_options,
    click.option("--since", type=UtcDateTime(), default=None,
                 help="Export Portkey's logs from here (inclusive) to fit on."),
    click.option("--until", type=UtcDateTime(), default=None,
                 help="End of the Portkey range (exclusive)."),
    click.option("--tolerance", type=click.FloatRange(min=0, max=1), default=0.01,
                 show_default=True,
                 help="Largest relative error a period's fit may have (0.01 = 1%)."),
    click.option("--json", "as_json", is_flag=True, help="Print the plan as one JSON object."),
    verbosity_options,
]  # fmt: skip


def with_plan_options(fn: Any) -> Any:
    for decorator in reversed(plan_options):
        fn = decorator(fn)
    return fn


@click.group("prices")
def prices_group() -> None:
    """Make Phoenix's own cost equal what Portkey billed: fit token prices per model and
    write them into Phoenix's price table (custom models named portkey:..., marked as this
    tool's). Models with too few billed logs to fit take Portkey's list price (with a
    Portkey key set) or an exact fit of their logs; the plan names each price's source.

    Phoenix prices a span once, when it stores it: apply prices BEFORE import or backfill.
    Custom prices are instance-wide (every project with spans of that model).
    """


@prices_group.command("plan")
@with_plan_options
def plan_command(**kw: Any) -> None:
    """Fit per-model prices to the bill and show them beside Phoenix's current prices.

    \b
    Examples:
      portkey-phoenix-ingest prices plan exports/*.jsonl
      portkey-phoenix-ingest prices plan --since 2026-07-01 --until 2026-08-01 --json
    """  # fmt: skip
    start_logging(kw["verbose"], kw["quiet"])

    def action() -> int:
        from ingest.ops.prices_render import render, to_dict

        plan, _ = build_plan(kw)
        text = json.dumps(to_dict(plan)) if kw["as_json"] else render(plan)
        click.echo(text)
        return EXIT_OK

    with command_run() as run:
        run.done = action()


@prices_group.command("apply")
@with_plan_options
@click.option("--yes", is_flag=True, help="Really write the prices (they are instance-wide).")
def apply_command(**kw: Any) -> None:
    """Fit as `prices plan` does and write the prices into Phoenix (needs --yes).

    A second apply on the same logs changes nothing; a changed fit updates in place.

    \b
    Example:
      portkey-phoenix-ingest prices apply exports/*.jsonl --yes
    """  # fmt: skip
    start_logging(kw["verbose"], kw["quiet"])

    def action() -> int:
        from ingest.ops import prices, prices_render

        plan, table = build_plan(kw)
        if not kw["as_json"] and not kw["quiet"]:
            click.echo(prices_render.render(plan), err=True)
        done = prices.apply_plan(plan, table, kw["yes"])
        if kw["as_json"]:
            click.echo(json.dumps({**prices_render.to_dict(plan), "applied": vars(done)}))
        else:
            click.echo(prices_render.render_applied(done))
        return EXIT_OK

    with command_run() as run:
        run.done = action()


@prices_group.command("remove")
@phoenix_options
@click.option("--yes", is_flag=True, help="Really delete them.")
@verbosity_options
def remove_command(**kw: Any) -> None:
    """Delete the custom models `prices apply` created (recognised by the marker it writes,
    not by their name), nothing else."""
    start_logging(kw["verbose"], kw["quiet"])

    def action() -> int:
        from ingest.ops import prices
        from ingest.phoenix.admin.models import ModelTable

        removed = prices.remove(ModelTable(_phoenix(kw)), kw["yes"])
        click.echo(
            f"Deleted {len(removed)} custom model(s) of this tool"
            + (f": {', '.join(removed)}." if removed else ".")
            + " Phoenix's built-in prices and other custom models are untouched."
        )
        return EXIT_OK

    with command_run() as run:
        run.done = action()


def apply_prices_for_range(phoenix: PhoenixSettings, portkey: Any, since: datetime,
                           until: datetime) -> None:  # fmt: skip
    """`--apply-prices` of backfill/sync: plan and apply over the range before delivering."""
    from ingest.ops import prices, prices_render
    from ingest.phoenix.admin.models import ModelTable
    from ingest.sources.windows import iso

    table = ModelTable(phoenix)
    collected = prices.collect(prices.portkey_lines(portkey, since, until))
    source = f"from Portkey logs {iso(since)} .. {iso(until)}"
    plan = prices.make_plan(collected, table.list(), source, list_price=_list_price(portkey))
    for model in plan.unfit:
        click.echo(f"Warning: no price for {model.logs.model}: {model.fit.refused}", err=True)
    click.echo(prices_render.render_applied(prices.apply_plan(plan, table, yes=True)), err=True)
