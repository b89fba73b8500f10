"""Resync: replace what a Phoenix project holds for some logs with their current conversion.

Phoenix keeps the first copy of a span id, so a changed log (or a changed mapping) reaches
Phoenix only if the old span is deleted first. One unit at a time (an export window, or one
export file), in this order:

1. index the unit's logs: span id (deterministic, from project and log id) -> log id;
2. read those ids back from the project and keep the spans whose `portkey.log_id` is the
   expected log: only spans this tool wrote for these very logs are ever deleted (never a
   trace, never a time range: other logs and foreign spans stay whatever they share);
3. record the unit as "resync in progress" in the state file (saved) before the first delete;
4. delete them by span id, re-deliver the unit (send -> verify -> annotate, the usual path);
5. verify: every log of the unit stored once with the current mapping version, the
   annotations written, and the project's count outside these logs unchanged;
6. only then clear the record. A crash in between leaves it: the next resync redoes the unit
   (deleting again is harmless), `status` shows it, and `sync` fills the hole.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
import types
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ingest.convert.common import INGEST_MAPPING_VERSION, MAPPING_VERSION
from ingest.convert.ids import span_hex, span_id_for
from ingest.convert.records import unwrap_quarantined
from ingest.errors import IngestError, PhoenixError, RecordError, VerificationError
from ingest.phoenix.admin.deletes import SpanDeleter
from ingest.phoenix.admin.totals import PORTKEY_LOG_ID, PhoenixTotals
from ingest.phoenix.api import PhoenixSettings
from ingest.phoenix.reader import SpanReader
from ingest.run.logs import Progress
from ingest.run.pipeline import FileImporter, RunSetup, RunSummary, started_run
from ingest.run.pull import Puller, PullResult, PullSettings
from ingest.run.state import (
    StateStore,
    begin_resync,
    end_resync,
    make_private_dir,
    pending_resyncs,
    shard_dir,
)
from ingest.sources.files import decode_line, fingerprint, read_lines
from ingest.sources.portkey.enrich import LogEnricher
from ingest.sources.portkey.exports import WindowFile
from ingest.sources.windows import Window, plan_windows, shard_windows, window_key

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

    @property
    def bounds(self) -> tuple[datetime, datetime] | None:
        return (self.earliest, self.latest) if self.earliest and self.latest else None


def index_logs(paths: list[Path], project: str, max_line_bytes: int) -> tuple[
        dict[str, str], datetime | None, datetime | None]:  # fmt: skip
    """First pass over a unit: span id -> log id of every log that parses, and the range of
    their start times. Lines that do not parse are quarantined by the delivery pass."""
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
            logs[span_hex(span_id_for(project, record.log_id))] = record.log_id
            earliest = record.created_at if earliest is None else min(earliest, record.created_at)
            latest = record.created_at if latest is None else max(latest, record.created_at)
    return logs, earliest, latest


class Resyncer:
    """Plans and replaces units; accumulates the counts."""

    def __init__(self, settings: PhoenixSettings, max_line_bytes: int,
                 store: StateStore | None = None, importer: FileImporter | None = None,
                 ) -> None:  # fmt: skip
        self.settings = settings
        self.max_line_bytes = max_line_bytes
        self.store = store  # None: a dry run (changes nothing, not even the state file)
        self.importer = importer
        self.reader = SpanReader(settings)
        self.totals = PhoenixTotals(settings)
        self.deleter = SpanDeleter(settings)
        self.counts = ResyncCounts()
        self.lines: list[str] = []  # per unit, for the dry run's listing

    def plan(self, paths: list[Path]) -> UnitPlan:
        logs, earliest, latest = index_logs(paths, self.settings.project, self.max_line_bytes)
        plan = UnitPlan(logs, earliest, latest, set(), set())
        if logs and plan.bounds:
            for span in self.reader.fetch(list(logs), plan.bounds):
                span_id = span["context"]["span_id"]
                if (span.get("attributes") or {}).get(PORTKEY_LOG_ID) == logs.get(span_id):
                    plan.ours.add(span_id)
                    plan.traces.add(span["context"]["trace_id"])
                else:  # same id, another writer: never deleted, so it could not be replaced
                    raise PhoenixError(
                        f"span {span_id} in project '{self.settings.project}' has the id of "
                        f"Portkey log {logs.get(span_id)} but was not written for it (its "
                        f"{PORTKEY_LOG_ID} is {span.get('attributes', {}).get(PORTKEY_LOG_ID)!r})"
                        ": resync deletes only spans this tool wrote, so it stops here. "
                        "Nothing of this unit was deleted."
                    )
        self._tally(plan)
        return plan

    def _tally(self, plan: UnitPlan) -> None:
        c = self.counts
        c.units += 1
        c.logs += len(plan.logs)
        c.stored_before += len(plan.ours)
        c.traces += len(plan.traces)
        if plan.earliest is not None:
            c.earliest = plan.earliest if c.earliest is None else min(c.earliest, plan.earliest)
        if plan.latest is not None:
            c.latest = plan.latest if c.latest is None else max(c.latest, plan.latest)

    def describe(self, name: str, plan: UnitPlan) -> None:
        span = f"{_iso(plan.earliest)} .. {_iso(plan.latest)}" if plan.bounds else "no logs"
        self.lines.append(
            f"  {name}: {len(plan.logs)} logs ({span}); would delete {len(plan.ours)} spans "
            f"in {len(plan.traces)} traces and re-send {len(plan.logs)}"
        )

    def replace(self, key: str, unit: dict[str, Any], paths: list[Path],
                deliver: Callable[[], None]) -> None:  # fmt: skip
        """Delete the unit's spans that this tool wrote, re-deliver the unit, verify."""
        assert self.store is not None and self.importer is not None
        plan = self.plan(paths)
        other_before = self._count(plan) - len(plan.ours) if plan.bounds else 0
        begin_resync(self.store.doc, key, {**unit, "project": self.settings.project,
                                           "deleting": len(plan.ours)})  # fmt: skip
        self.store.save()
        deleted_before = self.deleter.deleted
        self.deleter.delete(sorted(plan.ours))
        self.counts.deleted += self.deleter.deleted - deleted_before
        summary = self.importer.summary
        delivered, failures = summary.delivered, self._annotation_failures()
        deliver()
        self.counts.resent += self.importer.summary.delivered - delivered
        if plan.bounds:
            self._verify(key, plan, other_before)
        if self._annotation_failures() > failures:
            self.counts.problems.append(f"{key}: some annotations were not written")
            log.warning("%s: annotations missing; the resync stays pending: rerun it", key)
            return
        end_resync(self.store.doc, key)
        self.store.save()

    def _annotation_failures(self) -> int:
        assert self.importer is not None
        stats = self.importer.deliverer.stats.annotation_errors
        annotator = self.importer.deliverer.annotator
        return stats + (annotator.failed if annotator is not None else 0)

    def _count(self, plan: UnitPlan) -> int:
        assert plan.earliest and plan.latest
        if self.totals.project_id() is None:
            return 0  # no such project yet: nothing stored
        window = Window(plan.earliest, plan.latest + timedelta(microseconds=1))
        return self.totals.count(window, "")

    def _verify(self, key: str, plan: UnitPlan, other_before: int) -> None:
        stored = self.reader.fetch(list(plan.logs), plan.bounds)
        current = [
            span for span in stored
            if (span.get("attributes") or {}).get(INGEST_MAPPING_VERSION) == MAPPING_VERSION
        ]  # fmt: skip
        self.counts.verified += len(current)
        missing = len(plan.logs) - len({s["context"]["span_id"] for s in stored})
        if missing or len(current) != len(plan.logs):
            raise VerificationError(
                f"{key}: after the resync {missing} of its {len(plan.logs)} logs are missing "
                f"from project '{self.settings.project}' and "
                f"{len(plan.logs) - missing - len(current)} are stored with another mapping "
                "version. The resync stays recorded as in progress (see `status`); rerun the "
                "same resync to complete it (quarantined lines, if any, were not re-sent: fix "
                "them and resync their file)."
            )
        other_after = self._count(plan) - len(stored)
        self.counts.other_spans_before += other_before
        self.counts.other_spans_after += other_after
        if other_after < other_before:
            raise PhoenixError(
                f"{key}: project '{self.settings.project}' holds {other_before - other_after} "
                "fewer spans outside the resynced logs than before (another writer deleting, "
                "or retention?). The resync stays recorded as in progress; check the project "
                "and rerun it."
            )
        if other_after > other_before:
            log.info("%s: %d spans were added by another writer meanwhile", key,
                     other_after - other_before)  # fmt: skip


