"""Import export files: lines -> records -> spans -> batches, delivered and committed per file.

Reading, parsing, routing, sampling and conversion happen here; send -> verify -> commit is
`delivery.Deliverer`'s, and a commit here records the offset of a file's last verified line,
its counts, and whether the file is complete. A run is one delivery stream over all its files
(file k+1 is sent while file k's tail is verified); the deliverer commits in stream order, so
every file's cursor moves only over its verified prefix. A first pass (`index_parents`)
indexes each file's Portkey span ids, so a child before its parent still gets its link;
committed logs are remembered beside the state (`state.ParentStore`) for later runs.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from ingest.convert.ids import ParentIndex, sampled_in, span_hex, span_id_for
from ingest.convert.records import LogRecord, parse_record, unwrap_quarantined
from ingest.convert.spans import ConversionOptions, make_resource, to_span
from ingest.errors import DamagedFile, IngestError, RecordError, outcome_of
from ingest.phoenix.api import PhoenixSettings, SpanSender
from ingest.phoenix.reader import SpanAnnotator, SpanReader
from ingest.run.delivery import Batch, Deliverer, DeliveryStats, Tuning
from ingest.run.logs import RunSummary, describe_file, event, progress_end, progress_event
from ingest.run.quarantine import Quarantine, default_quarantine_path
from ingest.run.state import (
    ParentStore,
    StateStore,
    advance_file,
    new_file_entry,
    parent_store,
)
from ingest.sources.files import (
    SourceLine,
    chunk_lines,
    decode_line,
    fingerprint,
    line_at,
    prefix_digest,
    read_lines,
    until_damage,
)

log = logging.getLogger(__name__)
MAX_ROUTE_WARNINGS = 20  # routing fallbacks logged one by one; the rest are counted


def _decode(line: SourceLine) -> Any:
    """The line's JSON value, or the RecordError saying why it has none."""
    try:
        return decode_line(line)
    except RecordError as exc:
        return exc


@dataclass
class FileRun:
    """One file in a run's stream: its progress entry and how its commits are reported."""

    path: Path
    progress: dict[str, Any]
    window: tuple[str, float] | None  # (label, fraction of the run done) of a Portkey window
    started: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class FilePosition:
    offset: int
    line: int
    final: bool
    file: FileRun | None = field(default=None, compare=False, repr=False)
    damaged: dict[str, Any] | None = None  # the file could not be read past `offset`
    # (Portkey trace id, span id, log id) of the batch's logs that have a Portkey span id:
    # remembered beside the state when the batch commits.
    parents: tuple[tuple[str, str, str, str], ...] = field(default=(), compare=False,
                                                           repr=False)  # fmt: skip


class Sink(Protocol):
    """Where batches go: `Deliverer` (send -> verify -> commit) or convert's stdout."""

    stats: DeliveryStats
    annotator: Any

    def run(self, batches: Iterable[Batch], commit: Callable[[Batch], None]) -> Any: ...


class Enricher(Protocol):
    """Fills in what an export lacks (`--enrich`: sources/portkey/enrich.py)."""

    def enrich(self, raws: list[dict[str, Any]]) -> None: ...


