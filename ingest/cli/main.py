"""The command group: every command registered, and the console entry point."""

from __future__ import annotations

import os

import click

from ingest import __version__
from ingest.cli.config_cmd import config_group
from ingest.cli.doctor_cmd import doctor_command
from ingest.cli.file_cmds import (
    check_command,
    convert_command,
    demo_command,
    import_command,
    status_command,
)
from ingest.cli.prices_cmd import prices_group
from ingest.cli.pull_cmds import backfill_command, sync_command
from ingest.cli.reconcile_cmd import reconcile_command
from ingest.cli.resync_cmd import resync_command
from ingest.cli.runner import IngestGroup
from ingest.ops.config import config_option


@click.group(
    cls=IngestGroup,
    context_settings={
        "help_option_names": ["-h", "--help"],
        # Every option also reads INGEST_<COMMAND>_<OPTION> (e.g. INGEST_SYNC_WINDOW=6h);
        # options with a documented variable (PHOENIX_*, PORTKEY_*) keep theirs.
        "auto_envvar_prefix": "INGEST",
    },
)
@click.version_option(__version__, prog_name="portkey-phoenix-ingest")
@config_option
def cli() -> None:
    """Move Portkey AI Gateway logs into Arize Phoenix as verified OpenInference spans.

    \b
    Exit codes: 0 all delivered; 3 finished, some records quarantined;
    1 failed (nothing past the last verified record is counted as done);
    2 usage or configuration error; 75 another run holds the state lock;
    130 interrupted (Ctrl-C; progress up to the last verified batch is kept).
    """


for command in (
    import_command, convert_command, status_command, check_command, demo_command,
    sync_command, backfill_command, config_group, doctor_command, reconcile_command,
    prices_group, resync_command,
):  # fmt: skip
    cli.add_command(command)


def main() -> None:
    os.umask(0o077)  # everything this run creates is its owner's only (state, downloads, ...)
    cli(prog_name="portkey-phoenix-ingest")