# ---- files ------------------------------------------------------------------------------


def file_key(project: str, path: Path) -> str:
    return f"{project}|file|{fingerprint(path)}"


def resync_files(
    files: list[Path], setup: RunSetup, state_dir: Path, dry_run: bool
) -> tuple[RunSummary | None, ResyncCounts, list[str]]:
    """Replace the logs of these export files (and finish resyncs of files left pending)."""
    assert setup.phoenix is not None
    started = time.monotonic()
    store = StateStore(state_dir)
    with store.locked():
        files = _with_pending_files(store, setup.options.project, files)
        if dry_run:
            resyncer = Resyncer(setup.phoenix, setup.options.max_line_bytes)
            for path in files:
                resyncer.describe(str(path), resyncer.plan([path]))
            resyncer.counts.elapsed_s = time.monotonic() - started
            return None, resyncer.counts, resyncer.lines
        resyncer = Resyncer(setup.phoenix, setup.options.max_line_bytes, store)
        with started_run(setup, store, extra=lambda: {"resync": resyncer.counts.to_dict()}
                         ) as importer:  # fmt: skip
            resyncer.importer = importer
            for path in files:
                unit = {"kind": "file", "path": str(path.resolve())}
                resyncer.replace(
                    file_key(setup.options.project, path),
                    unit,
                    [path],
                    lambda p=path: importer.import_file(p, remember=False),
                )
            resyncer.counts.elapsed_s = time.monotonic() - started
        return importer.summary, resyncer.counts, resyncer.lines


