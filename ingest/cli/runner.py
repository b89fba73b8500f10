"""The one place that turns a command's outcome into its exit code and its `run_done` line."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

import click

from ingest.errors import (
    EXIT_FAILED,
    EXIT_LOCKED,
    IngestError,
)


def run_command(action: Callable[[], int]) -> None:
    """Run a command body; IngestError -> its message on stderr and its exit code."""
    try:
        code = action()
    except IngestError as exc:
        click.echo(f"Error: {exc}", err=True)
        run_done("locked" if exc.exit_code == EXIT_LOCKED else "failed", exc.exit_code,
                  error=str(exc))  # fmt: skip
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted: progress up to the last verified batch is saved.", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug of ours: say so, keep secrets and tracebacks out
        logging.getLogger("ingest").debug("unexpected failure", exc_info=True)
        click.echo(
            f"Error: unexpected failure ({type(exc).__name__}). Progress up to the last "
            "verified batch is saved. Please report this, with the output of -vv.",
            err=True,
        )
        run_done("failed", EXIT_FAILED, error=type(exc).__name__)
        sys.exit(EXIT_FAILED)
    sys.exit(code)


def run_done(outcome: str, exit_code: int, **fields: Any) -> None:
    """The run's last log line: one event a monitoring check can parse."""
    from ingest.run.logs import event

    command = click.get_current_context(silent=True)
    name = command.info_name if command is not None else None
    event("run_done", command=name, outcome=outcome, exit_code=exit_code, **fields)
