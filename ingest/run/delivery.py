"""The one place that orders send -> verify -> commit (docs/design.md, invariant 2).

Batches arrive in source order. For each batch: ask Phoenix which spans it already holds,
send the others, and keep the batch pending until every span has been read back. Small
consecutive batches (small files, quiet windows) share that question and that request, up to
a batch's worth of spans, and stay separate units of verification and commit. Pending
batches are committed strictly in order, so the caller's cursor only ever moves over a
verified prefix. The number of unverified spans in flight is bounded: that is the pacing
that keeps Phoenix's in-memory queue (20,000 by default) from overflowing, while keeping it
busy. Spans Phoenix acknowledged but lost (a restart empties its queue) are sent again when
the oldest batch stops making progress for a grace period.

A batch may hold spans of several projects (`--project-from`): each span's resource names its
project, one OTLP request carries them all (grouped by resource), and every read asks each
project for its own spans. A batch is verified, so committed, only when all of them are.

A span Phoenix keeps accepting and never stores (its insert fails after the 200) would hold
every later commit back, so missing spans are sent again in parts (`_isolate`) and those that
fail while spans sent after them are stored become `Batch.poisoned` (the caller quarantines
them); when Phoenix stored nothing since, it is an outage: nothing is moved aside, the run
fails. docs/design.md ("A span Phoenix never stores") has the evidence and the timing.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from ingest.convert.ids import span_hex
from ingest.convert.spans import project_of, request_order, start_window
from ingest.errors import VerificationError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

log = logging.getLogger(__name__)


class Sender(Protocol):
    retries: int

    def send(self, spans: list[ReadableSpan]) -> int: ...


class Reader(Protocol):
    def existing(
        self,
        span_ids: Iterable[str],
        window: tuple[datetime, datetime] | None = None,
        project: str | None = None,
    ) -> set[str]: ...


class Annotator(Protocol):
    def annotate(self, spans: list[ReadableSpan], fresh: Collection[str] = ()) -> None: ...

    def flush(self) -> None: ...


@dataclass(frozen=True)
class Tuning:
    batch_size: int = 500  # spans per OTLP request
    max_in_flight: int = 4000  # unverified spans; well under Phoenix's 20,000 queue
    max_in_flight_bytes: int = 64 << 20  # and their encoded size: large logs bound memory
    max_batch_bytes: int = 8 << 20  # encoded size of one OTLP request
    grace_s: float = 30.0  # no progress for this long -> re-send what is missing
    max_resends: int = 5  # per batch, before giving up with VerificationError
    settle_s: float = 2.0  # a missing span later ones overtook this long ago was tried
    isolation_parts: int = 8  # parts per level when a re-send is split to find poison spans
    min_poll_s: float = 0.2
    max_poll_s: float = 5.0
    precheck: bool = True  # ask Phoenix first, so re-runs send nothing it already has


@dataclass
class Batch:
    """A run of consecutive source records; `position` is what the caller commits."""

    spans: list[ReadableSpan]
    position: Any
    counts: dict[str, int] = field(default_factory=dict)  # the caller's per-batch tallies
    already_present: int = 0
    delivered: int = 0
    awaiting: dict[str, ReadableSpan] = field(default_factory=dict)
    # Ids the pre-check found absent, so stored by this run: they hold no annotation yet
    fresh: set[str] = field(default_factory=set)
    size_bytes: int = 0  # encoded size of its spans, known before sending
    sent_bytes: int = 0
    # Spans Phoenix acknowledged and never stored (span id -> (span, reason)): not committed
    # as delivered; the caller quarantines them
    poisoned: dict[str, tuple[ReadableSpan, str]] = field(default_factory=dict)
    # the caller's: span id -> (line, offset) it came from, to quarantine a poisoned one
    lines: dict[str, tuple[int, int]] = field(default_factory=dict)
    stored_mark: int = 0  # DeliveryStats.delivered when it was sent
    sent_at: float = 0.0  # clock when it was sent: no span is poison within a grace of it


@dataclass
class DeliveryStats:
    sent: int = 0
    delivered: int = 0  # read back after we sent them
    already_present: int = 0  # found in Phoenix before sending
    resent: int = 0  # sent again after Phoenix lost them
    batches: int = 0
    annotation_errors: int = 0  # spans whose annotations raised (counted, never fatal)
    poisoned: int = 0  # acknowledged, never stored, found by re-sending in parts (Batch.poisoned)


class Deliverer:
    def __init__(
        self,
        sender: Sender,
        reader: Reader,
        tuning: Tuning | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        annotator: Annotator | None = None,
    ) -> None:
        self.sender = sender
        self.reader = reader
        self.annotator = annotator
        self.tuning = tuning or Tuning()
        self.clock = clock
        self.sleep = sleep
        self.stats = DeliveryStats()
        self._rate = 200.0  # spans/s Phoenix stores; refined as we observe it
        # Stall detection for the oldest pending batch (reset when another becomes oldest)
        self._resends_of: Batch | None = None
        self._resends = 0
        self._last_progress = clock()
        self._last_read = float("-inf")
        # Arrival order: each span sent gets the next position; Phoenix stores in that order,
        # so a missing span below the highest stored position was tried (docs/design.md).
        self._position = 0
        self._sent_at: dict[str, int] = {}  # span id -> position of its latest send, until read
        self._stored_upto = 0
        self._overtaken_since: float | None = None
        # In `run`: pending batches, the commit callback, and the group read but not sent
        self._stream: tuple[deque[Batch], Callable[[Batch], None], list[Batch]] | None = None

    def run(self, batches: Iterable[Batch], commit: Callable[[Batch], None]) -> DeliveryStats:
        """Deliver `batches` (one stream, possibly over many files or windows: the next is
        sent while the previous one's tail is still unverified) and commit them in order.

        Consecutive small batches (small files, quiet windows) share one pre-check and one
        OTLP request of up to `batch_size` spans; each stays its own unit of verification
        and commit, so a file's cursor still moves only over its verified prefix."""
        pending: deque[Batch] = deque()
        group: list[Batch] = []  # read, not yet sent
        self._stream = (pending, commit, group)
        try:
            source = iter(batches)
            while True:
                try:
                    batch = next(source, None)
                except Exception:
                    # The source failed (an unreadable file): what was read before it is
                    # still delivered and committed, as if the files had gone one by one.
                    self._send_group(pending, commit, group)
                    self._settle(pending, commit, incoming=None)
                    raise
                if batch is None:
                    break
                if group and not self._fits(group, batch):
                    self._send_group(pending, commit, group)
                group.append(batch)
                if not self._fits(group, _NOTHING):
                    self._send_group(pending, commit, group)
            self._send_group(pending, commit, group)
            self._settle(pending, commit, incoming=None)
        finally:
            self._stream = None
        if self.annotator is not None:
            try:
                self.annotator.flush()
            except Exception as exc:
                log.warning("annotations could not be confirmed (%s)", type(exc).__name__)
        return self.stats

    def drain(self) -> None:
        """Send what was read and verify and commit everything in flight now: for a source
        about to wait (the next window's export job), so the previous window is committed
        meanwhile. Called from inside `run`'s batch source; does nothing outside a run."""
        if self._stream is not None:
            pending, commit, group = self._stream
            self._send_group(pending, commit, group)
            self._settle(pending, commit, incoming=None)

    def _fits(self, group: list[Batch], batch: Batch) -> bool:
        """Is there room for `batch` in the group's request (`_NOTHING`: is it not full)?"""
        spans = sum(len(member.spans) for member in group) + len(batch.spans)
        size = sum(member.size_bytes for member in group) + batch.size_bytes
        most_spans = min(self.tuning.batch_size, self.tuning.max_in_flight)
        most_bytes = min(self.tuning.max_batch_bytes, self.tuning.max_in_flight_bytes)
        if batch is _NOTHING:
            return spans < most_spans and size < most_bytes
        return spans <= most_spans and size <= most_bytes

    def _send_group(
        self, pending: deque[Batch], commit: Callable[[Batch], None], group: list[Batch]
    ) -> None:
        if not group:
            return
        spans = [span for batch in group for span in batch.spans]
        together = Batch(spans, position=None, size_bytes=sum(b.size_bytes for b in group))
        # Make room first: the budget bounds what is in flight once this is sent.
        self._settle(pending, commit, incoming=together)
        self._submit(group)
        pending.extend(group)
        group.clear()
        self._settle(pending, commit, incoming=_NOTHING)

    def _over_budget(self, pending: deque[Batch], incoming: Batch) -> bool:
        """Would sending `incoming` put more than the budget in flight? Never when nothing
        is in flight: a batch bigger than the budget still goes, alone."""
        unverified = [batch for batch in pending if batch.awaiting]
        if not unverified:
            return False
        spans = sum(len(batch.awaiting) for batch in unverified) + len(incoming.spans)
        size = sum(_bytes(batch) for batch in unverified) + _bytes(incoming)
        return spans > self.tuning.max_in_flight or size > self.tuning.max_in_flight_bytes

    def _submit(self, group: list[Batch]) -> None:
        """One pre-check and one request for the group; each batch keeps its own share."""
        self.stats.batches += len(group)
        shares = [{span_hex(span.context.span_id): span for span in batch.spans}
                  for batch in group]  # fmt: skip
        if self.tuning.precheck and any(shares):
            every = {span_id: span for share in shares for span_id, span in share.items()}
            present = self._existing(every)
            for batch, share in zip(group, shares, strict=True):
                found = present.intersection(share)
                batch.already_present = len(found)
                self.stats.already_present += len(found)
                for span_id in found:
                    del share[span_id]
                batch.fresh = set(share)
        to_send = {span_id: span for share in shares for span_id, span in share.items()}
        if to_send:
            sent_bytes = self._send(list(to_send.values()))
            self.stats.sent += len(to_send)
            for batch, share in zip(group, shares, strict=True):  # each its part of the bytes
                batch.sent_bytes = sent_bytes * len(share) // len(to_send)
        for batch, share in zip(group, shares, strict=True):
            batch.awaiting = share
            batch.stored_mark, batch.sent_at = self.stats.delivered, self.clock()

    def _settle(
        self, pending: deque[Batch], commit: Callable[[Batch], None], incoming: Batch | None
    ) -> None:
        """Commit the verified prefix of `pending`; wait for more while sending `incoming`
        would be over budget (`None`, at the end: until everything is verified). Each read
        covers every pending batch, so the in-flight count tracks what Phoenix has not
        stored yet and its queue stays full."""
        while pending:
            self._commit_verified(pending, commit)
            if not pending or (incoming is not None and not self._over_budget(pending, incoming)):
                return
            self._wait_for_progress(pending, incoming)

    def _wait_for_progress(self, pending: deque[Batch], incoming: Batch | None) -> None:
        """One read of what is unverified. The oldest batch's missing spans go to `_isolate`
        once overtaken for `settle_s`, or quiet while Phoenix stores others; else they are
        re-sent whole after each grace, up to `max_resends` (lost, or an outage)."""
        oldest = pending[0]
        if self._resends_of is not oldest:
            self._resends_of, self._resends, self._last_progress = oldest, 0, self.clock()
            self._overtaken_since = None
        self.sleep(self._poll_interval(pending, incoming))
        asked_at = self.clock()
        waiting = [batch for batch in pending if batch.awaiting]
        found = self._existing({i: span for batch in waiting for i, span in batch.awaiting.items()})
        since, self._last_read = max(self._last_read, self._last_progress), asked_at
        if found:
            self._observe_rate(len(found), asked_at - since)
            oldest_before = len(oldest.awaiting)
            for batch in waiting:
                stored = [span_id for span_id in batch.awaiting if span_id in found]
                for span_id in stored:
                    del batch.awaiting[span_id]
                batch.delivered += len(stored)
                self.stats.delivered += len(stored)
            if len(oldest.awaiting) < oldest_before:
                self._last_progress, self._overtaken_since = asked_at, None
                return
        if not oldest.awaiting:
            return
        if self._overtaken(oldest.awaiting):
            self._overtaken_since = self._overtaken_since or asked_at
            if asked_at - self._overtaken_since >= self.tuning.settle_s:
                self._isolate(oldest)
            return
        stalled_s = asked_at - self._last_progress
        stored_since = self.stats.delivered > oldest.stored_mark  # Phoenix is storing
        if stored_since and stalled_s >= self._quiet_s(len(oldest.awaiting)):
            self._isolate(oldest)
            return
        if stalled_s < self.tuning.grace_s:
            return
        if self._resends >= self.tuning.max_resends:
            self._isolate(oldest)
            return
        self._resends += 1
        log.warning(
            "%d spans were acknowledged but not stored after %.0f s; sending them again",
            len(oldest.awaiting),
            asked_at - self._last_progress,
        )
        self._send(list(oldest.awaiting.values()))
        self.stats.resent += len(oldest.awaiting)
        self._last_progress = self.clock()

    def _send(self, spans: list[ReadableSpan]) -> int:
        """One OTLP request; each span's position in Phoenix's arrival order is noted."""
        spans = request_order(spans)
        size = self.sender.send(spans)
        for span in spans:
            self._position += 1
            self._sent_at[span_hex(span.context.span_id)] = self._position
        return size

    def _overtaken(self, span_ids: Collection[str]) -> bool:
        """Were all of these tried by Phoenix: a span sent after each of them is stored?"""
        return all(self._sent_at.get(i, self._stored_upto) < self._stored_upto for i in span_ids)

    def _existing(self, spans: dict[str, ReadableSpan]) -> set[str]:
        """Which of these Phoenix holds: a read per project, bounded by its spans' starts."""
        by_project: dict[str, dict[str, ReadableSpan]] = {}
        for span_id, span in spans.items():
            by_project.setdefault(project_of(span.resource), {})[span_id] = span
        found: set[str] = set()
        for project, share in by_project.items():
            window = start_window(share.values())
            found |= self.reader.existing(share, window, project=project or None)
        for span_id in found:
            self._stored_upto = max(self._stored_upto, self._sent_at.pop(span_id, 0))
        return found

    def _isolate(self, batch: Batch) -> None:
        """Send the missing spans of `batch` again in parts (each its own request, verified):
        one still missing beside a stored sibling and overtaken, or alone, is poison; a part
        lost whole is halved, each level in reverse order so its last part is overtaken next.
        If Phoenix stored nothing since the batch was sent, it is an outage: the run fails."""
        attempts = dict.fromkeys(batch.awaiting, 1 + self._resends)
        parts, poison = _split(dict(batch.awaiting), self.tuning.isolation_parts), {}
        log.warning(
            "%d spans were acknowledged but not stored after %d attempts: sending them in "
            "parts to find which Phoenix never stores", len(batch.awaiting), 1 + self._resends,
        )  # fmt: skip
        while parts:
            for part in parts:
                self._send(list(part.values()))
                self.stats.resent += len(part)
                attempts.update({span_id: attempts[span_id] + 1 for span_id in part})
            sent = {i: s for part in parts for i, s in part.items()}
            stored = self._await_stored(sent, not_before=batch.sent_at + self.tuning.grace_s)
            for span_id in stored:
                del batch.awaiting[span_id]
            batch.delivered += len(stored)
            self.stats.delivered += len(stored)
            following: list[dict[str, ReadableSpan]] = []
            for part in parts:
                missing = {i: s for i, s in part.items() if i not in stored}
                if not missing:
                    continue
                if len(part) == 1 or (len(missing) < len(part) and self._overtaken(missing)):
                    poison.update(missing)
                else:  # lost whole (one failing request?), or nothing overtook them yet
                    following += _split(missing, 2)
            parts = following[::-1]
        if self.stats.delivered == batch.stored_mark:  # Phoenix stored nothing at all
            raise VerificationError(
                f"Phoenix acknowledged {len(batch.awaiting)} spans but did not store them, even "
                f"after {self._resends} re-sends over {self.tuning.grace_s * self._resends:.0f} s,"
                " and stored none of the others sent since. Check the Phoenix server log for "
                f"insert errors ({_naming(batch.awaiting)}): a full disk or a database error, "
                "or spans it never stores with nothing else sent to tell them apart. Nothing "
                "past the last verified record was committed, so rerunning is safe."
            )
        for span_id, span in poison.items():
            batch.poisoned[span_id] = (span, _poison_reason(span_id, span, attempts[span_id]))
            del batch.awaiting[span_id]
            self._sent_at.pop(span_id, None)
        self.stats.poisoned += len(poison)
        self._resends_of = None

    def _await_stored(self, spans: dict[str, ReadableSpan], not_before: float) -> set[str]:
        """Read until all of `spans` are stored or, from `not_before` on (a grace after their
        first send), the rest was overtaken for `settle_s` or nothing was stored for ten times
        what Phoenix takes to store this many (at least 5 x `settle_s`)."""
        found: set[str] = set()
        since, overtaken_at = self.clock(), None
        quiet_s = self._quiet_s(len(spans))
        while len(found) < len(spans):
            now = self.clock()
            settled = overtaken_at is not None and now - overtaken_at >= self.tuning.settle_s
            if now >= not_before and (settled or now - since >= quiet_s):
                break
            self.sleep(min(max(self.tuning.min_poll_s, (now - since) / 4), self.tuning.max_poll_s))
            rest = [span_id for span_id in spans if span_id not in found]
            got = self._existing({i: spans[i] for i in rest})
            if got:
                found |= got
                since = self.clock()
            if self._overtaken([i for i in rest if i not in got]):
                overtaken_at = overtaken_at or self.clock()
        return found

    def _quiet_s(self, spans: int) -> float:
        """No progress this long, while Phoenix stores others, means these are not coming."""
        expected_s = 10 * spans / max(self._rate, 1.0)
        return min(self.tuning.grace_s, max(5 * self.tuning.settle_s, expected_s))

    def _commit_verified(self, pending: deque[Batch], commit: Callable[[Batch], None]) -> None:
        """Commit the verified prefix, in order. Annotations go first, for up to a batch's
        worth of spans at a time: many small batches (small files) verified by one read cost
        Phoenix one annotation read and post, not one each."""
        while pending and not pending[0].awaiting:
            group = [pending.popleft()]
            spans = len(group[0].spans)
            while pending and not pending[0].awaiting and spans < self.tuning.batch_size:
                group.append(pending.popleft())
                spans += len(group[-1].spans)
            self._annotate([span for batch in group for span in _stored(batch)],
                           set().union(*(batch.fresh for batch in group)))  # fmt: skip
            for batch in group:
                commit(batch)

    def _annotate(self, spans: list[ReadableSpan], fresh: set[str]) -> None:
        if self.annotator is None or not spans:
            return
        # Annotations need stored spans; they are verified as later batches go by, and a
        # failure is counted, never holding the spans back.
        try:
            self.annotator.annotate(spans, fresh)
        except Exception as exc:
            log.warning("annotations for %d spans failed (%s); rerun to retry them",
                        len(spans), type(exc).__name__)  # fmt: skip
            self.stats.annotation_errors += len(spans)

    def _poll_interval(self, pending: deque[Batch], incoming: Batch | None) -> float:
        """How long Phoenix should take to store all we wait for (`incoming` None, at the end),
        else enough to make room for `incoming` (not just the oldest batch: small files)."""
        unverified = sum(len(batch.awaiting) for batch in pending)
        if incoming is None:
            wanted = unverified
        else:
            wanted = unverified + len(incoming.spans) - self.tuning.max_in_flight
        expected = max(wanted, 1) / max(self._rate, 1.0)
        return min(max(expected, self.tuning.min_poll_s), self.tuning.max_poll_s)

    def _observe_rate(self, stored: int, seconds: float) -> None:
        if seconds > 0:
            self._rate = 0.7 * self._rate + 0.3 * (stored / seconds)


_NOTHING = Batch(spans=[], position=None)


def _split(spans: dict[str, ReadableSpan], parts: int) -> list[dict[str, ReadableSpan]]:
    """`spans` in up to `parts` consecutive parts of near-equal size."""
    items = list(spans.items())
    size = -(-len(items) // max(1, min(parts, len(items))))  # ceiling division
    return [dict(items[start : start + size]) for start in range(0, len(items), size)]


def _poison_reason(span_id: str, span: ReadableSpan, attempts: int) -> str:
    return (
        f"Phoenix accepted this span but did not store it after {attempts} attempts; its "
        f"server log says why ({_naming({span_id: span})})"
    )


def _naming(spans: dict[str, ReadableSpan], most: int = 3) -> str:
    """What to look for in Phoenix's log (every version names the span_id of an insert that
    failed): 'span_id=…, log id …' of the first `most` spans."""
    names = [f"span_id={span_id}" + (f", log id {log_id}" if log_id is not None else "")
             for span_id, span in list(spans.items())[:most]
             for log_id in [(span.attributes or {}).get("portkey.log_id")]]  # fmt: skip
    more = f" and {len(spans) - most} more" if len(spans) > most else ""
    return "look for the insert error of " + "; ".join(names) + more


def _stored(batch: Batch) -> list[ReadableSpan]:
    """The spans of a verified batch without the poisoned ones (nothing to annotate)."""
    if not batch.poisoned:
        return batch.spans
    return [span for span in batch.spans if span_hex(span.context.span_id) not in batch.poisoned]


def _bytes(batch: Batch) -> int:
    return batch.size_bytes or batch.sent_bytes