def _with_pending_files(store: StateStore, project: str, files: list[Path]) -> list[Path]:
    given = {path.resolve() for path in files}
    out = list(files)
    for entry in pending_resyncs(store.doc, project, "file"):
        path = Path(entry["path"])
        if path.resolve() in given:
            continue
        if not path.is_file():
            raise IngestError(
                f"an earlier resync of {path} into '{project}' was interrupted after deleting "
                f"{entry.get('deleting')} spans, and the file is gone: resync it again from a "
                "copy (or re-export that range and `resync --since/--until` it)."
            )
        log.info("finishing the interrupted resync of %s", path)
        out.append(path)
    return out


# ---- windows ------------------------------------------------------------------------------


class ResyncPuller(Puller):
    """The backfill's puller (windows exported ahead, --concurrency, --max-duration), but each
    window is replaced whole before the next one starts: its spans are deleted, then it is
    re-delivered and verified. No overlap between windows here: a unit's delete must come
    after the previous unit's verification, so a crash leaves at most one unit pending."""

    resyncer: Resyncer

    def run(
        self,
        windows: list[Window],
        is_done: Callable[[Window], bool],
        on_done: Callable[[Window], None],
    ) -> PullResult:
        result = PullResult(windows_planned=len(windows))
        shutil.rmtree(self.downloads, ignore_errors=True)  # leftovers; we hold the lock
        make_private_dir(self.downloads)
        pending: deque[tuple[Window, Future[list[WindowFile]]]] = deque()
        queue = iter(window for window in windows if not is_done(window))
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="export") as pool:
            try:
                for window, files in self._exported(queue, pending, pool):
                    self._replace(window, files)
                    result.export_files += len(files)
                    result.logs_exported += sum(export.total for export in files)
                    on_done(window)
                    result.windows_done += 1
                    result.done.append(window)
                result.stopped_early = result.windows_remaining > 0
            finally:
                self.stopping.set()  # export jobs still polled stop at their next wait
                for _, future in pending:
                    future.cancel()
        return result

    def _replace(self, window: Window, files: list[WindowFile]) -> None:
        paths = [export.path for export in files]
        name = window_key(window)
        try:
            if self.resyncer.store is None:  # dry run
                self.resyncer.describe(name, self.resyncer.plan(paths))
                return
            unit = {"kind": "window", "since": window.since.isoformat(),
                    "until": window.until.isoformat()}  # fmt: skip
            key = f"{self.resyncer.settings.project}|window|{name}"

            def deliver() -> None:
                for path in paths:
                    self.importer.import_file(path, remember=False)

            self.resyncer.replace(key, unit, paths, deliver)
        finally:
            for path in paths:
                path.unlink(missing_ok=True)


