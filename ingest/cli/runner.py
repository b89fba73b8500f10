"""The one place that turns a command's outcome into its exit code and its `run_done` line.

Every command body runs through `run_command`; errors raised before a body runs (a bad
option, a broken config file, Ctrl-C while parsing) are caught by `IngestGroup.main`. Both
end the same way: the summary already printed and flushed, then `run_done` as the last line
(also when stdout and stderr go to one file, as with cron's `>> log 2>&1`), then the exit.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

import click

from ingest.errors import EXIT_FAILED, IngestError, outcome_of


@dataclass
class Done:
    """What a command body returns: failed (exit 1) or how many records it quarantined
    (exit 3 when any), and the counts its `run_done` line carries."""

    quarantined: int = 0
    failed: bool = False
    fields: dict[str, Any] = field(default_factory=dict)


def run_command(action: Callable[[], Done | int | None]) -> NoReturn:
    """Run a command body; its outcome -> the exit code, a `run_done` line, and the exit.
    A body may also return a bare exit code (0 ok, 1 failed)."""
    try:
        result = action()
        done = Done(failed=result == EXIT_FAILED) if isinstance(result, int) else result or Done()
    except KeyboardInterrupt as exc:
        click.echo("Interrupted: progress up to the last verified batch is saved.", err=True)
        finish(*outcome_of(exc))
    except IngestError as exc:
        click.echo(f"Error: {exc}", err=True)
        finish(*outcome_of(exc), error=str(exc))
    except click.ClickException:
        raise  # a usage error found by the body: IngestGroup.main reports it (exit 2)
    except Exception as exc:  # a bug of ours: say so, keep secrets and tracebacks out
        logging.getLogger("ingest").debug("unexpected failure", exc_info=True)
        click.echo(
            f"Error: unexpected failure ({type(exc).__name__}). Progress up to the last "
            "verified batch is saved. Please report this, with the output of -vv.",
            err=True,
        )
        finish(*outcome_of(exc), error=type(exc).__name__)
    if done.failed:
        finish("failed", EXIT_FAILED, **done.fields)
    finish(*outcome_of(None, done.quarantined), **done.fields)


def finish(outcome: str, exit_code: int, command: str | None = None, **fields: Any) -> NoReturn:
    """Flush what was printed, log `run_done` last, exit with `exit_code`."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BrokenPipeError:  # its reader is gone (`| head -1`): nothing left to tell it
            stop_writing(stream)
    run_done(outcome, exit_code, command=command, **fields)
    sys.exit(exit_code)


def stop_writing(stream: Any) -> None:
    """Point a stream whose reader closed the pipe at /dev/null, so that neither a later
    write nor the flush at exit fails again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, stream.fileno())
    os.close(devnull)


def run_done(outcome: str, exit_code: int, command: str | None = None, **fields: Any) -> None:
    """The run's last log line: one event a monitoring check can parse."""
    from ingest.run.logs import last_event, logging_started, setup_logging

    if not logging_started():  # the run stopped before its command body set logging up
        from ingest.cli.options import log_format

        setup_logging(0, False, log_format())
    if command is None:
        context = click.get_current_context(silent=True)
        command = context.info_name if context is not None else None
    last_event("run_done", command=command, outcome=outcome, exit_code=exit_code, **fields)


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

        argv = list(sys.argv[1:] if args is None else args)
        forget_log_format(argv)  # a new run (tests invoke the group many times in one process)
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
            click.echo(f"Error: {exc}", err=True)
            finish(*outcome_of(exc), command=self.named_command(argv), error=str(exc))
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)

    def named_command(self, args: list[str]) -> str | None:
        """The command `args` name (a subcommand's own name, as its context has it), for a
        run that stopped before click made that context."""
        group: click.Command = self
        for word in args:
            if not isinstance(group, click.Group):
                break
            if word in group.commands:
                group = group.commands[word]
        return group.name if group is not self else None