class FileImporter:
    """The one per-line step (decode -> record -> span -> batch) for every command: files
    go to the sink batch by batch, and each committed batch advances the file's progress."""

    def __init__(
        self,
        sink: Sink,
        store: StateStore | None,
        options: ConversionOptions,
        quarantine: Quarantine,
        tuning: Tuning,
        enricher: Enricher | None = None,
        progress: bool = False,
    ) -> None:
        self.deliverer = sink
        self.store = store  # None: progress is kept for this run only (convert)
        self.options = options
        self.quarantine = quarantine
        self.tuning = tuning
        self.summary = RunSummary(quarantine_path=quarantine.path)
        self.enricher = enricher
        # Span ids of the current file: a log id seen twice is sent once. Kept per file so
        # memory stays flat over a long backfill; across files, the pre-check catches repeats.
        self._seen: set[int] = set()
        # parent rows (project, trace, span, log id) of the batch being filled
        self._rows: list[tuple[str, str, str, str]] = []
        # Parent links (convert/ids.py): indexed per file first, and across runs beside the state
        self.parents = ParentIndex(earlier=parent_store(store.dir if store else None))
        self.progress = progress  # report where the run is (a terminal draws it: cli)
        # The window a puller is delivering, for the progress line (else the file's line).
        self.window: tuple[str, float] | None = None
        self._started = time.monotonic()

    def run(self, files: list[Path]) -> RunSummary:
        """Deliver every file in one stream (no idle gap between files), in order."""
        self.deliverer.run(self._stream(files), self.commit)
        return self.summary

    def _stream(self, files: list[Path]) -> Iterator[Batch]:
        # Progress entries already in this run's stream, by id; held, so that no entry freed
        # meanwhile (a file not remembered) hands its id to the next file's new entry.
        streamed: dict[int, dict[str, Any]] = {}
        for path in files:
            yield from self.file_batches(path, streamed=streamed)

    def finish(self) -> RunSummary:
        """Close the quarantine file and fill in the summary's delivery figures. Delivered
        and already-present counts come from commits, so they never exceed what is saved."""
        self.quarantine.close()
        if self.progress:
            progress_end()
        self.summary.elapsed_s = time.monotonic() - self._started
        self.summary.quarantined = self.quarantine.count
        self.summary.redacted = dict(sorted(self.options.redactor.counts.items()))
        self.summary.quarantine_path = self.quarantine.path if self.quarantine.count else None
        self.summary.retried = getattr(getattr(self.deliverer, "sender", None), "retries", 0)
        self.summary.resent = self.deliverer.stats.resent
        if (annotator := self.deliverer.annotator) is not None:
            self.summary.annotations = annotator.written
            self.summary.annotation_failures = annotator.failed
        self.summary.annotation_failures += self.deliverer.stats.annotation_errors
        return self.summary

    def import_file(self, path: Path, remember: bool = True) -> dict[str, Any]:
        """Deliver one file on its own (resuming after its last verified line); return its
        progress."""
        runs: list[FileRun] = []
        self.deliverer.run(self.file_batches(path, remember, runs.append), self.commit)
        return runs[0].progress if runs else {}

    def file_batches(
        self,
        path: Path,
        remember: bool = True,
        opened: Callable[[FileRun], None] | None = None,
        streamed: dict[int, dict[str, Any]] | None = None,
    ) -> Iterator[Batch]:
        """One file's batches for a stream, resuming after its last verified line; nothing
        when it is complete. Set up lazily, when the stream reaches the file.

        `remember=False` (Portkey's downloads): progress lives for this run only. A window is
        committed whole; a re-run exports it again as a new file (another fingerprint), so a
        saved cursor inside it could never be used, and saving it cost an fsync per batch.
        `streamed` holds the progress entries already in this stream: the same content
        listed twice is imported once (the first may not be committed yet)."""
        self.summary.files += 1
        self._seen.clear()
        self._rows.clear()
        if remember and self.store is not None:
            try:
                digest = fingerprint(path)
            except DamagedFile as exc:  # unreadable, or gone since it was listed
                self.quarantine.add(path, 1, f"{exc} Nothing of this file was imported.", b"",
                                    offset=0)  # fmt: skip
                return
            progress = self.store.file_progress(self.options.destination, digest, path)
            if repaired := self.store.repaired(progress, lambda n: prefix_digest(path, n)):
                log.info("%s: repairs the file that was damaged after line %d; resuming there",
                         path, repaired["damaged"]["line"])  # fmt: skip
        else:
            progress = new_file_entry(self.options.destination, "") | {"path": str(path)}
        run = FileRun(path, progress, self.window)
        if opened is not None:
            opened(run)
        self.summary.widen(progress.get("earliest"), progress.get("latest"))
        if progress["complete"] or (streamed is not None and id(progress) in streamed):
            self.summary.files_already_done += 1
            log.info("%s: already imported into %s, skipped", path, self.options.destination)
            return
        if streamed is not None:
            streamed[id(progress)] = progress
        if progress["offset"]:
            log.info("%s: resuming after line %d", path, progress["line"])
        with contextlib.suppress(DamagedFile):  # the delivery pass records the damage
            index_parents(path, self.parents, self.options.max_line_bytes, self.enricher,
                          unwrap_quarantined, self.project_for)  # fmt: skip
        for batch in self._batches(path, progress["offset"], progress["line"], remember):
            batch.position = replace(batch.position, file=run)
            yield batch

    def commit(self, batch: Batch) -> None:
        """A verified batch: its logs' Portkey span ids go to the parent index beside the state,
        then its file's cursor and counts move past it (saved by the state when the file's
        progress is kept there); the file's final batch marks it complete."""
        position: FilePosition = batch.position
        run = position.file
        assert run is not None
        progress = run.progress
        for span_id, (_, reason) in batch.poisoned.items():
            line, start = batch.lines.get(span_id, (0, 0))
            raw = line_at(run.path, start, line, self.options.max_line_bytes)
            self.quarantine.add(run.path, line, reason, raw)
            batch.counts["quarantined"] = batch.counts.get("quarantined", 0) + 1
        if position.damaged is not None:
            progress["damaged"] = position.damaged
        if isinstance(parents := self.parents.earlier, ParentStore):
            parents.add(list(position.parents))  # before the cursor passes them: never lost
        advance = self.store.commit_file if self.store is not None else advance_file
        advance(
            progress, offset=position.offset, line=position.line, final=position.final,
            delivered=batch.delivered, already_present=batch.already_present,
            counts=batch.counts, starts_ns=(span.start_time or 0 for span in batch.spans),
        )  # fmt: skip
        self.summary.delivered += batch.delivered
        self.summary.already_present += batch.already_present
        if self.progress:
            if run.window is not None:
                where, done = f"{run.window[0]}: line {position.line:,}", run.window[1]
            else:
                where, done = describe_file(run.path, position.line, position.offset)
            progress_event(where, self.summary.delivered, self.summary.already_present, done,
                           time.monotonic() - self._started)  # fmt: skip
        if position.final:
            event(
                "file_done", file=str(run.path), project=self.options.destination,
                lines=progress["line"], delivered=progress["delivered"],
                already_present=progress["already_present"], quarantined=progress["quarantined"],
                duration_s=round(time.monotonic() - run.started, 3),
            )  # fmt: skip

    def _batches(
        self, path: Path, offset: int, line_no: int, tolerate_damage: bool = True
    ) -> Iterator[Batch]:
        """Batches bounded in spans and in encoded bytes, each ending after a whole line.
        A damaged file ends after its last whole line: the rest is quarantined with its
        offset (`tolerate_damage`; Portkey's downloads fail instead, so the window is
        exported again)."""
        batch = Batch(spans=[], position=None, counts=Counter())
        damage: list[DamagedFile] = []
        lines = until_damage(read_lines(path, offset, line_no, self.options.max_line_bytes),
                             damage)  # fmt: skip
        for chunk in chunk_lines(lines, self.tuning.batch_size):
            self.summary.read += len(chunk)
            decoded = [_decode(line) for line in chunk]
            if self.enricher is not None:
                self.enricher.enrich([raw for raw in decoded if isinstance(raw, dict)])
            for line, raw in zip(chunk, decoded, strict=True):
                if isinstance(raw, RecordError):
                    self._reject(line, batch, str(raw))
                else:
                    self._add(line, raw, batch, offset)
                offset, line_no = line.end_offset, line.line_no
                if (len(batch.spans) >= self.tuning.batch_size
                        or batch.size_bytes >= self.tuning.max_batch_bytes):  # fmt: skip
                    batch.position = FilePosition(offset, line_no, False, parents=self._taken())
                    yield batch
                    batch = Batch(spans=[], position=None, counts=Counter())
        if damage:
            if not tolerate_damage:
                raise damage[0]
            batch.position = self._damaged(path, damage[0], batch)
        else:
            batch.position = FilePosition(offset, line_no, True, parents=self._taken())
        yield batch

    def _damaged(self, path: Path, damage: DamagedFile, batch: Batch) -> FilePosition:
        """The end of a damaged file: its unread rest is quarantined with the offset."""
        reason = (f"{damage} The rest of the file, from byte {damage.offset:,} of its data "
                  f"(line {damage.line + 1:,} on), was not imported; a repaired file of the "
                  "same name is read from there.")  # fmt: skip
        self.quarantine.add(path, damage.line + 1, reason, b"", offset=damage.offset)
        batch.counts["quarantined"] += 1
        facts = {"offset": damage.offset, "line": damage.line, "reason": str(damage)[:1000],
                 "prefix_sha256": prefix_digest(path, damage.offset)}  # fmt: skip
        return FilePosition(damage.offset, damage.line, True, damaged=facts,
                            parents=self._taken())  # fmt: skip

    def _taken(self) -> tuple[tuple[str, str, str, str], ...]:
        rows, self._rows = tuple(self._rows), []
        return rows

    def _add(self, line: SourceLine, raw: Any, batch: Batch, start: int = 0) -> None:
        try:
            record = parse_record(unwrap_quarantined(raw))
        except RecordError as exc:
            self._reject(line, batch, str(exc))
            return
        if not sampled_in(record, self.options.sample):
            batch.counts["sampled_out"] += 1  # done as it is: the cursor moves past it
            self.summary.sampled_out += 1
            return
        project = self.project_for(record, batch)
        span_id = span_id_for(project, record.log_id)
        if span_id in self._seen:
            batch.counts["duplicates"] += 1
            self.summary.duplicates += 1
            return
        self.parents.remember(record, project)
        try:
            span = to_span(record, self.options, make_resource(project),
                           self.parents.parent_of(record, project))  # fmt: skip
        except Exception as exc:  # a converter bug must not stop the run: keep the record
            log.exception("conversion failed for log %s", record.log_id)
            self._reject(line, batch, f"conversion failed: {type(exc).__name__}: {exc}")
            return
        # The OTLP encoder (protobuf) loads with the first record, not with the CLI.
        from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

        try:  # alone, so a span OTLP cannot carry never fails the batch it would be in
            size = len(encode_spans([span]).SerializeToString())
        except Exception as exc:
            self._reject(line, batch, f"the OTLP encoder refused the span: {type(exc).__name__}: "
                                      f"{exc}")  # fmt: skip
            return
        self._seen.add(span_id)
        self.summary.projects[project] += 1
        if record.span_id:
            self._rows.append((project, record.trace_id or "", record.span_id, record.log_id))
        self.summary.saw(record)
        batch.lines[span_hex(span_id)] = (line.line_no, start)
        batch.spans.append(span)
        batch.size_bytes += size

    def project_for(self, record: LogRecord, batch: Batch | None = None) -> str:
        """The record's project; a fallback is counted, the first ones logged (`batch`)."""
        where = self.options.route(record)
        if where.fallback and batch is not None:
            batch.counts["route_fallbacks"] += 1
            self.summary.route_fallbacks += 1
            if self.summary.route_fallbacks <= MAX_ROUTE_WARNINGS:
                log.warning("log %r goes to project %r: %s (no project name; the first %d are "
                            "logged)", record.log_id, where.project, where.fallback,
                            MAX_ROUTE_WARNINGS)  # fmt: skip
        return where.project

    def _reject(self, line: SourceLine, batch: Batch, reason: str) -> None:
        self.quarantine.add(line.path, line.line_no, reason, line.data)
        batch.counts["quarantined"] += 1


