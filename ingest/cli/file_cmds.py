"""Commands that work on export files: import, convert, status, check, demo."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ingest.cli.options import (
    conversion_options,
    conversion_settings,
    delivery_options,
    phoenix_options,
    phoenix_settings,
    project_from_callback,
    project_option,
    resolve_state_dir,
    start_logging,
    state_option,
    tuning_from,
    verbosity_options,
)
from ingest.cli.report import Done, command_run, stop_writing
from ingest.errors import ConfigError


@click.command("import")
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
def import_command(files: tuple[Path, ...], **kw: Any) -> None:
    """Import Portkey export files (JSONL or .jsonl.gz) into Phoenix and verify every span.

    FILES may be files or directories (their *.jsonl, *.jsonl.gz, *.ndjson and *.ndjson.gz
    files).
    Re-running is safe: finished files are skipped, interrupted ones resume after their
    last verified line, and spans Phoenix already holds are not sent again.

    \b
    Examples:
      portkey-phoenix-ingest import export-2026-07.jsonl
      portkey-phoenix-ingest import exports/ --project prod-llm
      PHOENIX_COLLECTOR_ENDPOINT=https://phoenix.internal PHOENIX_API_KEY=... \\
        portkey-phoenix-ingest import logs.jsonl.gz --json
    """
    start_logging(kw["verbose"], kw["quiet"])

    def action() -> Done:
        from ingest.cli.report import print_summary
        from ingest.run.pipeline import import_files
        from ingest.sources.files import EXPORT_SUFFIXES, expand_paths

        settings = phoenix_settings(kw["endpoint"], kw["api_key"], kw["project"],
                                    kw["retry_deadline"], kw["client_headers"],
                                    kw["strict"])  # fmt: skip
        options = conversion_settings(settings.project, kw)
        paths = expand_paths(list(files))
        if not paths:
            kinds = ", ".join(f"*{suffix}" for suffix in EXPORT_SUFFIXES)
            raise ConfigError(f"no export files ({kinds}) found in {files[0]}.")
        summary = import_files(
            paths, settings, options, resolve_state_dir(kw["state_dir"]), tuning_from(kw),
            kw["quarantine_file"], annotate=not kw["no_annotations"],
        )  # fmt: skip
        print_summary(summary, settings, as_json=kw["as_json"], quiet=kw["quiet"])
        return Done(summary.quarantined, fields={"project": settings.project,
                                                 **summary.to_dict()})  # fmt: skip

    with command_run() as run:
        run.done = action()


@click.command("convert")
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
def convert_command(files: tuple[Path, ...], **kw: Any) -> None:
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
    start_logging(kw["verbose"], kw["quiet"])

    def action() -> Done:
        from ingest.cli.report import print_converted
        from ingest.run.stdout_sink import convert_files
        from ingest.sources.files import expand_paths

        options = conversion_settings(kw["project"], kw)
        try:
            summary = convert_files(
                expand_paths(list(files)), options, sys.stdout, kw["quarantine_file"],
                lambda rejected: click.echo(rejected, err=True),
            )  # fmt: skip
        except BrokenPipeError:
            # The reader stopped reading (`convert ... | head -1`): a normal end for a filter.
            # What is still buffered for stdout goes nowhere; the run ends quietly, exit 0.
            stop_writing(sys.stdout)
            return Done(fields={"stdout_closed": True})
        print_converted(summary, quiet=kw["quiet"])
        return Done(summary.quarantined, fields=summary.to_dict())

    with command_run() as run:
        run.done = action()


@click.command("status")
@state_option
@click.option("--json", "as_json", is_flag=True, help="Print the state as JSON.")
def status_command(state_dir: Path | None, as_json: bool) -> None:
    """Show what the state file records: files imported, their progress, the last run.

    \b
    Example:
      portkey-phoenix-ingest status --state-dir /var/lib/portkey-phoenix-ingest
    """

    def action() -> Done:
        from ingest.cli.report import print_status
        from ingest.run.state import StateStore, shard_dirs

        store = StateStore(resolve_state_dir(state_dir))
        store.load()
        shards = [StateStore(path) for path in shard_dirs(store.dir)]
        for shard in shards:
            shard.load()
        print_status(store, as_json=as_json, shards=shards)
        return Done()

    with command_run() as run:
        run.done = action()


@click.command("check")
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
@click.option(
    "--keep",
    is_flag=True,
    help="Keep the fresh project after a passed check [default: delete it; a failed check "
    "or a --project is always kept].",
)
@click.option("--project-from", "project_from", default=None, callback=project_from_callback,
              metavar="FIELD", help="Route the logs as import does (metadata.<key> or "
              "workspace) and read each back from its project.")  # fmt: skip
@verbosity_options
def check_command(
    endpoint: str,
    api_key: str | None,
    retry_deadline: float,
    client_headers: dict[str, str] | None,
    strict: bool,
    project: str | None,
    logs_dir: Path | None,
    keep: bool,
    project_from: str | None,
    verbose: int,
    quiet: bool,
) -> None:
    """CI smoke check: import the sample logs into a fresh project, read every span back
    and compare the essentials with sample_logs/EXPECTED.json. Exits 1 on any mismatch.

    \b
    Example (in CI, with a Phoenix service container):
      PHOENIX_COLLECTOR_ENDPOINT=http://localhost:6006 portkey-phoenix-ingest check
    """
    start_logging(verbose, quiet)

    def action() -> Done:
        from ingest.ops.check import run_check

        settings = phoenix_settings(
            endpoint, api_key, project or "check", retry_deadline, client_headers, strict
        )
        ok = run_check(settings, logs_dir, fresh_project=project is None, keep=keep,
                       project_from=project_from)  # fmt: skip
        return Done(failed=not ok)

    with command_run() as run:
        run.done = action()


@click.command("demo")
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
    start_logging(verbose, quiet)

    def action() -> Done:
        from ingest.cli.report import print_summary
        from ingest.ops.demo import run_demo

        summary = run_demo(resolve_state_dir(state_dir), port or None, not no_serve, print_summary)
        return Done(summary.quarantined, fields=summary.to_dict())

    with command_run() as run:
        run.done = action()
