"""Pull logs from Portkey's export API into Phoenix: `sync` (cron) and `backfill` (a range).

A range is cut into fixed windows (one day by default). Export jobs for the next windows run
in worker threads while the current window's file is delivered, so Portkey's job latency
overlaps Phoenix's ingest, and the windows form one delivery stream, so the next window is
sent while the previous one's tail is verified. Windows are committed strictly in order: a
window counts as done only when every span of its export files was read back from Phoenix,
and only then does the sync watermark (or the backfill's progress) move past it.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ingest.convert.spans import ConversionOptions
from ingest.errors import FutureWatermarkError, RunStopped
from ingest.phoenix.api import PhoenixSettings
from ingest.run.delivery import Batch, Tuning
from ingest.run.logs import event
from ingest.run.pipeline import FileImporter, FileRun, RunSetup, RunSummary, started_run
from ingest.run.state import (
    StateStore,
    backfill_entry,
    make_private_dir,
    parse_watermark,
    resync_holes,
    shard_dir,
    sync_entry,
)
from ingest.sources.portkey.api import PortkeyApi, PortkeySettings
from ingest.sources.portkey.enrich import LogEnricher
from ingest.sources.portkey.exports import ExportJobs, WindowFile
from ingest.sources.windows import Window, plan_windows, shard_windows, window_key

log = logging.getLogger(__name__)

# Export jobs started ahead, oldest window first
Pending = deque[tuple[Window, Future[list[WindowFile]]]]


@dataclass
class PullResult:
    windows_planned: int = 0
    windows_done: int = 0
    windows_skipped: int = 0  # already done in an earlier run
    export_files: int = 0
    logs_exported: int = 0
    stopped_early: bool = False  # --max-duration reached; the next run continues
    done: list[Window] = field(default_factory=list)

    @property
    def windows_remaining(self) -> int:
        return self.windows_planned - self.windows_done - self.windows_skipped

    def to_dict(self) -> dict[str, Any]:
        return {
            "windows_planned": self.windows_planned,
            "windows_done": self.windows_done,
            "windows_skipped": self.windows_skipped,
            "windows_remaining": self.windows_remaining,
            "export_files": self.export_files,
            "logs_exported": self.logs_exported,
            "stopped_early": self.stopped_early,
        }


class Puller:
    """Fetches windows from Portkey (ahead, in threads) and delivers them in order."""

    def __init__(
        self,
        portkey: PortkeySettings,
        importer: FileImporter,
        downloads: Path,
        concurrency: int = 2,
        max_duration_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.portkey = portkey
        self.importer = importer
        self.downloads = downloads
        self.concurrency = max(1, concurrency)
        self.clock = clock
        self.deadline = None if max_duration_s is None else clock() + max_duration_s
        self._local = threading.local()
        # Set when the run ends early (a delivery error, Ctrl-C): export jobs still being
        # polled stop at their next wait instead of holding the lock until they finish.
        self.stopping = threading.Event()

    def run(
        self,
        windows: list[Window],
        is_done: Callable[[Window], bool],
        on_done: Callable[[Window], None],
    ) -> PullResult:
        """Deliver every window not yet done, in order; `on_done` commits each one.

        One delivery stream over all windows: window k+1's files are read and sent while
        window k's tail is still being verified. Each window ends with an empty marker batch
        whose commit (after every earlier batch is verified and committed) calls `on_done`."""
        with self.exporting(windows, is_done) as (result, todo, pending, pool):

            def commit(batch: Batch) -> None:
                if isinstance(batch.position, WindowDone):
                    self._window_done(batch.position, result, on_done)
                else:
                    self.importer.commit(batch)

            stream = self._stream(todo, pending, pool, len(windows), result)
            self.importer.deliverer.run(stream, commit)
        return result

    @contextlib.contextmanager
    def exporting(
        self, windows: list[Window], is_done: Callable[[Window], bool]
    ) -> Iterator[tuple[PullResult, Iterator[Window], Pending, ThreadPoolExecutor]]:
        """A run's frame (this puller's and resync's): its result, the windows not yet done,
        and the pool in which their export jobs run ahead (`_exported`). Leftover downloads
        are removed first (we hold the lock); at the end, export jobs still polled stop at
        their next wait instead of holding the lock until they finish."""
        result = PullResult(windows_planned=len(windows))
        todo = [window for window in windows if not is_done(window)]
        result.windows_skipped = len(windows) - len(todo)
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self.downloads)
        make_private_dir(self.downloads)
        pending: Pending = deque()
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="export") as pool:
            try:
                yield result, iter(todo), pending, pool
                result.stopped_early = result.windows_remaining > 0
            finally:
                self.stopping.set()
                for _, future in pending:
                    future.cancel()

    def _stream(
        self,
        queue: Iterator[Window],
        pending: Pending,
        pool: ThreadPoolExecutor,
        total: int,
        result: PullResult,
    ) -> Iterator[Batch]:
        """Batches of every window's export files, in order, each window closed by its
        marker; export jobs for the next windows run ahead in the pool."""
        number = result.windows_skipped
        # Commit what is in flight while the next export job runs.
        drain = getattr(self.importer.deliverer, "drain", None)
        for window, files in self._exported(queue, pending, pool, before_wait=drain):
            number += 1
            self.importer.window = (f"window {number}/{total} {window_key(window)}",
                                    (number - 1) / total)  # fmt: skip
            done = WindowDone(window, files, self.clock())
            for export in files:
                yield from self.importer.file_batches(export.path, False, done.runs.append)
            yield Batch(spans=[], position=done)

    def _exported(
        self,
        queue: Iterator[Window],
        pending: Pending,
        pool: ThreadPoolExecutor,
        before_wait: Callable[[], None] | None = None,
    ) -> Iterator[tuple[Window, list[WindowFile]]]:
        """Each window in order with its export files; the export jobs of the next windows
        run ahead in the pool (--concurrency, until --max-duration). `before_wait` runs when
        the next window's job is not finished yet."""
        while True:
            while len(pending) < self.concurrency and not self._out_of_time():
                window = next(queue, None)
                if window is None:
                    break
                pending.append((window, pool.submit(self._fetch, window)))
            if not pending:
                return
            window, future = pending[0]
            if not future.done() and before_wait is not None:
                before_wait()
            files = future.result()
            pending.popleft()
            yield window, files

    def _window_done(
        self, done: WindowDone, result: PullResult, on_done: Callable[[Window], None]
    ) -> None:
        """Every batch of the window is verified and committed: move past it."""
        for export in done.files:
            export.path.unlink(missing_ok=True)
        result.export_files += len(done.files)
        result.logs_exported += sum(export.total for export in done.files)
        event(
            "window_done", window=window_key(done.window),
            logs=sum(f.total for f in done.files), export_files=len(done.files),
            delivered=sum(run.progress["delivered"] for run in done.runs),
            duration_s=round(self.clock() - done.started, 3),
        )  # fmt: skip
        on_done(done.window)
        result.windows_done += 1
        result.done.append(done.window)

    def _out_of_time(self) -> bool:
        return self.deadline is not None and self.clock() >= self.deadline

    def _fetch(self, window: Window) -> list[WindowFile]:
        """Run in a worker thread, with that thread's own client (sessions and drafts are
        not shared between threads; a thread reuses its spare drafts)."""
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = ExportJobs(PortkeyApi(self.portkey, sleep=self._wait))
        target = self.downloads / window_key(window).replace(":", "").replace("/", "_")
        make_private_dir(target)
        return list(client.windows(window, target))

    def _wait(self, seconds: float) -> None:
        """The Portkey client's sleep (polls, retries): cut short when the run stops."""
        if self.stopping.wait(seconds):
            raise RunStopped("the run is stopping: export job no longer polled")