@dataclass
class RunSetup:
    """What every command's run is made of; a `sink` replaces Phoenix (convert's stdout)."""

    kind: str  # import, sync, backfill, check, demo, convert: the key of its state record
    options: ConversionOptions
    phoenix: PhoenixSettings | None = None
    tuning: Tuning = field(default_factory=Tuning)
    quarantine_path: Path | None = None
    annotate: bool = True
    progress: bool = False  # report where the run is: a terminal draws it (cli)
    sink: Sink | None = None


@contextlib.contextmanager
def started_run(
    setup: RunSetup,
    store: StateStore | None,
    enricher: Enricher | None = None,
    extra: Callable[[], dict[str, Any]] = dict,
) -> Iterator[FileImporter]:
    """The one set-up: quarantine, sink (sender, reader, annotator) and the per-line step;
    on the way out, the run's outcome and counts go to the state file (held locked by the
    caller), whatever ended it."""
    path = setup.quarantine_path
    if store is not None and path is None:
        path = default_quarantine_path(store.dir)
    quarantine = Quarantine(path, setup.options.redactor, setup.options.quarantine_raw)
    if setup.sink is not None:
        sink = setup.sink
    else:
        assert setup.phoenix is not None
        sink = make_deliverer(setup.phoenix, setup.tuning, setup.annotate)
    importer = FileImporter(sink, store, setup.options, quarantine, setup.tuning, enricher,
                            setup.progress)  # fmt: skip
    error: BaseException | None = None
    try:
        yield importer
    except BaseException as exc:
        error = exc
        raise
    finally:
        summary = importer.finish()
        if store is not None:
            outcome, code = outcome_of(error, summary.quarantined)
            fields = {"project": setup.options.project, **summary.to_dict(), **extra()}
            rules = setup.options.redactor  # the state file is an output like the others
            if setup.phoenix is not None:
                fields["endpoint"] = rules.scrub(setup.phoenix.base_url, where="state")
            if error is not None and not isinstance(error, KeyboardInterrupt):
                fields["error"] = rules.scrub(str(error), where="state") if isinstance(
                    error, IngestError) else type(error).__name__  # fmt: skip
            store.record_run(setup.kind, outcome, code, fields)


