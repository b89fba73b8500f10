"""The command group (whose errors before a command body runs end like any other run):
every command registered, and the console entry point."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

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
from ingest.cli.report import error_text, finish
from ingest.cli.resync_cmd import resync_command
from ingest.convert.redact import use_rules
from ingest.errors import IngestError, outcome_of
from ingest.ops.config import config_option


class IngestGroup(click.Group):
    """The command group, whose errors before a command body runs end like any other run."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        from ingest.cli.options import forget_log_format

        forget_log_format()  # a new run (tests invoke the group many times in one process)
        use_rules(None)  # the built-in rules until the command's options give the run's
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.Abort:  # Ctrl-C before the command body ran
            click.echo("Interrupted.", err=True)
            finish(*outcome_of(KeyboardInterrupt()))
        except click.exceptions.NoArgsIsHelpError as exc:  # no command: help, not a run
            exc.show()
            sys.exit(exc.exit_code)
        except click.ClickException as exc:  # a bad option or argument: exit 2
            exc.show()
            name = exc.ctx.info_name if getattr(exc, "ctx", None) is not None else None
            finish("usage_error", exc.exit_code, command=name, error=exc.format_message())
        except IngestError as exc:  # e.g. the config file, read while parsing the options
            click.echo(f"Error: {error_text(exc)}", err=True)
            finish(*outcome_of(exc), error=str(exc))
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)


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
    2 usage or configuration error; 75 another run holds the state lock.
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