@dataclass
class WindowDone:
    """The position of a window's marker batch: committing it commits the window."""

    window: Window
    files: list[WindowFile]
    started: float
    runs: list[FileRun] = field(default_factory=list)


DEFAULT_FIRST_SYNC = timedelta(hours=24)


def sync_key(project: str, portkey: PortkeySettings) -> str:
    return f"{project}|{portkey.base_url}|{portkey.workspace or '-'}"


@dataclass(frozen=True)
class PullSettings:
    phoenix: PhoenixSettings
    options: ConversionOptions
    portkey: PortkeySettings
    state_dir: Path
    tuning: Tuning = field(default_factory=Tuning)
    window: timedelta = timedelta(days=1)
    concurrency: int = 2
    max_duration_s: float | None = None
    enrich: bool = False
    annotate: bool = True
    quarantine_path: Path | None = None


def sync_start(
    entry: dict[str, Any],
    since: datetime | None,
    overlap: Any,
    end: datetime,
    first_sync: Any,
    accept_future: bool = False,
) -> datetime:
    """Where a sync starts: --since, else the watermark minus the overlap, else a first-run
    default before `end`. A watermark past `end` (a clock that was wrong) would skip every
    log before it, so it is refused unless accepted explicitly."""
    if since is not None:
        return since
    watermark = parse_watermark(entry.get("watermark"))
    if watermark is None:
        return end - first_sync
    if watermark > end and not accept_future:
        raise FutureWatermarkError(
            f"the sync watermark {entry['watermark']} is in the future (sync reads up to "
            f"{end.isoformat()}): the clock of the run that wrote it was probably wrong, and "
            "logs before it would never be exported. Rerun with --since to choose the start, "
            "or with --accept-future-watermark to keep it."
        )
    return watermark - overlap


