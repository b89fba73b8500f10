"""`demo`: a local Phoenix, the bundled sample logs imported into it, and a link to look."""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import click

from ingest.convert.spans import ConversionOptions
from ingest.ops import prices, prices_render
from ingest.phoenix.admin.local_server import LocalPhoenix
from ingest.phoenix.admin.models import ModelTable
from ingest.phoenix.admin.totals import PhoenixTotals
from ingest.phoenix.api import PhoenixSettings
from ingest.run.delivery import Tuning
from ingest.run.pipeline import RunSummary, import_files
from ingest.sources.files import expand_paths
from ingest.sources.samples import sample_logs_dir
from ingest.sources.windows import Window

DEMO_PROJECT = "portkey-demo"


# What stops a demo besides Ctrl-C: `kill`, systemd, `timeout`, `docker stop`, a CI cancel
# (SIGTERM) and a closed terminal (SIGHUP).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextmanager
def _stop_signals_as_ctrl_c() -> Iterator[None]:
    """SIGTERM and SIGHUP take Ctrl-C's path, so the `finally` that stops Phoenix runs
    (by default they end Python at once and the Phoenix child, in its own session, lives on)."""
    previous = {signum: signal.signal(signum, _interrupt) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _apply_prices(settings: PhoenixSettings, files: list[Path]) -> prices.Collected:
    """`prices apply --yes` on the sample logs, into the demo's own Phoenix, so that its cost
    is Portkey's bill (Phoenix prices a span when it stores it: before the import)."""
    table = ModelTable(settings)
    collected = prices.collect(prices.lines_of(files))
    plan = prices.make_plan(collected, table.list(), "from the sample logs")
    click.echo(prices_render.render_applied(prices.apply_plan(plan, table, yes=True)))
    return collected


def _show_cost(settings: PhoenixSettings, collected: prices.Collected) -> None:
    """Phoenix's own total cost of the demo project beside what Portkey billed."""
    everything = Window(datetime(1970, 1, 2, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC))
    [figures] = PhoenixTotals(settings).bucket_counts([everything])
    billed = math.fsum(m.billed_usd for m in collected.models.values())
    unpriceable = math.fsum(m.no_tokens_usd for m in collected.models.values())
    cost = figures.phoenix_cost_usd or 0.0
    note = (
        f" (${unpriceable:.4f} of it for logs without token or image counts, e.g. audio, "
        "which Phoenix cannot price)"
        if unpriceable
        else ""
    )
    other = sum(m.no_cost_tokens for m in collected.models.values())
    if other:  # e.g. billed in EUR: not in the bill above, yet Phoenix may know the model
        note += (
            f"; {other} log(s) with tokens but no cost in USD (e.g. billed in EUR) are not in "
            "that bill, yet Phoenix prices them like any span when it knows the model"
        )
    click.echo(
        f"Phoenix's total cost of the project: ${cost:.4f}; Portkey billed ${billed:.4f}{note}."
    )


Show = Callable[[RunSummary, PhoenixSettings], None]


def run_demo(state_dir: Path, port: int | None, serve: bool, show: Show) -> RunSummary:
    """The import's summary (the runner makes it exit 0, or 3 with quarantined records) when
    the server is stopped by Ctrl-C, SIGTERM or SIGHUP while serving; exit 130 (from the
    runner) when one of them comes during start-up or the import. Phoenix is stopped in
    every case. `show` prints the import's summary before Phoenix is left serving."""
    with _stop_signals_as_ctrl_c():
        return _run_demo(state_dir, port, serve, show)


def _run_demo(state_dir: Path, port: int | None, serve: bool, show: Show) -> RunSummary:
    phoenix_dir = state_dir / "demo-phoenix"
    click.echo(f"Starting a local Phoenix (data in {phoenix_dir}) ...")
    phoenix = LocalPhoenix(phoenix_dir, port=port)
    try:
        phoenix.start()
        click.echo(f"Phoenix is up at {phoenix.url}")
        settings = PhoenixSettings(endpoint=phoenix.url, project=DEMO_PROJECT)
        files = expand_paths([sample_logs_dir()])
        collected = _apply_prices(settings, files)  # this Phoenix is ours: never a user's
        summary = import_files(
            files,
            settings,
            ConversionOptions(project=DEMO_PROJECT),
            state_dir / "demo-state",
            Tuning(),
            kind="demo",
        )
        show(summary, settings)
        _show_cost(settings, collected)
        if serve:
            try:  # from the message on: a stop signal that follows it lands here
                click.echo("Phoenix keeps running; press Ctrl-C (or send SIGTERM) to stop it.")
                while phoenix.process is not None and phoenix.process.poll() is None:
                    time.sleep(1)
            except KeyboardInterrupt:
                click.echo("Stopping Phoenix ...")
        return summary
    finally:
        phoenix.stop()
