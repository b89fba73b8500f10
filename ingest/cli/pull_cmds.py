"""Commands that pull from Portkey: sync (the cron job) and backfill (a range)."""

from __future__ import annotations

from typing import Any

import click

from ingest.cli.options import (
    Duration,
    Shard,
    UtcDateTime,
    phoenix_options,
    portkey_options,
    project_option,
    pull_delivery_options,
    pull_settings_from,
    start_logging,
)
from ingest.cli.report import Done, command_run
from ingest.errors import ConfigError
from ingest.phoenix.api import PhoenixSettings


def report_pull(summary: Any, result: Any, info: dict[str, Any], phoenix: PhoenixSettings,
                 as_json: bool, quiet: bool) -> Done:  # fmt: skip
    from ingest.cli.report import print_pull

    print_pull(summary, result, info, phoenix, as_json=as_json, quiet=quiet)
    fields = {"project": phoenix.project, **summary.to_dict(), **result.to_dict(), **info}
    return Done(summary.quarantined, fields=fields)


# ---- --apply-prices (issue 11): plan + apply Phoenix prices over the range first
apply_prices_option = click.option(
    "--apply-prices",
    is_flag=True,
    help="First fit Phoenix's model prices to Portkey's bill over the range and write them "
    "(as `prices apply --yes`; instance-wide), so the new spans cost what was billed.",
)


def prices_hook(kw: dict[str, Any], phoenix: PhoenixSettings, pull: Any) -> Any:
    if not kw["apply_prices"]:
        return None
    from ingest.cli.prices_cmd import apply_prices_for_range

    return lambda since, until: apply_prices_for_range(phoenix, pull.portkey, since, until)


# ---- end --apply-prices


@click.command("sync")
@phoenix_options
@project_option
@portkey_options
@click.option(
    "--since",
    type=UtcDateTime(),
    default=None,
    help="Start here instead of at the watermark [first run default: 24 hours ago].",
)
@click.option(
    "--overlap",
    type=Duration(),
    default="15m",
    show_default=True,
    help="Re-read this much before the watermark, for logs Portkey indexed late.",
)
@click.option(
    "--lag",
    type=Duration(),
    default="5m",
    show_default=True,
    help="Stay this far behind now: Portkey's export index lags by minutes.",
)
@click.option(
    "--accept-future-watermark",
    is_flag=True,
    help="Start from a stored watermark that is ahead of the clock (refused by default: "
    "logs before it would never be exported).",
)
@apply_prices_option
@pull_delivery_options
def sync_command(**kw: Any) -> None:
    """The cron job: export new logs from Portkey and deliver them to Phoenix.

    Reads the watermark from the state file, exports [watermark - overlap, now - lag),
    delivers and verifies every span, then moves the watermark past each verified window.
    A second sync started while one runs exits at once with code 75.

    \b
    Examples:
      PORTKEY_API_KEY=... portkey-phoenix-ingest sync
      portkey-phoenix-ingest sync --since 2026-07-01 --max-duration 50m
    """  # fmt: skip
    start_logging(kw["verbose"], kw["quiet"])

    def action() -> Done:
        from ingest.run.pull import sync

        phoenix, pull = pull_settings_from(kw)
        accept = kw["accept_future_watermark"]
        summary, result, info = sync(pull, kw["since"], kw["overlap"], kw["lag"],
                                     accept_future_watermark=accept,
                                     before_delivery=prices_hook(kw, phoenix, pull))  # fmt: skip
        return report_pull(summary, result, info, phoenix, kw["as_json"], kw["quiet"])

    with command_run() as run:
        run.done = action()


@click.command("backfill")
@phoenix_options
@project_option
@portkey_options
@click.option("--since", type=UtcDateTime(), required=True, help="Start of the range (inclusive).")
@click.option("--until", type=UtcDateTime(), required=True, help="End of the range (exclusive).")
@click.option(
    "--advance-sync",
    is_flag=True,
    help="When the whole range is done, move the sync watermark to --until.",
)
@click.option(
    "--dry-run", is_flag=True, help="Plan the windows and print their totals; start no export job."
)
@click.option(
    "--force",
    is_flag=True,
    help="Backfill even when Phoenix's retention policy would delete part of the range.",
)
@click.option(
    "--shard",
    type=Shard(),
    default=None,
    help="Take every N-th window, starting with the I-th: N workers cover the range once. "
    "Each shard keeps its own state under STATE_DIR/shards/.",
)
@apply_prices_option
@pull_delivery_options
def backfill_command(**kw: Any) -> None:
    """Export a date range from Portkey and deliver it to Phoenix; rerun to resume.

    The range [--since, --until) is cut into windows (--window, one day by default); each
    verified window is recorded, so rerunning the same command continues where it stopped.
    The sync watermark is not moved unless --advance-sync is given.

    \b
    Examples:
      portkey-phoenix-ingest backfill --since 2026-01-01 --until 2026-07-01
      portkey-phoenix-ingest backfill --since 2026-06-01 --until 2026-06-02 --dry-run
      portkey-phoenix-ingest backfill --since 2026-01-01 --until 2026-07-01 --concurrency 3 --enrich
    """  # fmt: skip
    start_logging(kw["verbose"], kw["quiet"])

    def action() -> Done:
        from ingest.run.pull import backfill, dry_run

        if kw["since"] >= kw["until"]:
            raise ConfigError("--since must be before --until.")
        if kw["shard"] and kw["advance_sync"]:
            raise ConfigError(
                "--advance-sync cannot be used with --shard: no shard sees the whole range. "
                "Run one unsharded `backfill ... --advance-sync` afterwards (it sends nothing new)."
            )
        phoenix, pull = pull_settings_from(kw)
        from ingest.cli.report import ensure_project, phoenix_link, print_plan, range_link
        from ingest.phoenix.admin.guards import check_backfill

        def logs() -> int:  # asked only under a retention rule by count
            return sum(row["logs"] for row in dry_run(pull, kw["since"], kw["until"], kw["shard"]))

        for warning in check_backfill(phoenix, kw["since"], kw["until"], kw["force"], logs=logs):
            click.echo(f"Warning: {warning}", err=True)
        if not kw["quiet"] and not kw["as_json"]:
            if kw["dry_run"]:  # a dry run creates nothing
                link = range_link(phoenix, kw["since"], kw["until"])
            else:
                link = phoenix_link(phoenix, ensure_project(phoenix), kw["since"], kw["until"])
            click.echo(f"The range in Phoenix (once imported): {link}", err=True)
        if kw["dry_run"]:
            print_plan(dry_run(pull, kw["since"], kw["until"], kw["shard"]), kw["as_json"])
            return Done()
        if hook := prices_hook(kw, phoenix, pull):  # --apply-prices (issue 11)
            hook(kw["since"], kw["until"])
        summary, result, info = backfill(
            pull, kw["since"], kw["until"], kw["advance_sync"], kw["shard"]
        )
        return report_pull(summary, result, info, phoenix, kw["as_json"], kw["quiet"])

    with command_run() as run:
        run.done = action()