def sync(
    pull: PullSettings,
    since: datetime | None,
    overlap: timedelta,
    lag: timedelta,
    now: datetime | None = None,
    accept_future_watermark: bool = False,
    before_delivery: Callable[[datetime, datetime], None] | None = None,  # prices (issue 11)
) -> tuple[RunSummary, PullResult, dict[str, Any]]:
    """The cron job: from the watermark (minus overlap) to now (minus lag)."""
    store = StateStore(pull.state_dir)
    with store.locked():
        entry = sync_entry(store.doc, sync_key(pull.options.destination, pull.portkey),
                           pull.options.destination)  # fmt: skip
        end = (now or datetime.now(UTC)).replace(microsecond=0) - lag
        try:
            start = sync_start(entry, since, overlap, end, DEFAULT_FIRST_SYNC,
                               accept_future_watermark)  # fmt: skip
        except FutureWatermarkError as exc:
            raise FutureWatermarkError(f"{store.path}: {exc}") from None
        left = resync_holes(store.doc, pull.options.destination)  # issue 16: a resync's holes
        windows = plan_windows(start, end, pull.window)
        holes = [Window(*h) for h in left]
        windows = [h for h in holes if h not in windows] + windows

        def on_done(window: Window) -> None:
            store.commit_sync_window(entry, window.until)

        if before_delivery is not None and start < end:  # e.g. --apply-prices (issue 11)
            before_delivery(start, end)
        summary, result = _pull(store, "sync", pull, windows, lambda _: False, on_done)
    info = {"since": start.isoformat(), "until": end.isoformat(), "watermark": entry["watermark"]}
    return summary, result, info


def backfill(
    pull: PullSettings,
    since: datetime,
    until: datetime,
    advance_sync: bool = False,
    shard: tuple[int, int] | None = None,
) -> tuple[RunSummary, PullResult, dict[str, Any]]:
    """An explicit range, resumable by rerunning the same command (per-window progress).

    A shard keeps its own state file and lock (STATE_DIR/shards/I-of-N), so N shards can run
    at once on one state directory and together cover the range exactly once.
    """
    store = StateStore(shard_dir(pull.state_dir, shard))
    with store.locked():
        window_s = int(pull.window.total_seconds())
        key = "|".join([sync_key(pull.options.destination, pull.portkey), since.isoformat(),
                        until.isoformat(), str(window_s)])  # fmt: skip
        entry = backfill_entry(store.doc, key, pull.options.destination, since, until, window_s)

        def on_done(window: Window) -> None:
            store.commit_backfill_window(entry, window_key(window))

        windows = shard_windows(plan_windows(since, until, pull.window), shard)
        done_before = set(entry["done"])
        summary, result = _pull(
            store, "backfill", pull, windows, lambda w: window_key(w) in done_before, on_done
        )
        then = (sync_key(pull.options.destination, pull.portkey), pull.options.destination,
                until) if advance_sync else None  # fmt: skip
        synced = store.end_backfill(entry, (window_key(w) for w in windows), then)
        info: dict[str, Any] = {"since": since.isoformat(), "until": until.isoformat()}
        if shard:
            info["shard"] = f"{shard[0]}/{shard[1]}"
        if synced is not None:
            info["watermark"] = synced["watermark"]
    return summary, result, info


def _pull(
    store: StateStore,
    kind: str,
    pull: PullSettings,
    windows: list[Window],
    is_done: Callable[[Window], bool],
    on_done: Callable[[Window], None],
) -> tuple[RunSummary, PullResult]:
    setup = RunSetup(kind, pull.options, pull.phoenix, pull.tuning, pull.quarantine_path,
                     pull.annotate, progress=True)  # fmt: skip
    enricher = (
        LogEnricher(pull.portkey, store.dir / "enrich-cache.sqlite3") if pull.enrich else None
    )
    result = PullResult(windows_planned=len(windows))
    try:
        with started_run(setup, store, enricher, extra=lambda: result.to_dict()) as importer:
            puller = Puller(pull.portkey, importer, store.dir / "downloads", pull.concurrency,
                            pull.max_duration_s)  # fmt: skip
            result = puller.run(windows, is_done, on_done)
    finally:
        if enricher is not None:
            enricher.close()
    return importer.summary, result


def dry_run(
    pull: PullSettings, since: datetime, until: datetime, shard: tuple[int, int] | None = None
) -> list[dict[str, Any]]:
    """The plan, starting no job: each window, how many export jobs Portkey's limit splits it
    into, and its logs."""
    client = ExportJobs(PortkeyApi(pull.portkey))
    rows = []
    for window in shard_windows(plan_windows(since, until, pull.window), shard):
        parts = client.plan(window)
        rows.append({"window": window_key(window), "jobs": len(parts),
                     "logs": sum(total for _, _, total in parts)})  # fmt: skip
    return rows
