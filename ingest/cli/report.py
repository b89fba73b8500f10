"""What a command shows: the live progress line on a terminal, and at its end the run
summaries, the state overview, links into the Phoenix UI, and the one place that turns the
outcome into the exit code and the `run_done` line.

Every command body runs through `command_run`; errors raised before a body runs (a bad
option, a broken config file, Ctrl-C while parsing) are caught by `IngestGroup.main`
(cli/main.py). Both end the same way (`finish`): the summary already printed and flushed,
then `run_done` as the last line (also when stdout and stderr go to one file, as with cron's
`>> log 2>&1`), then the exit.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn, TextIO
from urllib.parse import quote, urlencode

import click

from ingest.convert.redact import active
from ingest.errors import EXIT_FAILED, IngestError, outcome_of
from ingest.phoenix.admin.projects import ensure_project as ensure_project  # re-exported
from ingest.phoenix.admin.projects import project_id
from ingest.run.logs import PROGRESS, escape

if TYPE_CHECKING:
    from ingest.phoenix.api import PhoenixSettings
    from ingest.run.pipeline import RunSummary
    from ingest.run.pull import PullResult
    from ingest.run.state import StateStore


def phoenix_link(
    settings: PhoenixSettings,
    project_id: str | None,
    earliest: datetime | None,
    latest: datetime | None,
) -> str:
    """A Phoenix UI link to the project whose time range shows the backfilled logs.

    Phoenix opens projects on the last 7 days, so imported history looks missing unless the
    link carries the range (`timeRangeStart`/`timeRangeEnd`, as the UI itself writes them).
    """
    if project_id is None:  # not created yet: Phoenix's UI resolves the name once it is
        return f"{settings.base_url}/redirects/projects/{quote(settings.project, safe='')}"
    url = f"{settings.base_url}/projects/{quote(project_id, safe='')}"
    if earliest is None or latest is None:
        return url
    start = earliest.astimezone(UTC).replace(second=0, microsecond=0)
    end = latest.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=2)
    query = {"timeRangeStart": _js_iso(start), "timeRangeEnd": _js_iso(end)}
    return f"{url}?{urlencode(query)}"


def _js_iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def range_link(settings: PhoenixSettings, earliest: datetime, latest: datetime) -> str:
    """A link to the range, also for a project that does not exist yet (a dry run creates
    nothing): then the link opens the project by name and the range is spelled out."""
    found = project_id(settings)
    link = phoenix_link(settings, found, earliest, latest)
    if found is None:
        link += (f" (project '{settings.project}' is created by the first span; then choose "
                 f"{_js_iso(earliest)} .. {_js_iso(latest)} in its time range)")  # fmt: skip
    return link


def print_converted(summary: RunSummary, quiet: bool = False) -> None:
    """convert's counts, on stderr (stdout holds the spans), as import prints them."""
    if quiet:
        return
    rows = [
        ("records read", summary.read),
        ("spans written", summary.delivered),
        ("duplicates skipped", summary.duplicates),
        ("quarantined", summary.quarantined),
    ]
    if summary.records_with_warnings:
        rows.append(("records with warnings", summary.records_with_warnings))
    if summary.sampled_out:
        rows.append(("sampled out", summary.sampled_out))
    if summary.coercions:
        rows.append(
            (
                "coerced values",
                ", ".join(f"{name} {count}" for name, count in sorted(summary.coercions.items())),
            )
        )
    if summary.redacted:
        rows.append(("secrets masked", _redacted_text(summary)))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        click.echo(f"  {name:<{width}}  {value}", err=True)


def project_links(summary: RunSummary, settings: PhoenixSettings) -> dict[str, str]:
    """A link per project the run's spans went to (the settings' project when none)."""
    names = sorted(summary.projects) or [settings.project]
    return {name: phoenix_link(routed := replace(settings, project=name), project_id(routed),
                               summary.earliest, summary.latest) for name in names}  # fmt: skip


def print_summary(
    summary: RunSummary, settings: PhoenixSettings, as_json: bool = False, quiet: bool = False
) -> None:
    links = project_links(summary, settings)
    link = links.get(settings.project) or next(iter(links.values()))
    if as_json:
        click.echo(json.dumps({**summary.to_dict(), "project": settings.project, "link": link,
                               "links": links}))  # fmt: skip
        return
    if quiet:
        return
    rows: list[tuple[str, Any]] = [
        ("files", _files_text(summary)),
        ("records read", summary.read),
        ("delivered", summary.delivered),
        ("already present", summary.already_present),
        ("duplicates skipped", summary.duplicates),
        ("quarantined", summary.quarantined),
        ("retried requests", summary.retried),
        ("re-sent spans", summary.resent),
        ("annotations", _annotations_text(summary)),
        ("elapsed", f"{summary.elapsed_s:.1f} s ({summary.rate:.0f} spans/s)"),
    ]
    if summary.coercions:
        coerced = ", ".join(f"{name} {count}" for name, count in sorted(summary.coercions.items()))
        rows.append(("coerced values", coerced))
    if summary.records_with_warnings:
        rows.append(("records with warnings", summary.records_with_warnings))
    if summary.redacted:
        rows.append(("secrets masked", _redacted_text(summary)))
    if summary.sampled_out:
        rows.append(("sampled out", summary.sampled_out))
    if summary.route_fallbacks:
        rows.append(("routing fallbacks", f"{summary.route_fallbacks} (went to "
                                          f"'{settings.project}': no project name)"))  # fmt: skip
    if len(links) > 1:
        click.echo(f"Imported into {len(links)} Phoenix projects at {settings.base_url}")
        rows += [(f"  {name}", f"{summary.projects[name]} spans") for name in links]
    else:
        click.echo(f"Imported into Phoenix project '{next(iter(links))}' at {settings.base_url}")
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        click.echo(f"  {name:<{width}}  {value}")
    if summary.quarantined:
        click.echo(f"Quarantined records (with reasons): {summary.quarantine_path}")
    for name, each in links.items():
        click.echo(f"Open in Phoenix: {each}" + (f" ({name})" if len(links) > 1 else ""))


