"""The command line: parse options, call the pipeline, print results, map errors to exit codes."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from . import __version__
from .delivery import Tuning
from .errors import EXIT_FAILED, EXIT_OK, EXIT_QUARANTINED, ConfigError, IngestError
from .phoenix import DEFAULT_ENDPOINT, PhoenixSettings
from .spans import ConversionOptions

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_PROJECT = "portkey"


def _options(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    def apply(fn: F) -> F:
        for decorator in reversed(decorators):
            fn = decorator(fn)
        return fn

    return apply


phoenix_options = _options(
    click.option(
        "--endpoint",
        envvar="PHOENIX_COLLECTOR_ENDPOINT",
        show_envvar=True,
        default=DEFAULT_ENDPOINT,
        show_default=True,
        help="Phoenix server URL (with or without /v1/traces).",
    ),
    click.option(
        "--api-key",
        envvar="PHOENIX_API_KEY",
        show_envvar=True,
        default=None,
        help="Phoenix API key, sent as 'Authorization: Bearer'. Never printed.",
    ),
    click.option(
        "--retry-deadline",
        envvar="INGEST_RETRY_DEADLINE",
        show_envvar=True,
        type=click.FloatRange(min=0),
        default=120.0,
        show_default=True,
        help="Seconds to keep retrying Phoenix (503, 429, 5xx, connection errors) "
        "before giving up.",
    ),
)

project_option = click.option(
    "--project",
    envvar="PHOENIX_PROJECT_NAME",
    show_envvar=True,
    default=DEFAULT_PROJECT,
    show_default=True,
    help="Phoenix project the spans go to (created on first use).",
)

conversion_options = _options(
    click.option(
        "--session-key",
        envvar="INGEST_SESSION_KEY",
        show_envvar=True,
        default="session_id",
        show_default=True,
        help="Portkey metadata key whose value becomes session.id ('' to disable).",
    ),
    click.option(
        "--max-messages",
        type=click.IntRange(min=1),
        default=200,
        show_default=True,
        help="Input/output messages kept per span (the most recent); the cut is recorded.",
    ),
    click.option(
        "--max-value-chars",
        type=click.IntRange(min=1000),
        default=50_000,
        show_default=True,
        help="Longest attribute string; longer ones end with a truncation marker.",
    ),
)

state_option = click.option(
    "--state-dir",
    envvar="INGEST_STATE_DIR",
    show_envvar=True,
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where progress, lock and quarantine files live "
    "[default: ~/.local/state/portkey-phoenix-ingest].",
)

delivery_options = _options(
    click.option(
        "--batch-size",
        type=click.IntRange(min=1, max=5000),
        default=Tuning.batch_size,
        show_default=True,
        help="Spans per OTLP request.",
    ),
    click.option(
        "--max-in-flight",
        type=click.IntRange(min=1),
        default=Tuning.max_in_flight,
        show_default=True,
        help="Spans sent but not yet read back from Phoenix; keeps its queue from overflowing.",
    ),
    click.option(
        "--verify-grace",
        type=click.FloatRange(min=0.5),
        default=Tuning.grace_s,
        show_default=True,
        help="Seconds without progress before acknowledged-but-missing spans are sent again.",
    ),
)

verbosity_options = _options(
    click.option("-v", "--verbose", count=True, help="More log output (-vv for debug)."),
    click.option("-q", "--quiet", is_flag=True, help="Only errors; no summary on success."),
)


def _setup_logging(verbose: int, quiet: bool) -> None:
    """Our own log lines at the chosen level; other libraries only when they warn."""
    levels = (logging.WARNING, logging.INFO, logging.DEBUG)
    level = logging.ERROR if quiet else levels[min(verbose, 2)]
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("ingest").setLevel(level)


def _state_dir(value: Path | None) -> Path:
    from .state import default_state_dir

    return value or default_state_dir()


def _settings(endpoint: str, api_key: str | None, project: str, deadline: float) -> PhoenixSettings:
    if not endpoint.startswith(("http://", "https://")):
        raise ConfigError(
            f"PHOENIX_COLLECTOR_ENDPOINT / --endpoint must be an http(s) URL, got {endpoint!r}."
        )
    if not project.strip():
        raise ConfigError("the Phoenix project name (--project / PHOENIX_PROJECT_NAME) is empty.")
    return PhoenixSettings(
        endpoint=endpoint,
        project=project.strip(),
        api_key=api_key or None,
        retry_deadline_s=deadline,
    )


def _conversion(project: str, session_key: str, max_messages: int, max_chars: int) -> Any:
    return ConversionOptions(
        project=project,
        session_key=session_key or None,
        max_messages=max_messages,
        max_value_chars=max_chars,
    )


def _run(action: Callable[[], int]) -> None:
    """Run a command body; IngestError -> its message on stderr and its exit code."""
    try:
        code = action()
    except IngestError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted: progress up to the last verified batch is saved.", err=True)
        sys.exit(130)
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="portkey-phoenix-ingest")
def cli() -> None:
    """Move Portkey AI Gateway logs into Arize Phoenix as verified OpenInference spans.

    \b
    Exit codes: 0 all delivered; 3 finished, some records quarantined;
    1 failed (nothing past the last verified record is counted as done);
    2 usage or configuration error; 75 another run holds the state lock.
    """


@cli.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@phoenix_options
@project_option
@conversion_options
@state_option
@delivery_options
@click.option(
    "--quarantine-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="JSONL file for rejected records [default: STATE_DIR/quarantine/<time>-<pid>.jsonl].",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@verbosity_options
def import_command(
    files: tuple[Path, ...],
    endpoint: str,
    api_key: str | None,
    retry_deadline: float,
    project: str,
    session_key: str,
    max_messages: int,
    max_value_chars: int,
    state_dir: Path | None,
    batch_size: int,
    max_in_flight: int,
    verify_grace: float,
    quarantine_file: Path | None,
    as_json: bool,
    verbose: int,
    quiet: bool,
) -> None:
    """Import Portkey export files (JSONL or .jsonl.gz) into Phoenix and verify every span.

    FILES may be files or directories (their *.jsonl, *.jsonl.gz and *.ndjson files).
    Re-running is safe: finished files are skipped, interrupted ones resume after their
    last verified line, and spans Phoenix already holds are not sent again.

    \b
    Examples:
      portkey-phoenix-ingest import export-2026-07.jsonl
      portkey-phoenix-ingest import exports/ --project prod-llm
      PHOENIX_COLLECTOR_ENDPOINT=https://phoenix.internal PHOENIX_API_KEY=... \\
        portkey-phoenix-ingest import logs.jsonl.gz --json
    """
    _setup_logging(verbose, quiet)

    def action() -> int:
        from .pipeline import import_files
        from .report import print_summary
        from .sources import expand_paths

        settings = _settings(endpoint, api_key, project, retry_deadline)
        options = _conversion(settings.project, session_key, max_messages, max_value_chars)
        paths = expand_paths(list(files))
        if not paths:
            raise ConfigError(f"no export files (*.jsonl, *.jsonl.gz) found in {files[0]}.")
        tuning = Tuning(batch_size=batch_size, max_in_flight=max_in_flight, grace_s=verify_grace)
        summary = import_files(
            paths, settings, options, _state_dir(state_dir), tuning, quarantine_file
        )
        print_summary(summary, settings, as_json=as_json, quiet=quiet)
        return EXIT_QUARANTINED if summary.quarantined else EXIT_OK

    _run(action)


@cli.command("convert")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@project_option
@conversion_options
@click.option(
    "--quarantine-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write rejected records here (they are always reported on stderr).",
)
@verbosity_options
def convert_command(
    files: tuple[Path, ...],
    project: str,
    session_key: str,
    max_messages: int,
    max_value_chars: int,
    quarantine_file: Path | None,
    verbose: int,
    quiet: bool,
) -> None:
    """Convert export files to spans without sending them: one JSON span per line on stdout.

    \b
    Each line is {"trace_id", "span_id", "parent_span_id", "name", "start_time",
    "end_time", "status": {"code", "message"}, "attributes", "resource"}; see README.md.
    Rejected records are reported on stderr; the exit code is 3 when there were any.

    \b
    Examples:
      portkey-phoenix-ingest convert export.jsonl | jq '.attributes["llm.model_name"]'
      portkey-phoenix-ingest convert sample_logs/ --project demo > spans.jsonl
    """
    _setup_logging(verbose, quiet)

    def action() -> int:
        from .convert import convert_files
        from .sources import expand_paths

        options = _conversion(project, session_key, max_messages, max_value_chars)
        rejected = convert_files(expand_paths(list(files)), options, sys.stdout, quarantine_file)
        return EXIT_QUARANTINED if rejected else EXIT_OK

    _run(action)


@cli.command("status")
@state_option
@click.option("--json", "as_json", is_flag=True, help="Print the state as JSON.")
def status_command(state_dir: Path | None, as_json: bool) -> None:
    """Show what the state file records: files imported, their progress, the last run.

    \b
    Example:
      portkey-phoenix-ingest status --state-dir /var/lib/portkey-phoenix-ingest
    """

    def action() -> int:
        from .report import print_status
        from .state import StateStore

        store = StateStore(_state_dir(state_dir))
        store.load()
        print_status(store, as_json=as_json)
        return EXIT_OK

    _run(action)


@cli.command("check")
@phoenix_options
@click.option(
    "--project",
    default=None,
    help="Project to import into [default: a fresh 'portkey-check-<time>' project].",
)
@click.option(
    "--logs",
    "logs_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="Directory of export files with an EXPECTED.json [default: the bundled sample_logs].",
)
@verbosity_options
def check_command(
    endpoint: str,
    api_key: str | None,
    retry_deadline: float,
    project: str | None,
    logs_dir: Path | None,
    verbose: int,
    quiet: bool,
) -> None:
    """CI smoke check: import the sample logs into a fresh project, read every span back
    and compare the essentials with sample_logs/EXPECTED.json. Exits 1 on any mismatch.

    \b
    Example (in CI, with a Phoenix service container):
      PHOENIX_COLLECTOR_ENDPOINT=http://localhost:6006 portkey-phoenix-ingest check
    """
    _setup_logging(verbose, quiet)

    def action() -> int:
        from .check import run_check

        settings = _settings(endpoint, api_key, project or "check", retry_deadline)
        ok = run_check(settings, logs_dir, fresh_project=project is None)
        return EXIT_OK if ok else EXIT_FAILED

    _run(action)


@cli.command("demo")
@click.option("--no-serve", is_flag=True, help="Exit after the import instead of serving Phoenix.")
@click.option(
    "--port",
    type=click.IntRange(min=0, max=65535),
    default=0,
    help="Port for the local Phoenix [default: a free one].",
)
@state_option
@verbosity_options
def demo_command(
    no_serve: bool, port: int, state_dir: Path | None, verbose: int, quiet: bool
) -> None:
    """Start a local Phoenix, import the bundled sample logs, and print a link to them.

    Phoenix keeps its data under STATE_DIR/demo-phoenix, so a second demo shows the
    idempotency: nothing is sent twice. Press Ctrl-C to stop the server.

    \b
    Example:
      portkey-phoenix-ingest demo
    """
    _setup_logging(verbose, quiet)

    def action() -> int:
        from .demo import run_demo

        return run_demo(_state_dir(state_dir), port or None, serve=not no_serve)

    _run(action)


def main() -> None:
    cli(prog_name="portkey-phoenix-ingest")


__all__ = ["EXIT_FAILED", "cli", "json", "main"]
