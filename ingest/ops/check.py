"""`check`: the CI smoke check. Import fixture logs into a fresh project, read every span
back from Phoenix, and compare the essentials with the fixture's hand-written EXPECTED.json.
"""

from __future__ import annotations

import json
import math
import secrets
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import click

from ingest.convert.ids import span_hex, span_id_for
from ingest.convert.records import parse_record
from ingest.convert.spans import ConversionOptions
from ingest.errors import ConfigError, RecordError
from ingest.phoenix.api import PhoenixSettings
from ingest.phoenix.reader import SpanReader
from ingest.run.pipeline import RunSummary, import_files
from ingest.sources.files import decode_line, expand_paths, read_lines
from ingest.sources.samples import sample_logs_dir

_MAX_LISTED = 15


@dataclass
class Row:
    name: str
    expected: Any
    found: Any
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.expected == self.found


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _close(expected: Any, found: Any) -> bool:
    if expected is None or found is None:
        return expected is None and found is None
    return math.isclose(float(expected), float(found), rel_tol=1e-9, abs_tol=1e-12)


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def _same_time(expected: Any, found: Any) -> bool:
    a, b = _time(expected), _time(found)
    if a is None or b is None:
        return a is None and b is None
    return abs((a - b).total_seconds()) < 0.001


# Each essential: (row name, [(expected key, how to read the stored span, how to compare)])
_Getter = Callable[[dict[str, Any]], Any]
_Compare = Callable[[Any, Any], bool]


def _attr(key: str) -> _Getter:
    return lambda span: span["attributes"].get(key)


def _field(key: str) -> _Getter:
    return lambda span: span.get(key)


def _eq(a: Any, b: Any) -> bool:
    return a == b


_ESSENTIALS: list[tuple[str, list[tuple[str, _Getter, _Compare]]]] = [
    ("name and kind", [("name", _field("name"), _eq), ("span_kind", _field("span_kind"), _eq)]),
    ("model", [("model", _attr("llm.model_name"), _eq)]),
    ("provider", [("provider", _attr("llm.provider"), _eq)]),
    (
        "tokens",
        [
            ("prompt_tokens", _attr("llm.token_count.prompt"), _eq),
            ("completion_tokens", _attr("llm.token_count.completion"), _eq),
            ("total_tokens", _attr("llm.token_count.total"), _eq),
            ("cache_read", _attr("llm.token_count.prompt_details.cache_read"), _eq),
            ("cache_write", _attr("llm.token_count.prompt_details.cache_write"), _eq),
            ("reasoning", _attr("llm.token_count.completion_details.reasoning"), _eq),
        ],
    ),
    ("cost (USD)", [("cost_usd", _attr("llm.cost.total"), _close)]),
    (
        "status",
        [
            ("status", _field("status_code"), _eq),
            ("status_message", lambda s: s.get("status_message") or None, _eq),
        ],
    ),
    (
        "times",
        [
            ("start_time", _field("start_time"), _same_time),
            ("end_time", _field("end_time"), _same_time),
        ],
    ),
]  # fmt: skip


def load_expectations(logs_dir: Path) -> dict[str, Any]:
    path = logs_dir / "EXPECTED.json"
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the expectations {path}: {exc}") from exc


def compare(expected: dict[str, Any], summary: RunSummary, stored: dict[str, dict[str, Any]],
            project: str | dict[str, str]) -> list[Row]:  # fmt: skip
    """The check table: one row per essential, with the logs that do not match. `project`:
    the project, or (a routed run) each log id's project."""
    logs: dict[str, dict[str, Any]] = expected["logs"]
    projects = {log_id: project for log_id in logs} if isinstance(project, str) else project
    ids = {log_id: span_hex(span_id_for(projects.get(log_id, ""), log_id)) for log_id in logs}
    rows = [
        Row("records read", expected.get("records"), summary.read),
        Row("duplicates skipped", expected.get("duplicates", 0), summary.duplicates),
        Row("quarantined", expected.get("quarantined", 0), summary.quarantined),
        Row("spans stored", len(logs), sum(1 for span_id in ids.values() if span_id in stored)),
    ]
    for name, checks in _ESSENTIALS:
        row = Row(name, len(logs), 0)
        for log_id, want in logs.items():
            span = stored.get(ids[log_id])
            if span is None:
                row.problems.append(f"{log_id}: span {ids[log_id]} not found in Phoenix")
                continue
            bad = [
                f"{key} expected {want.get(key)!r}, found {get(span)!r}"
                for key, get, same in checks
                if key in want and not same(want.get(key), get(span))
            ]
            if bad:
                row.problems.append(f"{log_id}: " + "; ".join(bad))
            else:
                row.found += 1
        rows.append(row)
    rows.append(_trace_row(logs, ids, stored, projects))
    return rows


