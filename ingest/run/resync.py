"""Resync: replace what a Phoenix project holds for some logs with their current conversion.

Phoenix keeps the first copy of a span id, so a changed log (or a changed mapping) reaches
Phoenix only if the old span is deleted first. One unit at a time (an export window, or one
export file), in this order:

1. index the unit's logs: span id (deterministic, from project and the raw log id) -> log id;
2. read those ids back and keep the spans this tool wrote (they carry `portkey.log_id`),
   by span id, not by the stored id text (redaction, NUL removal or a cap may change it);
   never a trace or a time range. A log whose id another writer's span holds is reported
   and skipped; the rest of the unit goes on;
3. save the annotations others made on those spans beside the state, then record the unit
   as "resync in progress" in the state file (saved) before the first delete;
4. delete them by span id, re-deliver the unit (send -> verify -> annotate, the usual path);
5. verify: every log of the unit stored once with the current mapping version, the
   annotations written, and the project's count outside these logs unchanged; then write
   the kept annotations back and read them back;
6. only then clear the record (and the saved annotations). A crash in between leaves it: the
   next resync redoes the unit (deleting again is harmless; the saved annotations are
   written back then), `status` shows it, and `sync` fills the hole.

Routed (`--project-from`), each log is looked up, deleted and verified in the project it is
routed to, and the count outside the logs is taken over all those projects. Sampled
(`--sample`), only the logs sampled in are replaced: the others are not re-delivered, so
nothing of theirs is deleted.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from dataclasses import replace as replaced
from datetime import datetime, timedelta
from hashlib import sha256
from pathlib import Path
from typing import Any

from ingest.convert.common import INGEST_MAPPING_VERSION, MAPPING_VERSION
from ingest.convert.ids import sampled_in, span_hex, span_id_for
from ingest.convert.records import unwrap_quarantined
from ingest.convert.spans import ConversionOptions
from ingest.errors import PhoenixError, RecordError, VerificationError
from ingest.phoenix.admin.deletes import AnnotationKeeper, SpanDeleter, merged
from ingest.phoenix.admin.totals import PORTKEY_LOG_ID, PhoenixTotals
from ingest.phoenix.api import PhoenixSettings
from ingest.phoenix.reader import SpanReader
from ingest.run.logs import escape, shown
from ingest.run.pipeline import FileImporter
from ingest.run.state import StateStore, make_private_dir, open_private
from ingest.sources.files import decode_line, read_lines
from ingest.sources.windows import Window

log = logging.getLogger(__name__)


@dataclass
class ResyncCounts:
    units: int = 0  # windows or files replaced (planned, in a dry run)
    logs: int = 0  # distinct logs in them
    deleted: int = 0  # spans of these logs deleted from the project
    stored_before: int = 0  # spans of these logs the project held before (dry run: to delete)
    traces: int = 0  # traces those spans belong to
    resent: int = 0  # spans sent again and read back
    verified: int = 0  # logs read back afterwards with the current mapping version
    other_spans_before: int = 0  # spans in the units' time ranges outside these logs
    other_spans_after: int = 0
    annotations_kept: int = 0  # made in Phoenix by others (dry run: to carry over)
    annotations_restored: int = 0  # of those, written back and read back
    unmatched: list[str] = field(default_factory=list)  # logs skipped: id held by another writer
    annotation_files: list[str] = field(default_factory=list)  # kept annotations not restored
    errors: list[str] = field(default_factory=list)  # why, and what to do
    earliest: datetime | None = None
    latest: datetime | None = None
    elapsed_s: float = 0.0
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "units": self.units, "logs": self.logs, "stored_before": self.stored_before,
            "deleted": self.deleted, "traces": self.traces, "resent": self.resent,
            "verified": self.verified, "other_spans_before": self.other_spans_before,
            "other_spans_after": self.other_spans_after,
            "annotations_kept": self.annotations_kept,
            "annotations_restored": self.annotations_restored,
            "unmatched": self.unmatched, "annotation_files": self.annotation_files,
            "errors": self.errors,
            "range": [_iso(self.earliest), _iso(self.latest)],
            "elapsed_s": round(self.elapsed_s, 3), "problems": self.problems,
        }  # fmt: skip


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


@dataclass
class UnitPlan:
    """What one unit holds, and what of it the project holds now."""

    logs: dict[str, str]  # span id (hex) -> log id
    earliest: datetime | None
    latest: datetime | None
    ours: set[str]  # span ids stored in the project for exactly these logs
    traces: set[str]
    projects: dict[str, str] = field(default_factory=dict)  # span id -> its project
    unmatched: set[str] = field(default_factory=set)  # ids held by another writer's spans
    kept: list[dict[str, Any]] = field(default_factory=list)  # others' annotations on `ours`

    @property
    def bounds(self) -> tuple[datetime, datetime] | None:
        return (self.earliest, self.latest) if self.earliest and self.latest else None


def index_logs(paths: list[Path], options: ConversionOptions, max_line_bytes: int,
               projects: dict[str, str] | None = None,
               ) -> tuple[dict[str, str], datetime | None, datetime | None]:  # fmt: skip
    """First pass over a unit: span id -> log id of every log that parses and is sampled in
    (and, into `projects`, span id -> the project it is routed to), and the range of their
    start times. Lines that do not parse are quarantined by the delivery pass."""
    from ingest.convert.records import parse_record

    logs: dict[str, str] = {}
    earliest: datetime | None = None
    latest: datetime | None = None
    for path in paths:
        for line in read_lines(path, max_line_bytes=max_line_bytes):
            try:
                record = parse_record(unwrap_quarantined(decode_line(line)))
            except RecordError:
                continue
            if not sampled_in(record, options.sample):
                continue
            project = options.route(record).project
            span_id = span_hex(span_id_for(project, record.log_id))
            logs[span_id] = record.log_id
            if projects is not None:
                projects[span_id] = project
            earliest = record.created_at if earliest is None else min(earliest, record.created_at)
            latest = record.created_at if latest is None else max(latest, record.created_at)
    return logs, earliest, latest


class Resyncer:
    """Plans and replaces units; accumulates the counts."""

    def __init__(self, settings: PhoenixSettings, options: ConversionOptions,
                 store: StateStore | None = None, importer: FileImporter | None = None,
                 ) -> None:  # fmt: skip
        self.settings = settings
        self.options = options
        self.max_line_bytes = options.max_line_bytes
        self.store = store  # None: a dry run (changes nothing, not even the state file)
        self.importer = importer
        self.reader = SpanReader(settings)
        self._totals: dict[str, PhoenixTotals] = {settings.project: PhoenixTotals(settings)}
        self.deleter = SpanDeleter(settings)
        self._keepers = {settings.project: AnnotationKeeper(self.reader)}
        # Where a unit's kept annotations wait until written back (a dry run reads them too).
        self.saved_dir = store.dir / "resync-annotations" if store else None
        self.counts = ResyncCounts()
        self.lines: list[str] = []  # per unit, for the dry run's listing

    def plan(self, paths: list[Path], key: str = "") -> UnitPlan:
        projects: dict[str, str] = {}
        logs, earliest, latest = index_logs(paths, self.options, self.max_line_bytes, projects)
        plan = UnitPlan(logs, earliest, latest, set(), set(), projects)
        if logs and plan.bounds:
            for span in self._fetch(plan):
                span_id = span["context"]["span_id"]
                # The id is a digest of the raw log id that only this tool computes; its
                # `portkey.log_id` says this tool wrote it, whatever text that holds now.
                if isinstance((span.get("attributes") or {}).get(PORTKEY_LOG_ID), str):
                    plan.ours.add(span_id)
                    plan.traces.add(span["context"]["trace_id"])
                elif span_id in logs:  # same id, another writer: never deleted nor replaced
                    plan.unmatched.add(span_id)
                    self._unmatched(span_id, logs[span_id], projects[span_id])
            plan.kept = self._kept(plan) if plan.ours else []
        if (saved := self.saved(key)) is not None:  # an earlier run's, then Phoenix's
            plan.kept = merged(load_annotations(saved), plan.kept)
        self._tally(plan)
        return plan

    def keeper(self, project: str) -> AnnotationKeeper:
        if project not in self._keepers:
            settings = replaced(self.settings, project=project)
            self._keepers[project] = AnnotationKeeper(SpanReader(settings))
        return self._keepers[project]

    def _kept(self, plan: UnitPlan) -> list[dict[str, Any]]:
        """Others' annotations on the spans to be deleted, read in each span's project."""
        kept: list[dict[str, Any]] = []
        for project in sorted({plan.projects[span_id] for span_id in plan.ours}):
            ids = [span_id for span_id in plan.ours if plan.projects[span_id] == project]
            kept += self.keeper(project).read(ids)
        return kept

    def saved(self, key: str) -> Path | None:
        return self.saved_dir / f"{sha256(key.encode()).hexdigest()[:16]}.jsonl" if (
            self.saved_dir and key) else None  # fmt: skip

    def _unmatched(self, span_id: str, log_id: str, project: str) -> None:
        report = (
            f"log {shown(log_id)}: its span id {span_id} in project "
            f"'{escape(project)}' is held by a span this tool did not write (no "
            f"{PORTKEY_LOG_ID}); left as it is, this log is not replaced. Delete that span in "
            "Phoenix and resync again to replace it."
        )
        self.counts.unmatched.append(report)
        log.warning("skipped %s", report)

    def _tally(self, plan: UnitPlan) -> None:
        c = self.counts
        c.units += 1
        c.logs += len(plan.logs)
        c.stored_before += len(plan.ours)
        c.traces += len(plan.traces)
        c.annotations_kept += len(plan.kept)
        if plan.earliest is not None:
            c.earliest = plan.earliest if c.earliest is None else min(c.earliest, plan.earliest)
        if plan.latest is not None:
            c.latest = plan.latest if c.latest is None else max(c.latest, plan.latest)

    def describe(self, name: str, plan: UnitPlan) -> None:
        span = f"{_iso(plan.earliest)} .. {_iso(plan.latest)}" if plan.bounds else "no logs"
        self.lines.append(
            f"  {name}: {len(plan.logs)} logs ({span}); would delete {len(plan.ours)} spans "
            f"in {len(plan.traces)} traces, carry over {len(plan.kept)} annotations made in "
            f"Phoenix and re-send {len(plan.logs) - len(plan.unmatched)}"
            + (f" (skip {len(plan.unmatched)} held by another writer)" if plan.unmatched else "")
        )

    def replace(self, key: str, unit: dict[str, Any], paths: list[Path],
                deliver: Callable[[], None]) -> None:  # fmt: skip
        """Delete the unit's spans that this tool wrote, re-deliver the unit, verify."""
        assert self.store is not None and self.importer is not None
        plan = self.plan(paths, key)
        other_before = self._count(plan) - len(plan.ours) if plan.bounds else 0
        rescue, kept = self.saved(key), plan.kept
        assert rescue is not None
        if kept:  # saved before the first delete: a crash cannot lose them
            save_annotations(rescue, kept)
        entry = {**unit, "project": self.options.destination, "deleting": len(plan.ours)}
        self.store.begin_resync(key, {**entry, "annotations_kept": len(kept)})
        deleted_before = self.deleter.deleted
        self.deleter.delete(sorted(plan.ours))
        self.counts.deleted += self.deleter.deleted - deleted_before
        summary = self.importer.summary
        delivered, failures = summary.delivered, self._annotation_failures()
        deliver()
        self.counts.resent += self.importer.summary.delivered - delivered
        if plan.bounds:
            self._verify(key, plan, other_before)
        if kept and not self._restore(key, rescue, kept, plan.projects):
            return
        if self._annotation_failures() > failures:
            self.counts.problems.append(f"{key}: some annotations were not written")
            log.warning("%s: annotations missing; the resync stays pending: rerun it", key)
            return
        self.store.end_resync(key)

    def _restore(self, key: str, rescue: Path, kept: list[dict[str, Any]],
                 projects: dict[str, str]) -> bool:  # fmt: skip
        """Write back the annotations others made, each in its span's project; keep the file
        of those not restored."""
        by_project: dict[str, list[dict[str, Any]]] = {}
        for item in kept:
            its = projects.get(item["span_id"], self.settings.project)
            by_project.setdefault(its, []).append(item)
        missing, reason = [], ""
        for project, items in sorted(by_project.items()):
            left, why = self.keeper(project).restore(items)
            missing += left
            reason = reason or why
        self.counts.annotations_restored += len(kept) - len(missing)
        if not missing:
            rescue.unlink(missing_ok=True)
            return True
        save_annotations(rescue, missing)
        self.counts.annotation_files.append(str(rescue))
        self.counts.errors.append(
            f"{key}: {len(missing)} annotations made in Phoenix (people's labels and notes, "
            f"evaluations) could not be written back to the replaced spans ({escape(reason)}); "
            f"they are saved in {rescue}. Rerun the same resync: it writes them back from "
            "that file (the resync stays pending until it has)."
        )
        return False

    def _annotation_failures(self) -> int:
        assert self.importer is not None
        stats = self.importer.deliverer.stats.annotation_errors
        annotator = self.importer.deliverer.annotator
        return stats + (annotator.failed if annotator is not None else 0)

    def _fetch(self, plan: UnitPlan) -> list[dict[str, Any]]:
        """The stored spans of the plan's logs, each read from its own project."""
        found: list[dict[str, Any]] = []
        for project in sorted(set(plan.projects.values())):
            ids = [span_id for span_id, its in plan.projects.items() if its == project]
            found += self.reader.fetch(ids, plan.bounds, project=project)
        return found

    def _count(self, plan: UnitPlan) -> int:
        """Spans over the unit's time range in every project its logs go to."""
        assert plan.earliest and plan.latest
        window = Window(plan.earliest, plan.latest + timedelta(microseconds=1))
        total = 0
        for project in sorted(set(plan.projects.values()) | {self.settings.project}):
            if project not in self._totals:
                self._totals[project] = PhoenixTotals(replaced(self.settings, project=project))
            totals = self._totals[project]
            if totals.project_id() is not None:  # no such project yet: nothing stored
                total += totals.count(window, "")
        return total

    def _verify(self, key: str, plan: UnitPlan, other_before: int) -> None:
        expected = [span_id for span_id in plan.logs if span_id not in plan.unmatched]
        stored = [span for span in self._fetch(plan)
                  if span["context"]["span_id"] not in plan.unmatched]  # fmt: skip
        current = [
            span for span in stored
            if (span.get("attributes") or {}).get(INGEST_MAPPING_VERSION) == MAPPING_VERSION
        ]  # fmt: skip
        self.counts.verified += len(current)
        missing = len(expected) - len({s["context"]["span_id"] for s in stored})
        if missing or len(current) != len(expected):
            raise VerificationError(
                f"{key}: after the resync {missing} of its {len(expected)} logs are missing "
                f"from {_where(plan)} and "
                f"{len(expected) - missing - len(current)} are stored with another mapping "
                "version. The resync stays recorded as in progress (see `status`); rerun the "
                "same resync to complete it (quarantined lines, if any, were not re-sent: fix "
                "them and resync their file)."
            )
        other_after = self._count(plan) - len(stored)  # another writer's span stays 'other'
        self.counts.other_spans_before += other_before
        self.counts.other_spans_after += other_after
        if other_after < other_before:
            raise PhoenixError(
                f"{key}: {_where(plan)} holds {other_before - other_after} "
                "fewer spans outside the resynced logs than before (another writer deleting, "
                "or retention?). The resync stays recorded as in progress; check the project "
                "and rerun it."
            )
        if other_after > other_before:
            log.info("%s: %d spans were added by another writer meanwhile", key,
                     other_after - other_before)  # fmt: skip


def _where(plan: UnitPlan) -> str:
    names = sorted(set(plan.projects.values()))
    if len(names) == 1:
        return f"project '{names[0]}'"
    return "projects " + ", ".join(f"'{name}'" for name in names)


def load_annotations(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def save_annotations(path: Path, kept: list[dict[str, Any]]) -> None:
    """One annotation per line, as POST /v1/span_annotations takes it (`original`: what
    Phoenix does not let a client write). Written whole, then renamed: never half a file."""
    make_private_dir(path.parent)
    partial = path.with_suffix(".partial")
    with open_private(partial, "w") as handle:
        handle.writelines(json.dumps(item, ensure_ascii=False) + "\n" for item in kept)
    os.replace(partial, path)