def resync_range(
    pull: PullSettings, since: datetime, until: datetime, shard: tuple[int, int] | None,
    dry_run: bool,
) -> tuple[RunSummary | None, PullResult, ResyncCounts, list[str]]:  # fmt: skip
    """Export [since, until) again window by window and replace each window's logs (and
    finish windows whose resync was interrupted)."""
    started = time.monotonic()
    store = StateStore(shard_dir(pull.state_dir, shard))
    with store.locked():
        windows = shard_windows(plan_windows(since, until, pull.window), shard)
        for entry in pending_resyncs(store.doc, pull.options.project, "window"):
            window = Window(datetime.fromisoformat(entry["since"]),
                            datetime.fromisoformat(entry["until"]))  # fmt: skip
            if window not in windows:
                log.info("finishing the interrupted resync of window %s", window_key(window))
                windows.append(window)
        windows.sort(key=lambda w: w.since)
        if dry_run:
            resyncer = Resyncer(pull.phoenix, pull.options.max_line_bytes)
            with tempfile.TemporaryDirectory(dir=store.dir) as tmp:
                puller = ResyncPuller(pull.portkey, types.SimpleNamespace(), Path(tmp),  # type: ignore[arg-type]
                                      pull.concurrency)  # fmt: skip
                puller.resyncer = resyncer
                result = puller.run(windows, lambda _: False, lambda _: None)
            resyncer.counts.elapsed_s = time.monotonic() - started
            return None, result, resyncer.counts, resyncer.lines
        setup = RunSetup("resync", pull.options, pull.phoenix, pull.tuning, pull.quarantine_path,
                         pull.annotate, Progress())  # fmt: skip
        cache = store.dir / "enrich-cache.sqlite3"
        enricher = LogEnricher(pull.portkey, cache) if pull.enrich else None
        resyncer = Resyncer(pull.phoenix, pull.options.max_line_bytes, store)
        result = PullResult(windows_planned=len(windows))
        try:

            def extra() -> dict[str, Any]:
                return {**result.to_dict(), "resync": resyncer.counts.to_dict()}

            with started_run(setup, store, enricher, extra=extra) as importer:
                resyncer.importer = importer
                puller = ResyncPuller(pull.portkey, importer, store.dir / "downloads",
                                      pull.concurrency, pull.max_duration_s)  # fmt: skip
                puller.resyncer = resyncer
                result = puller.run(windows, lambda _: False, lambda _: None)
                resyncer.counts.elapsed_s = time.monotonic() - started
        finally:
            if enricher is not None:
                enricher.close()
        return importer.summary, result, resyncer.counts, resyncer.lines