def _trace_row(logs: dict[str, Any], ids: dict[str, str], stored: dict[str, Any],
               projects: dict[str, str]) -> Row:  # fmt: skip
    """Logs that share a Portkey trace id (and a project) must share one Phoenix trace, and
    only those: a trace routed to two projects is a trace in each."""
    groups: dict[str, set[str]] = {}
    for log_id, want in logs.items():
        span = stored.get(ids[log_id])
        if span is not None and want.get("trace_group"):
            group = want["trace_group"]
            if len(set(projects.values())) > 1:
                group = f"{group} in {projects[log_id]}"
            groups.setdefault(group, set()).add(span["context"]["trace_id"])
    row = Row("trace grouping", len(groups), 0)
    seen: dict[str, str] = {}
    for group, trace_ids in sorted(groups.items()):
        if len(trace_ids) != 1:
            row.problems.append(f"trace {group}: split over {len(trace_ids)} Phoenix traces")
        elif (trace_id := next(iter(trace_ids))) in seen:
            row.problems.append(f"trace {group}: shares a Phoenix trace with {seen[trace_id]}")
        else:
            seen[trace_id] = group
            row.found += 1
    return row


def _read_quarantine(path: Path | None) -> dict[int, str]:
    if path is None or not path.exists():
        return {}
    entries = (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines())
    return {entry["line"]: entry["reason"] for entry in entries}


def _quarantine_row(expected: list[dict[str, Any]], rejected: dict[int, str]) -> Row:
    """Each expected rejection is in the quarantine file, at its line, for its reason."""
    row = Row("quarantine reasons", len(expected), 0)
    for want in expected:
        reason = rejected.get(want["line"])
        if reason is None:
            row.problems.append(f"line {want['line']}: not quarantined")
        elif want["reason_contains"] not in reason:
            row.problems.append(
                f"line {want['line']}: reason {reason!r} lacks {want['reason_contains']!r}"
            )
        else:
            row.found += 1
    if len(rejected) != len(expected):
        row.problems.append(f"{len(rejected)} lines quarantined, {len(expected)} expected")
    return row


def print_table(rows: list[Row]) -> None:
    click.echo(f"  {'check':<20} {'expected':>9} {'found':>9}  result")
    for row in rows:
        result = "PASS" if row.ok else "FAIL"
        click.echo(f"  {row.name:<20} {row.expected!s:>9} {row.found!s:>9}  {result}")
    for row in rows:
        for problem in row.problems[:_MAX_LISTED]:
            click.echo(f"  FAIL {row.name}: {problem}")
        if len(row.problems) > _MAX_LISTED:
            click.echo(f"  FAIL {row.name}: ... and {len(row.problems) - _MAX_LISTED} more")


