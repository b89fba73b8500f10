"""The two ways a resync walks its units: export files given on the command line, and the
windows of a date range exported from Portkey (the backfill's puller, each window replaced
whole before the next). `run/resync.py` replaces one unit: delete, re-deliver, verify."""

from __future__ import annotations

import logging
import tempfile
import time
import types
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from ingest.errors import IngestError
from ingest.run.pipeline import RunSetup, RunSummary, started_run
from ingest.run.pull import Puller, PullResult, PullSettings
from ingest.run.resync import ResyncCounts, Resyncer
from ingest.run.state import (
    StateStore,
    pending_resyncs,
    shard_dir,
)
from ingest.sources.files import fingerprint
from ingest.sources.portkey.enrich import LogEnricher
from ingest.sources.portkey.exports import WindowFile
from ingest.sources.windows import Window, plan_windows, shard_windows, window_key

log = logging.getLogger(__name__)

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
        files = _with_pending_files(store, setup.options.destination, files)
        if dry_run:
            resyncer = Resyncer(setup.phoenix, setup.options)
            resyncer.saved_dir = store.dir / "resync-annotations"
            for path in files:
                key = file_key(setup.options.destination, path)
                resyncer.describe(str(path), resyncer.plan([path], key))
            resyncer.counts.elapsed_s = time.monotonic() - started
            return None, resyncer.counts, resyncer.lines
        resyncer = Resyncer(setup.phoenix, setup.options, store)
        with started_run(setup, store, extra=lambda: {"resync": resyncer.counts.to_dict()}
                         ) as importer:  # fmt: skip
            resyncer.importer = importer
            for path in files:
                unit = {"kind": "file", "path": str(path.resolve())}
                resyncer.replace(
                    file_key(setup.options.destination, path),
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
        with self.exporting(windows, is_done) as (result, todo, pending, pool):
            for window, files in self._exported(todo, pending, pool):
                self._replace(window, files)
                result.export_files += len(files)
                result.logs_exported += sum(export.total for export in files)
                on_done(window)
                result.windows_done += 1
                result.done.append(window)
        return result

    def _replace(self, window: Window, files: list[WindowFile]) -> None:
        paths = [export.path for export in files]
        name = window_key(window)
        key = f"{self.resyncer.options.destination}|window|{name}"
        try:
            if self.resyncer.store is None:  # dry run
                self.resyncer.describe(name, self.resyncer.plan(paths, key))
                return
            unit = {"kind": "window", "since": window.since.isoformat(),
                    "until": window.until.isoformat()}  # fmt: skip

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
        for entry in pending_resyncs(store.doc, pull.options.destination, "window"):
            window = Window(datetime.fromisoformat(entry["since"]),
                            datetime.fromisoformat(entry["until"]))  # fmt: skip
            if window not in windows:
                log.info("finishing the interrupted resync of window %s", window_key(window))
                windows.append(window)
        windows.sort(key=lambda w: w.since)
        if dry_run:
            resyncer = Resyncer(pull.phoenix, pull.options)
            resyncer.saved_dir = store.dir / "resync-annotations"
            with tempfile.TemporaryDirectory(dir=store.dir) as tmp:
                puller = ResyncPuller(pull.portkey, types.SimpleNamespace(), Path(tmp),  # type: ignore[arg-type]
                                      pull.concurrency)  # fmt: skip
                puller.resyncer = resyncer
                result = puller.run(windows, lambda _: False, lambda _: None)
            resyncer.counts.elapsed_s = time.monotonic() - started
            return None, result, resyncer.counts, resyncer.lines
        setup = RunSetup("resync", pull.options, pull.phoenix, pull.tuning, pull.quarantine_path,
                         pull.annotate, progress=True)  # fmt: skip
        cache = store.dir / "enrich-cache.sqlite3"
        enricher = LogEnricher(pull.portkey, cache) if pull.enrich else None
        resyncer = Resyncer(pull.phoenix, pull.options, store)
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