def _redacted_text(summary: RunSummary) -> str:
    """`spans 3, quarantine 1`: what was masked, per output."""
    return ", ".join(f"{output} {count}" for output, count in summary.redacted.items())


def _annotations_text(summary: RunSummary) -> str:
    if summary.annotation_failures:
        return f"{summary.annotations} ({summary.annotation_failures} failed: rerun to retry)"
    return str(summary.annotations)


def _files_text(summary: RunSummary) -> str:
    if summary.files_already_done:
        return f"{summary.files} ({summary.files_already_done} already imported, skipped)"
    return str(summary.files)


def print_status(
    store: StateStore, as_json: bool = False, shards: list[StateStore] | None = None
) -> None:
    """The state overview; the shards of a sharded backfill (STATE_DIR/shards/I-of-N) too."""
    shards = shards or []
    doc = store.doc
    if as_json:
        document = {"state_file": str(store.path), **doc}
        if shards:
            document["shards"] = {shard.dir.name: shard.doc for shard in shards}
        click.echo(json.dumps(document, indent=2, sort_keys=True))
        return
    click.echo(f"State file: {store.path}" + ("" if store.path.exists() else " (none yet)"))
    _print_state(doc, indent="")
    for shard in shards:
        click.echo(f"Shard {shard.dir.name.replace('-of-', '/')} ({shard.path}):")
        _print_state(shard.doc, indent="  ", files=False)


def _print_state(doc: dict[str, Any], indent: str, files: bool = True) -> None:
    entries = sorted(doc["files"].values(), key=lambda entry: entry.get("updated_at", ""))
    if files and not entries:
        click.echo(f"{indent}No files imported yet.")
    elif entries:
        click.echo(f"{indent}Files ({len(entries)}):")
        for entry in entries:
            state = "done" if entry["complete"] else f"in progress, line {entry['line']}"
            click.echo(
                f"{indent}  {escape(str(entry.get('path')))}  [{entry['project']}]  {state}  "
                f"delivered {entry['delivered']}, already present {entry['already_present']}, "
                f"quarantined {entry['quarantined']}, duplicates {entry['duplicates']}"
            )
    for entry in doc.get("sync", {}).values():
        click.echo(
            f"{indent}Sync into '{entry.get('project')}': watermark "
            f"{entry.get('watermark') or 'none yet'} (every log before it is verified in Phoenix)"
        )
    for entry in doc.get("backfills", {}).values():
        done = len(entry.get("done", []))
        state = "complete" if entry.get("complete") else f"{done} windows done"
        click.echo(
            f"{indent}Backfill {entry.get('since')} .. {entry.get('until')} into "
            f"'{entry.get('project')}': {state}"
        )
    for entry in doc.get("resyncs", {}).values():  # deleted, not yet verified re-delivered
        unit = entry.get("path") or f"{entry.get('since')} .. {entry.get('until')}"
        click.echo(
            f"{indent}Resync in progress: {escape(str(unit))} into '{entry.get('project')}', "
            f"started {entry.get('started_at')}, deleting {entry.get('deleting')} spans: some "
            "may be missing or stale until it finishes (sync re-delivers what is missing). Run "
            "resync again (with --yes) to complete it."
        )
    for name, run in sorted(doc["runs"].items()):
        click.echo(
            f"{indent}Last {name}: {run.get('finished_at')} into '{run.get('project')}' "
            f"({_run_outcome(run)}): read {run.get('read')}, delivered {run.get('delivered')}, "
            f"already present {run.get('already_present')}, "
            f"quarantined {run.get('quarantined')}" + _routed_text(run)
        )


def _routed_text(run: dict[str, Any]) -> str:
    """What a routed or sampled run adds to its line: sampled out, and its projects."""
    text = f", sampled out {run['sampled_out']}" if run.get("sampled_out") else ""
    projects = run.get("projects") or {}
    if len(projects) > 1:
        text += "; projects " + ", ".join(f"'{escape(str(name))}' {count}"
                                          for name, count in sorted(projects.items()))  # fmt: skip
    return text


