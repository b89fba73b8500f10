"""What the user reads: run summaries, the state overview, and links into the Phoenix UI."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import click

from ingest.phoenix.admin.projects import ensure_project as ensure_project  # re-exported
from ingest.phoenix.admin.projects import project_id
from ingest.run.logs import escape

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