def import_files(
    files: list[Path],
    settings: PhoenixSettings,
    options: ConversionOptions,
    state_dir: Path,
    tuning: Tuning | None = None,
    quarantine_path: Path | None = None,
    annotate: bool = True,
    progress: bool = True,
    kind: str = "import",
) -> RunSummary:
    """Import `files` into Phoenix under the state lock; the entry point of `import`."""
    setup = RunSetup(kind, options, settings, tuning or Tuning(), quarantine_path, annotate,
                     progress)  # fmt: skip
    store = StateStore(state_dir)
    with store.locked(), started_run(setup, store) as importer:
        return importer.run(files)


def make_deliverer(settings: PhoenixSettings, tuning: Tuning, annotate: bool) -> Deliverer:
    reader = SpanReader(settings)
    annotator = SpanAnnotator(reader) if annotate else None
    return Deliverer(SpanSender(settings), reader, tuning, annotator=annotator)


def index_parents(
    path: Path,
    parents: ParentIndex,
    max_line_bytes: int,
    enricher: Enricher | None = None,
    prepare: Callable[[Any], Any] = lambda raw: raw,
    project_of: Callable[[LogRecord], str] = lambda record: "",
    batch: int = 500,
) -> None:
    """Remember (in memory) every log of `path` with a Portkey span id, in its project
    (`project_of`); bad lines are left to the delivery pass; enrichment is cached."""
    for chunk in chunk_lines(read_lines(path, max_line_bytes=max_line_bytes), batch):
        raws = []
        for line in chunk:
            if enricher is None and b"span_id" not in line.data:
                continue  # no Portkey span id: nothing to index (most exports), no parse
            try:
                raws.append(decode_line(line))
            except RecordError:
                continue
        if enricher is not None:
            enricher.enrich([raw for raw in raws if isinstance(raw, dict)])
        for raw in raws:
            try:
                record = parse_record(prepare(raw))
            except RecordError:
                continue
            if record.span_id:
                parents.remember(record, project_of(record))