def _run_outcome(run: dict[str, Any]) -> str:
    """`ok`, `quarantined, exit 3`, `failed, exit 1: <error>`, `interrupted, exit 130`."""
    outcome = str(run.get("outcome", "ok"))
    code = run.get("exit_code")
    if code in (None, 0):
        return outcome
    text = f"{outcome}, exit {code}"
    return f"{text}: {escape(str(run['error']))}" if run.get("error") else text


def print_pull(
    summary: RunSummary,
    result: PullResult,
    info: dict[str, Any],
    settings: PhoenixSettings,
    as_json: bool = False,
    quiet: bool = False,
) -> None:
    """The summary of a `sync` or `backfill`: the import summary plus the windows."""
    if as_json:
        links = project_links(summary, settings)
        link = links.get(settings.project) or next(iter(links.values()))
        payload = {**summary.to_dict(), **result.to_dict(), **info}
        click.echo(json.dumps({**payload, "project": settings.project, "link": link,
                               "links": links}))  # fmt: skip
        return
    if not quiet:
        click.echo(
            f"Range {info['since']} .. {info['until']}: {result.windows_planned} windows, "
            f"{result.windows_done} done now, {result.windows_skipped} done before, "
            f"{result.export_files} export files, {result.logs_exported} logs exported"
        )
        if info.get("watermark"):
            click.echo(f"Sync watermark: {info['watermark']}")
    print_summary(summary, settings, quiet=quiet)
    if result.stopped_early:
        click.echo(
            f"Stopped at --max-duration with {result.windows_remaining} windows left: "
            "the next run continues from there."
        )


def print_plan(rows: list[dict[str, Any]], as_json: bool) -> None:
    """A backfill's dry run: each window with its logs and export jobs, then the totals."""
    logs, jobs = sum(row["logs"] for row in rows), sum(row["jobs"] for row in rows)
    if as_json:
        click.echo(json.dumps({"windows": rows, "logs": logs, "jobs": jobs}))
        return
    for row in rows:
        click.echo(f"  {row['window']}  {row['logs']:>9} logs  {row['jobs']:>3} export job(s)")
    click.echo(
        f"{len(rows)} windows, {logs} logs, {jobs} export jobs (dry run: no job was started)"
    )


# ---- the outcome -> exit code and run_done


@dataclass
class Done:
    """What a command body returns: failed (exit 1) or how many records it quarantined
    (exit 3 when any), and the counts its `run_done` line carries."""

    quarantined: int = 0
    failed: bool = False
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class CommandRun:
    """The body's outcome, set inside `command_run`: a `Done`, or a bare exit code (0 ok,
    1 failed); left unset, the command succeeded."""

    done: Done | int | None = None


@contextmanager
def command_run() -> Iterator[CommandRun]:
    """Run a command body in this block (no callback: the body stays in its command's
    module); its outcome -> the exit code, a `run_done` line, and the exit."""
    draw_progress(sys.stderr)
    run = CommandRun()
    try:
        yield run
    except KeyboardInterrupt as exc:
        click.echo("Interrupted: progress up to the last verified batch is saved.", err=True)
        finish(*outcome_of(exc))
    except IngestError as exc:
        click.echo(f"Error: {error_text(exc)}", err=True)
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
    result = run.done
    done = Done(failed=result == EXIT_FAILED) if isinstance(result, int) else result or Done()
    if done.failed:
        finish("failed", EXIT_FAILED, **done.fields)
    finish(*outcome_of(None, done.quarantined), **done.fields)


def error_text(exc: BaseException) -> str:
    """An error's message fit for stderr: secrets masked by the run's rules, and control
    characters escaped: a value quoted in it (a log id, a server's answer) cannot forge a
    line or drive the terminal. An error is one line."""
    return escape(active().scrub(str(exc), where="stderr"))


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


# ---- the live progress line


class ProgressLine(logging.Handler):
    """Redraws one line on a terminal from the run's progress events (run/logs.py): where
    the run is, what is verified, rate and ETA; cleared when the run ends."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream
        self._width = 0

    def emit(self, record: logging.LogRecord) -> None:
        fields = getattr(record, "fields", {})
        if getattr(record, "event", None) != "progress":  # progress_end: the run is over
            if self._width:
                self._draw(" " * self._width + "\r")
                self._width = 0
            return
        elapsed, verified, done = fields["elapsed_s"], fields["verified"], fields["done"]
        rate = verified / elapsed if elapsed > 0 else 0.0
        parts = [escape(fields["where"]), f"verified {verified:,}",
                 f"already there {fields['present']:,}", f"{rate:,.0f}/s"]  # fmt: skip
        if done is not None and 0 < done < 1:
            parts.append(f"ETA {_duration(elapsed * (1 - done) / done)}")
        line = " | ".join(parts)
        self._draw(line.ljust(self._width))
        self._width = len(line)

    def _draw(self, text: str) -> None:
        self.stream.write("\r" + text)
        self.stream.flush()


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def draw_progress(stream: TextIO) -> None:
    """Draw the runs' progress on `stream` when it is a terminal; elsewhere nothing draws it
    (the logged events are the record)."""
    PROGRESS.handlers[:] = [ProgressLine(stream)] if stream.isatty() else []
