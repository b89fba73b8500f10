"""`demo`: a local Phoenix, the bundled sample logs imported into it, and a link to look."""

from __future__ import annotations

import time
from pathlib import Path

import click

from ingest.convert.spans import ConversionOptions
from ingest.ops.report import print_summary
from ingest.phoenix.client import PhoenixSettings
from ingest.phoenix.local_server import LocalPhoenix
from ingest.run.delivery import Tuning
from ingest.run.pipeline import RunSummary, import_files
from ingest.sources.files import expand_paths
from ingest.sources.samples import sample_logs_dir

DEMO_PROJECT = "portkey-demo"


def run_demo(state_dir: Path, port: int | None, serve: bool) -> RunSummary:
    phoenix_dir = state_dir / "demo-phoenix"
    click.echo(f"Starting a local Phoenix (data in {phoenix_dir}) ...")
    phoenix = LocalPhoenix(phoenix_dir, port=port).start()
    try:
        click.echo(f"Phoenix is up at {phoenix.url}")
        settings = PhoenixSettings(endpoint=phoenix.url, project=DEMO_PROJECT)
        files = expand_paths([sample_logs_dir()])
        summary = import_files(
            files,
            settings,
            ConversionOptions(project=DEMO_PROJECT),
            state_dir / "demo-state",
            Tuning(),
            kind="demo",
        )
        print_summary(summary, settings)
        if serve:
            click.echo("Phoenix keeps running; press Ctrl-C to stop it.")
            try:
                while phoenix.process is not None and phoenix.process.poll() is None:
                    time.sleep(1)
            except KeyboardInterrupt:
                click.echo("Stopping Phoenix ...")
        return summary
    finally:
        phoenix.stop()
