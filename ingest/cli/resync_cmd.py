"""`resync`: delete what a project holds for some logs and deliver them again, verified."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ingest.cli.options import (
    Shard,
    UtcDateTime,
    conversion_settings,
    phoenix_options,
    phoenix_settings,
    portkey_options,
    project_option,
    pull_delivery_options,
    pull_settings_from,
    resolve_state_dir,
    start_logging,
    tuning_from,
)
from ingest.cli.report import Done, command_run
from ingest.errors import ConfigError


@click.command("resync")
@click.argument("files", nargs=-1, type=click.Path(exists=True, path_type=Path))
@phoenix_options
@project_option
@portkey_options
@click.option(
    "--since",
    type=UtcDateTime(),
    default=None,
    help="Start of the range to export again and replace (inclusive).",
)
@click.option("--until", type=UtcDateTime(), default=None, help="End of the range (exclusive).")
@click.option(
    "--shard",
    type=Shard(),
    default=None,
    help="Take every N-th window, starting with the I-th (as backfill).",
)
@click.option(
    "--yes", is_flag=True, help="Do not ask: delete and re-send (needed without a terminal)."
)
@click.option(
    "--dry-run", is_flag=True, help="Print what would be deleted and re-sent; change nothing."
)
@pull_delivery_options
def resync_command(files: tuple[Path, ...], **kw: Any) -> None:  # fmt: skip
    """Replace what Phoenix holds for some logs with their current conversion.

    Phoenix keeps the first copy of a span, so a log that changed in Portkey, or a newer
    mapping of this tool, reaches Phoenix only through a resync: the spans this tool wrote for
    exactly these logs are deleted by span id, whatever their stored id became (never a trace
    or a time range, never a span another writer made: such a log is reported and skipped,
    exit 3), the logs are delivered again and verified, and the project's other spans are
    counted before and after. Annotations people and evaluators made on those spans (labels,
    evals, notes) are saved in the state directory first and written back after (not their
    author, source or times, which Phoenix sets). Give a range (exported again from Portkey, in
    windows, like backfill) or export FILES. An interrupted resync is recorded in the state
    file and finished by the next resync.

    \b
    Examples:
      portkey-phoenix-ingest resync --since 2026-07-01 --until 2026-07-02 --dry-run
      portkey-phoenix-ingest resync --since 2026-07-01 --until 2026-07-08 --yes
      portkey-phoenix-ingest resync export-2026-07.jsonl --yes
    """  # fmt: skip
    start_logging(kw["verbose"], kw["quiet"])

    def action() -> Done:
        from ingest.run.pipeline import RunSetup
        from ingest.run.resync_units import resync_files, resync_range
        from ingest.sources.files import expand_paths

        ranged = kw["since"] is not None or kw["until"] is not None
        if ranged == bool(files):
            raise ConfigError("give either --since and --until, or export FILES (not both).")
        if ranged and (kw["since"] is None or kw["until"] is None or kw["since"] >= kw["until"]):
            raise ConfigError("--since and --until are both needed, --since before --until.")
        what = (f"the logs of {kw['since'].isoformat()} .. {kw['until'].isoformat()}" if ranged
                else f"the logs of {len(files)} file(s)")  # fmt: skip
        if not kw["dry_run"] and not kw["yes"]:
            if not sys.stdin.isatty():
                raise ConfigError(
                    f"resync deletes the spans of {what} from project '{kw['project']}' before "
                    "sending them again: rerun with --yes (or --dry-run to see what it would do)."
                )
            click.confirm(f"Delete and re-send {what} in project '{kw['project']}'?", abort=True)
        if ranged:
            phoenix, pull = pull_settings_from(kw)
            summary, result, counts, lines = resync_range(pull, kw["since"], kw["until"],
                                                          kw["shard"], kw["dry_run"])  # fmt: skip
            extra = result.to_dict()
        else:
            if kw["shard"]:
                raise ConfigError("--shard applies to a range (--since/--until), not to files.")
            phoenix = phoenix_settings(kw["endpoint"], kw["api_key"], kw["project"],
                                       kw["retry_deadline"], kw["client_headers"],
                                       kw["strict"])  # fmt: skip
            options = conversion_settings(phoenix.project, kw)
            setup = RunSetup("resync", options, phoenix, tuning_from(kw), kw["quarantine_file"],
                             not kw["no_annotations"], progress=True)  # fmt: skip
            paths = expand_paths(list(files))
            summary, counts, lines = resync_files(paths, setup, resolve_state_dir(
                kw["state_dir"]), kw["dry_run"])  # fmt: skip
            extra = {}
        fields = {
            "project": phoenix.project,
            "dry_run": kw["dry_run"],
            **extra,
            **counts.to_dict(),
            **({"summary": summary.to_dict()} if summary else {}),
        }
        if kw["as_json"]:
            click.echo(json.dumps(fields))
        elif not kw["quiet"]:
            _print(counts, lines, kw["dry_run"], phoenix.project)
        for error in counts.errors:  # annotations people made, saved to a file
            click.echo(f"Error: {error}", err=True)
        quarantined = (summary.quarantined if summary else 0) + len(counts.unmatched)
        return Done(quarantined, failed=bool(counts.errors), fields=fields)

    with command_run() as run:
        run.done = action()


def _print(counts: Any, lines: list[str], dry_run: bool, project: str) -> None:
    span = f"{counts.earliest} .. {counts.latest}" if counts.earliest else "no logs"
    if dry_run:
        for line in lines:
            click.echo(line)
        click.echo(
            f"Dry run: {counts.units} unit(s), {counts.logs} logs ({span}): would delete "
            f"{counts.stored_before} spans in {counts.traces} traces of project '{project}', "
            f"carry over {counts.annotations_kept} annotations made in Phoenix (by people "
            f"or evaluators) and re-send {counts.logs - len(counts.unmatched)}. Nothing was "
            "changed."
        )
        for report in counts.unmatched:
            click.echo(f"Would skip: {report}")
        return
    click.echo(
        f"Resynced {counts.units} unit(s), {counts.logs} logs ({span}) in project '{project}': "
        f"deleted {counts.deleted} spans ({counts.traces} traces), re-sent {counts.resent}, "
        f"verified {counts.verified} with the current mapping; spans outside these logs "
        f"{counts.other_spans_before} before, {counts.other_spans_after} after; annotations "
        f"made in Phoenix: {counts.annotations_restored} of {counts.annotations_kept} carried "
        f"over; {counts.elapsed_s:.1f} s."
    )
    for report in counts.unmatched:
        click.echo(f"Skipped: {report}")
    for problem in counts.problems:
        click.echo(f"Warning: {problem} (the resync stays pending; rerun it).")