def run_check(
    settings: PhoenixSettings,
    logs_dir: Path | None,
    fresh_project: bool,
    keep: bool = False,
    project_from: str | None = None,
) -> bool:
    """Import, read back, compare. A fresh project the check made is deleted when the check
    passes (unless `keep`), so CI on every commit does not pile projects up; a failed check
    keeps it and prints its link. A project the user named is never deleted. Routed
    (`project_from`), each log is read back from its own project; a passed check deletes the
    projects it created, and never one that existed before it."""
    logs_dir = logs_dir or sample_logs_dir()
    expected = load_expectations(logs_dir)
    if fresh_project:
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        settings = replace(settings, project=f"portkey-check-{stamp}-{secrets.token_hex(2)}")
    files = expand_paths([logs_dir])
    click.echo(f"Importing {len(files)} files from {logs_dir} into project '{settings.project}' "
               f"at {settings.base_url} ...")  # fmt: skip
    reader = SpanReader(settings)
    before = _project_names(reader) if project_from else set()
    options = ConversionOptions(project=settings.project, project_from=project_from)
    with tempfile.TemporaryDirectory(prefix="portkey-check-") as state_dir:
        summary = import_files(files, settings, options, Path(state_dir))
        rejected = _read_quarantine(summary.quarantine_path)
    projects = _routes(files, options, expected["logs"])
    # The logs' start-time window: Phoenix older than 19.6 is read over it (no span_id filter)
    window = None
    if summary.earliest is not None and summary.latest is not None:
        window = (summary.earliest, summary.latest)
    stored: dict[str, dict[str, Any]] = {}
    for project in sorted(set(projects.values())):
        ids = [span_hex(span_id_for(project, log_id))
               for log_id, its in projects.items() if its == project]  # fmt: skip
        stored.update((span["context"]["span_id"], span)
                      for span in reader.fetch(ids, window, project=project))  # fmt: skip
    rows = compare(expected, summary, stored, projects)
    if "quarantine" in expected:
        rows.append(_quarantine_row(expected["quarantine"], rejected))
    print_table(rows)
    passed = all(row.ok for row in rows)
    click.echo("check passed" if passed else "check FAILED")
    if passed and fresh_project and not keep:
        _delete_project(reader)
        for name in sorted(set(projects.values()) - before - {settings.project}):
            _delete_project(reader, name)  # routed there, and made by this check
    else:
        click.echo(f"Project '{settings.project}' kept: {_project_link(reader, summary)}")
    return passed


def _routes(files: list[Path], options: ConversionOptions, logs: dict[str, Any]
            ) -> dict[str, str]:  # fmt: skip
    """Each expected log's project: the run's routing, applied to the fixture's lines."""
    projects = {log_id: options.project for log_id in logs}
    if not options.project_from:
        return projects
    for path in files:
        for line in read_lines(path):
            try:
                record = parse_record(decode_line(line))
            except RecordError:
                continue
            if record.log_id in projects:
                projects[record.log_id] = options.route(record).project
    return projects


def _project_names(reader: SpanReader) -> set[str]:
    return {str(project["name"]) for project in reader.client.projects.list()}


def _delete_project(reader: SpanReader, name: str | None = None) -> None:
    """Delete a project the check made; a failure to tidy up does not fail a passed check."""
    name = name or reader.settings.project
    try:
        reader.client.projects.delete(project_name=name)
    except Exception as exc:  # httpx errors, or a Phoenix that refuses deletes
        click.echo(f"Warning: could not delete the check's project '{name}' ({exc}); "
                   "delete it in the Phoenix UI (Projects).", err=True)  # fmt: skip
        return
    click.echo(f"Deleted the check's project '{name}' (use --keep to keep it).")


def _project_link(reader: SpanReader, summary: RunSummary) -> str:
    """A UI link to the project over the fixture's dates (Phoenix opens on the last 7 days)."""
    base = reader.settings.base_url
    try:
        project_id = str(reader.client.projects.get(project_name=reader.settings.project)["id"])
    except Exception:  # a link is a convenience: the project list still gets the user there
        return f"{base}/projects"
    url = f"{base}/projects/{quote(project_id, safe='')}"
    if summary.earliest is None or summary.latest is None:
        return url
    start, end = summary.earliest.astimezone(UTC), summary.latest.astimezone(UTC)
    days = {"timeRangeStart": f"{start:%Y-%m-%d}T00:00:00.000Z",
            "timeRangeEnd": f"{end:%Y-%m-%d}T23:59:59.000Z"}  # fmt: skip
    return f"{url}?{urlencode(days)}"
