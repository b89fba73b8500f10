"""The delivery state machine (send -> verify -> commit) against a fake Phoenix and clock.

No server, no real time: the fake clock advances only when the deliverer sleeps, so each
test runs in milliseconds and every interleaving is chosen by the test.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext

from ingest.convert.ids import span_hex
from ingest.errors import VerificationError
from ingest.run.delivery import Batch, Deliverer, DeliveryStats, Tuning

START_NS = 1_780_000_000 * 10**9


def span(number: int) -> ReadableSpan:
    context = SpanContext(trace_id=number + 1, span_id=number + 1, is_remote=False)
    return ReadableSpan(name=f"s{number}", context=context, start_time=START_NS + number,
                        end_time=START_NS + number + 1)  # fmt: skip


def hex_id(number: int) -> str:
    return span_hex(number + 1)


def batches(sizes: Iterable[int], size_bytes: int = 0) -> list[Batch]:
    out, first = [], 0
    for index, size in enumerate(sizes):
        spans = [span(n) for n in range(first, first + size)]
        out.append(Batch(spans=spans, position=index, size_bytes=size_bytes))
        first += size
    return out


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class FakePhoenix:
    """Sender and reader in one. Sent spans wait in a queue; `store` (a policy called on
    every read) decides which of them are stored by then."""

    def __init__(self, store: Callable[[FakePhoenix], None] | None = None) -> None:
        self.queue: list[str] = []
        self.stored: set[str] = set()
        self.sends: list[list[str]] = []
        self.in_flight_at_send: list[int] = []  # sent but not stored, right after each send
        self.retries = 0
        self.store = store or FakePhoenix.store_all

    # Sender
    def send(self, spans: list[ReadableSpan]) -> int:
        ids = [span_hex(s.context.span_id) for s in spans]
        self.sends.append(ids)
        self.queue.extend(i for i in ids if i not in self.queue)
        self.in_flight_at_send.append(len(set(self.queue) - self.stored))
        return 100 * len(ids)

    # Reader
    def existing(
        self,
        span_ids: Iterable[str],
        window: tuple[datetime, datetime] | None = None,
        project: str | None = None,
    ) -> set[str]:
        ids = list(span_ids)
        self.store(self)
        return {i for i in ids if i in self.stored}

    def store_all(self) -> None:
        self.stored.update(self.queue)
        self.queue.clear()

    def lose_all(self) -> None:
        self.queue.clear()


def deliver(
    phoenix: FakePhoenix,
    work: list[Batch],
    tuning: Tuning | None = None,
    annotator: Any = None,
    precheck: bool = False,
) -> tuple[Deliverer, list[Any]]:
    clock = Clock()
    tuning = tuning or Tuning(grace_s=1.0, max_resends=2, min_poll_s=0.1, max_poll_s=0.1,
                              precheck=precheck)  # fmt: skip
    deliverer = Deliverer(phoenix, phoenix, tuning, clock=clock, sleep=clock.sleep,
                          annotator=annotator)  # fmt: skip
    committed: list[Any] = []
    deliverer.run(work, lambda batch: committed.append(batch.position))
    return deliverer, committed


def test_batches_commit_in_source_order_even_when_stored_out_of_order() -> None:
    def later_first(phoenix: FakePhoenix) -> None:  # stores the newest batch before the oldest
        if phoenix.queue:
            newest = phoenix.sends[-1]
            phoenix.stored.update(newest)
            phoenix.queue = [i for i in phoenix.queue if i not in newest]
            return

    phoenix = FakePhoenix(later_first)
    deliverer, committed = deliver(phoenix, batches([3, 3, 3]))
    assert committed == [0, 1, 2]
    assert deliverer.stats.delivered == 9


def test_a_batch_is_committed_only_once_every_span_is_read_back() -> None:
    seen_at_commit: list[set[str]] = []
    phoenix = FakePhoenix()
    clock = Clock()
    deliverer = Deliverer(phoenix, phoenix, Tuning(precheck=False, max_poll_s=0.1), clock=clock,
                          sleep=clock.sleep)  # fmt: skip
    deliverer.run(batches([4]), lambda batch: seen_at_commit.append(set(phoenix.stored)))
    assert seen_at_commit == [{hex_id(n) for n in range(4)}]


def test_in_flight_budget_in_spans_holds_the_next_batch_back() -> None:
    phoenix = FakePhoenix(lambda p: p.stored.update(p.queue[:2]) or p.queue.__delitem__(slice(2)))
    tuning = Tuning(batch_size=5, max_in_flight=10, precheck=False, min_poll_s=0.1,
                    max_poll_s=0.1)  # fmt: skip
    _, committed = deliver(phoenix, batches([5] * 6), tuning)
    assert committed == list(range(6))
    assert max(phoenix.in_flight_at_send) <= 10, "never more than the budget unverified"
    assert len(phoenix.sends) == 6, "each batch sent once"


def test_in_flight_budget_in_bytes_is_checked_before_sending() -> None:
    phoenix = FakePhoenix(lambda p: p.stored.update(p.queue[:1]) or p.queue.__delitem__(slice(1)))
    tuning = Tuning(max_in_flight=10_000, max_in_flight_bytes=1000, precheck=False,
                    min_poll_s=0.1, max_poll_s=0.1)  # fmt: skip
    _, committed = deliver(phoenix, batches([2] * 5, size_bytes=400), tuning)
    assert committed == list(range(5))
    # 400 bytes a batch, 1000 allowed: at most two batches (4 spans) unverified at any send.
    assert max(phoenix.in_flight_at_send) <= 4


def test_a_batch_larger_than_the_byte_budget_still_goes_alone() -> None:
    phoenix = FakePhoenix()
    tuning = Tuning(max_in_flight_bytes=10, precheck=False, max_poll_s=0.1)
    _, committed = deliver(phoenix, batches([3, 3], size_bytes=500), tuning)
    assert committed == [0, 1]
    assert phoenix.in_flight_at_send == [3, 3], "the second waited for the first"


def test_lost_spans_are_sent_again_after_the_grace_period() -> None:
    losses = [True]

    def lose_once(phoenix: FakePhoenix) -> None:
        if losses and phoenix.queue:
            losses.clear()
            phoenix.lose_all()  # acknowledged, then gone (a Phoenix restart)
        else:
            phoenix.store_all()

    phoenix = FakePhoenix(lose_once)
    deliverer, committed = deliver(phoenix, batches([3]))
    assert committed == [0]
    assert len(phoenix.sends) == 2 and phoenix.sends[0] == phoenix.sends[1]
    assert deliverer.stats.resent == 3
    assert deliverer.stats.delivered == 3


def test_a_stall_gives_up_after_the_resends_without_committing() -> None:
    phoenix = FakePhoenix(FakePhoenix.lose_all)
    committed: list[Any] = []
    clock = Clock()
    tuning = Tuning(batch_size=2, grace_s=1.0, max_resends=2, precheck=False, min_poll_s=0.1,
                    max_poll_s=0.1)  # fmt: skip
    deliverer = Deliverer(phoenix, phoenix, tuning, clock=clock, sleep=clock.sleep)
    with pytest.raises(VerificationError, match="did not store them, even after 2 re-sends"):
        deliverer.run(batches([2, 2]), lambda batch: committed.append(batch.position))
    assert committed == [], "nothing unverified is committed"
    # two batches, two re-sends of the oldest, then its isolation: each span alone
    assert len(phoenix.sends) == 2 + 2 + 2
    assert clock.now < 10, "gave up after about grace x resends, in fake time"


class PoisonPhoenix(FakePhoenix):
    """Acknowledges every request; `poison` spans are never stored. `whole_requests`: a
    request holding one loses all of its spans (an insert that fails for the request)."""

    def __init__(self, poison: set[str], whole_requests: bool = False) -> None:
        super().__init__()
        self.poison, self.whole_requests = poison, whole_requests

    def send(self, spans: list[ReadableSpan]) -> int:
        size = super().send(spans)
        ids = self.sends[-1]
        if not (self.whole_requests and self.poison.intersection(ids)):
            self.stored.update(i for i in ids if i not in self.poison)
        self.queue.clear()
        return size


@pytest.mark.parametrize("whole_requests", [False, True])
def test_spans_phoenix_accepts_and_never_stores_are_isolated_and_the_rest_committed(
    whole_requests: bool,
) -> None:
    poison = {hex_id(2), hex_id(9)}
    phoenix = PoisonPhoenix(poison, whole_requests)
    seen: list[tuple[Any, set[str]]] = []
    clock = Clock()
    tuning = Tuning(batch_size=8, grace_s=1.0, max_resends=2, precheck=False, min_poll_s=0.1,
                    max_poll_s=0.1)  # fmt: skip
    deliverer = Deliverer(phoenix, phoenix, tuning, clock=clock, sleep=clock.sleep)
    extra = [Batch(spans=[span(n) for n in range(12, 16)], position=2)]  # stored meanwhile
    deliverer.run(batches([8, 4]) + extra,
                  lambda batch: seen.append((batch.position, set(batch.poisoned))))  # fmt: skip
    assert seen == [(0, {hex_id(2)}), (1, {hex_id(9)}), (2, set())]
    assert phoenix.stored == {hex_id(n) for n in range(16)} - poison
    assert deliverer.stats.poisoned == 2
    assert deliverer.stats.delivered == 14
    sends = Counter(span_id for request in phoenix.sends for span_id in request)
    assert max(sends.values()) <= 1 + 2 + 4, "re-sent in parts: at most log2(8) + 1 times"
    assert clock.now < 30, "a few grace periods, in fake time"


def test_a_poison_span_overtaken_by_later_ones_costs_one_grace_not_the_resends() -> None:
    poison = {hex_id(3)}
    phoenix = PoisonPhoenix(poison)
    seen: list[tuple[Any, set[str]]] = []
    clock = Clock()
    tuning = Tuning(batch_size=8, precheck=False)  # the defaults: grace 30 s, settle 2 s
    deliverer = Deliverer(phoenix, phoenix, tuning, clock=clock, sleep=clock.sleep)
    deliverer.run(batches([8, 8]), lambda batch: seen.append((batch.position, set(batch.poisoned))))
    assert seen == [(0, poison), (1, set())]
    assert phoenix.stored == {hex_id(n) for n in range(16)} - poison
    # Re-sent in parts as soon as later spans overtook it; judged once a grace has passed
    # since it was first sent (Phoenix may lag that long), not after 5 re-sends of a grace each
    assert deliverer.stats.resent == 1
    assert tuning.grace_s <= clock.now < tuning.grace_s + 5, f"{clock.now:.0f} s"


def test_the_last_span_sent_waits_one_grace_before_it_is_found_to_be_poison() -> None:
    poison = {hex_id(7)}  # nothing is sent after it: no span can overtake it
    phoenix = PoisonPhoenix(poison)
    seen: list[tuple[Any, set[str]]] = []
    clock = Clock()
    tuning = Tuning(batch_size=8, precheck=False)
    deliverer = Deliverer(phoenix, phoenix, tuning, clock=clock, sleep=clock.sleep)
    deliverer.run(batches([8]), lambda batch: seen.append((batch.position, set(batch.poisoned))))
    assert seen == [(0, poison)]
    assert tuning.grace_s <= clock.now < tuning.grace_s + 5, f"{clock.now:.0f} s"


class RestartingPhoenix(FakePhoenix):
    """Loses the first request whole (a restart empties its queue), stores everything after."""

    def send(self, spans: list[ReadableSpan]) -> int:
        size = super().send(spans)
        if len(self.sends) == 1:
            self.queue.clear()
        return size


def test_spans_a_restart_lost_are_sent_again_and_never_taken_for_poison() -> None:
    phoenix = RestartingPhoenix()
    seen: list[tuple[Any, set[str]]] = []
    clock = Clock()
    tuning = Tuning(batch_size=4, max_in_flight=8, precheck=False)
    deliverer = Deliverer(phoenix, phoenix, tuning, clock=clock, sleep=clock.sleep)
    deliverer.run(batches([4, 4, 4]),
                  lambda batch: seen.append((batch.position, set(batch.poisoned))))  # fmt: skip
    assert seen == [(0, set()), (1, set()), (2, set())]
    assert phoenix.stored == {hex_id(n) for n in range(12)}
    assert deliverer.stats.poisoned == 0 and deliverer.stats.resent == 4
    assert clock.now < tuning.grace_s, "the later requests showed the first was lost"


def test_nothing_is_moved_aside_when_phoenix_stores_nothing_at_all() -> None:
    phoenix = PoisonPhoenix({hex_id(n) for n in range(4)})  # an outage of the insert path
    committed: list[Any] = []
    clock = Clock()
    tuning = Tuning(grace_s=1.0, max_resends=2, precheck=False, min_poll_s=0.1, max_poll_s=0.1)
    deliverer = Deliverer(phoenix, phoenix, tuning, clock=clock, sleep=clock.sleep)
    with pytest.raises(VerificationError, match="and stored none of the others sent since") as err:
        deliverer.run(batches([4]), lambda batch: committed.append(batch.position))
    # What to look for in Phoenix's log: the spans by id (the first three), so a lone span
    # Phoenix never stores, with nothing else sent to tell it from an outage, can be found
    assert (
        f"(look for the insert error of span_id={hex_id(0)}; span_id={hex_id(1)}; "
        f"span_id={hex_id(2)} and 1 more)" in str(err.value)
    )
    assert committed == [] and deliverer.stats.poisoned == 0
    assert len(phoenix.sends) > 3, "sent in parts before giving up: a part might be stored"


def test_a_batch_whose_spans_are_all_present_is_committed_without_sending() -> None:
    phoenix = FakePhoenix()
    phoenix.stored = {hex_id(n) for n in range(5)}
    deliverer, committed = deliver(phoenix, batches([5, 2]), precheck=True)
    assert committed == [0, 1]
    assert phoenix.sends == [[hex_id(5), hex_id(6)]], "only what Phoenix lacked was sent"
    assert deliverer.stats.already_present == 5
    assert deliverer.stats.delivered == 2


def test_small_batches_share_one_precheck_and_one_request_but_commit_one_by_one() -> None:
    phoenix = FakePhoenix()
    phoenix.stored = {hex_id(1)}  # held before the run
    reads = []
    existing = phoenix.existing
    phoenix.existing = lambda ids, window=None, project=None: (
        reads.append(len(list(ids))) or existing(ids)
    )
    tuning = Tuning(batch_size=6, min_poll_s=0.1, max_poll_s=0.1)
    deliverer = Deliverer(phoenix, phoenix, tuning, clock=(clock := Clock()), sleep=clock.sleep)
    committed: list[Batch] = []
    deliverer.run(batches([2, 2, 2, 3, 9, 1]), committed.append)
    assert [batch.position for batch in committed] == [0, 1, 2, 3, 4, 5], "in source order"
    assert [len(ids) for ids in phoenix.sends] == [5, 3, 9, 1], (
        "2+2+2 share one request (less what Phoenix held), 3 and 9 would overflow 6: alone"
    )
    assert reads[:2] == [6, 3], "one pre-check per request"
    assert [(b.already_present, b.delivered) for b in committed[:2]] == [(1, 1), (0, 2)], (
        "each batch keeps its own counts"
    )


def test_polls_follow_phoenix_rate_not_the_size_of_the_oldest_batch() -> None:
    clock = Clock()
    stored_at: dict[str, float] = {}

    def sixty_per_second(phoenix: FakePhoenix) -> None:  # interleaved, as Phoenix stores
        due = int(60 * clock.now) - len(phoenix.stored)
        for span_id in phoenix.queue[1::2][:due] + phoenix.queue[::2][: max(0, due - 1)]:
            if len(phoenix.stored) < int(60 * clock.now):
                phoenix.stored.add(span_id)
                stored_at.setdefault(span_id, clock.now)
        phoenix.queue = [i for i in phoenix.queue if i not in phoenix.stored]

    phoenix = FakePhoenix(sixty_per_second)
    reads = 0
    existing = phoenix.existing

    def counting(ids: Iterable[str], window: Any = None, project: Any = None) -> set[str]:
        nonlocal reads
        reads += 1
        return existing(ids)

    phoenix.existing = counting  # type: ignore[method-assign]
    tuning = Tuning(batch_size=500, precheck=False, min_poll_s=0.2, max_poll_s=5.0)
    deliverer = Deliverer(phoenix, phoenix, tuning, clock=clock, sleep=clock.sleep)
    committed_at: list[float] = []
    deliverer.run(batches([25] * 48), lambda batch: committed_at.append(clock.now))
    assert len(committed_at) == 48
    assert reads <= 15, f"{reads} reads of everything in flight for 1,200 spans in 20 s"
    assert committed_at[-1] - max(stored_at.values()) < 1.5, "the end is noticed promptly"


def test_a_source_about_to_wait_sends_what_it_read_and_commits_it() -> None:
    phoenix = FakePhoenix()
    committed: list[Any] = []
    tuning = Tuning(batch_size=100, precheck=False, min_poll_s=0.1, max_poll_s=0.1)
    deliverer = Deliverer(phoenix, phoenix, tuning, clock=(clock := Clock()), sleep=clock.sleep)

    def source() -> Iterator[Batch]:
        first, second = batches([2, 3])
        yield first
        deliverer.drain()  # the next window's export is not ready yet
        assert committed == [0], "the small batch read so far was sent and committed"
        yield second

    deliverer.run(source(), lambda batch: committed.append(batch.position))
    assert committed == [0, 1]


def test_a_failing_source_still_delivers_the_small_batches_read_before_it() -> None:
    phoenix = FakePhoenix()
    committed: list[Any] = []
    deliverer = Deliverer(phoenix, phoenix, Tuning(precheck=False, max_poll_s=0.1),
                          clock=(clock := Clock()), sleep=clock.sleep)  # fmt: skip

    def source() -> Iterator[Batch]:
        yield from batches([2, 3])
        raise OSError("file vanished")

    with pytest.raises(OSError, match="vanished"):
        deliverer.run(source(), lambda batch: committed.append(batch.position))
    assert committed == [0, 1]
    assert phoenix.stored == {hex_id(n) for n in range(5)}


def test_failing_annotations_do_not_hold_spans_back() -> None:
    class BrokenAnnotator:
        def annotate(self, spans: list[ReadableSpan], fresh: Collection[str] = ()) -> None:
            raise RuntimeError("annotations endpoint down")

        def flush(self) -> None:
            raise RuntimeError("still down")

    deliverer, committed = deliver(FakePhoenix(), batches([2, 2]), annotator=BrokenAnnotator())
    assert committed == [0, 1]
    assert deliverer.stats.annotation_errors == 4


def test_annotations_follow_commits_in_order() -> None:
    annotated: list[list[str]] = []

    class Recorder:
        def annotate(self, spans: list[ReadableSpan], fresh: Collection[str] = ()) -> None:
            annotated.append([span_hex(s.context.span_id) for s in spans])

        def flush(self) -> None:
            pass

    deliver(FakePhoenix(), batches([1, 1]), annotator=Recorder())
    assert annotated == [[hex_id(0), hex_id(1)]], "verified by one read: one annotate call"
    annotated.clear()
    deliver(FakePhoenix(), batches([2, 2, 2]), Tuning(batch_size=3, precheck=False,
                                                         max_poll_s=0.1), Recorder())  # fmt: skip
    assert annotated == [[hex_id(n) for n in range(4)], [hex_id(4), hex_id(5)]], (
        "grouped up to a batch's worth of spans, in commit order"
    )


def test_the_annotator_learns_which_spans_this_run_stored() -> None:
    fresh_sets: list[set[str]] = []

    class Recorder:
        def annotate(self, spans: list[ReadableSpan], fresh: Collection[str] = ()) -> None:
            fresh_sets.append(set(fresh))

        def flush(self) -> None:
            pass

    phoenix = FakePhoenix()
    phoenix.stored = {hex_id(0), hex_id(3)}  # held before the run (an earlier, crashed one)
    deliver(phoenix, batches([2, 2]), annotator=Recorder(), precheck=True)
    assert fresh_sets == [{hex_id(1), hex_id(2)}], "absent at the pre-check: stored by this run"
    fresh_sets.clear()
    deliver(FakePhoenix(), batches([2]), annotator=Recorder(), precheck=False)
    assert fresh_sets == [set()], "without a pre-check nothing is known to be fresh"


def test_the_per_line_step_closes_batches_by_encoded_bytes_before_sending(tmp_path: Path) -> None:
    from ingest.convert.spans import ConversionOptions
    from ingest.run.pipeline import RunSetup, started_run
    from tests.logs_factory import write_logs

    write_logs(tmp_path / "export.jsonl", 12)
    seen: list[Batch] = []

    class RecordingSink:
        annotator = None

        def __init__(self) -> None:
            self.stats = DeliveryStats()

        def run(self, work: Iterable[Batch], commit: Callable[[Batch], None]) -> None:
            for batch in work:
                seen.append(batch)
                commit(batch)

    one_span = 2_000  # a generated log encodes to well under this, and over half of it
    tuning = Tuning(batch_size=500, max_batch_bytes=one_span)
    setup = RunSetup("convert", ConversionOptions(project="p"), tuning=tuning, sink=RecordingSink())
    with started_run(setup, store=None) as importer:
        importer.run([tmp_path / "export.jsonl"])
    full = [batch for batch in seen if batch.spans]
    assert sum(len(batch.spans) for batch in full) == 12
    assert all(batch.size_bytes >= len(batch.spans) * 500 for batch in full), "sizes known"
    assert all(batch.size_bytes - one_span < 2_000 for batch in full), "closed at the bound"
    lines = [batch.position.line for batch in full]
    assert len(full) > 1 and lines == sorted(lines), "each batch ends after a whole line"


# ---- one stream over many files: the next file is sent while the previous one's tail is
# ---- still unverified; commits stay in order and only over the verified prefix ------------


def import_two_files(
    tmp_path: Path, phoenix: FakePhoenix, tuning: Tuning
) -> tuple[list[tuple[str, int, bool]], dict[str, Any], list[list[str]]]:
    """`a.jsonl` and `b.jsonl` (10 logs each, batches of 5) through the real per-line step
    and state store, into the fake Phoenix. Returns the commits (file, line, final), the
    state document on disk (whatever ended the run) and each file's span ids."""
    import json

    from ingest.convert.ids import span_id_for
    from ingest.convert.spans import ConversionOptions
    from ingest.run.pipeline import RunSetup, started_run
    from ingest.run.state import StateStore
    from tests.logs_factory import write_logs

    files = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    ids = [
        [span_hex(span_id_for("p", log["id"])) for log in write_logs(path, 10, prefix=path.stem)]
        for path in files
    ]
    clock = Clock()
    deliverer = Deliverer(phoenix, phoenix, tuning, clock=clock, sleep=clock.sleep)
    store = StateStore(tmp_path / "state")
    setup = RunSetup("import", ConversionOptions(project="p"), tuning=tuning, sink=deliverer,
                     quarantine_path=tmp_path / "q.jsonl")  # fmt: skip
    commits: list[tuple[str, int, bool]] = []
    try:
        with store.locked(), started_run(setup, store) as importer:
            commit = importer.commit

            def recording(batch: Batch) -> None:
                commit(batch)
                commits.append((batch.position.file.path.stem, batch.position.line,
                                batch.position.final))  # fmt: skip

            importer.commit = recording  # type: ignore[method-assign]
            importer.run(files)
    except RuntimeError:
        pass
    state = json.loads((tmp_path / "state" / "state.json").read_text())
    return commits, state, ids


def progress_of(state: dict[str, Any], stem: str) -> dict[str, Any] | None:
    found = [e for e in state["files"].values() if e["path"].endswith(f"{stem}.jsonl")]
    return found[0] if found else None


def test_two_files_in_flight_commit_in_order_and_the_second_is_sent_before_the_first_verifies(
    tmp_path: Path,
) -> None:
    from ingest.convert.ids import span_id_for
    from tests.logs_factory import make_log

    a_ids = {span_hex(span_id_for("p", make_log(n, prefix="a")["id"])) for n in range(10)}
    a_unverified_at_send: list[int] = []

    def newest_first(phoenix: FakePhoenix) -> None:  # one batch per read, b before a's tail
        for sent in reversed(phoenix.sends):
            if any(i in phoenix.queue for i in sent):
                phoenix.stored.update(sent)
                phoenix.queue = [i for i in phoenix.queue if i not in sent]
                return

    class Watching(FakePhoenix):
        def send(self, spans: list[ReadableSpan]) -> int:
            a_unverified_at_send.append(len(a_ids - self.stored))
            return super().send(spans)

    phoenix = Watching(newest_first)
    tuning = Tuning(batch_size=5, precheck=False, min_poll_s=0.1, max_poll_s=0.1)
    commits, state, file_ids = import_two_files(tmp_path, phoenix, tuning)
    assert set(file_ids[0]) == a_ids
    assert len(phoenix.sends) == 4 and a_unverified_at_send[2] == 10, (
        "b's first batch went out while none of a was verified: no idle gap between files"
    )
    assert commits == [("a", 5, False), ("a", 10, False), ("a", 10, True),
                       ("b", 5, False), ("b", 10, False), ("b", 10, True)]  # fmt: skip
    assert progress_of(state, "a")["complete"] and progress_of(state, "b")["complete"]
    assert phoenix.stored == set(file_ids[0]) | set(file_ids[1])


def test_a_failure_in_the_second_file_commits_only_the_verified_prefix_of_the_first(
    tmp_path: Path,
) -> None:
    first_batch_of_a: set[str] = set()

    def store_a_head_only(phoenix: FakePhoenix) -> None:  # a's tail stays unverified
        phoenix.stored.update(i for i in phoenix.queue if i in first_batch_of_a)

    class RefusingB(FakePhoenix):
        def send(self, spans: list[ReadableSpan]) -> int:
            if not first_batch_of_a:
                first_batch_of_a.update(span_hex(s.context.span_id) for s in spans)
            if len(self.sends) == 2:  # b's first batch: Phoenix refuses it
                raise RuntimeError("Phoenix answered 500")
            return super().send(spans)

    phoenix = RefusingB(store_a_head_only)
    # Two batches of a fit the budget; b's first batch waits for a read, which verifies
    # a's first batch only, then goes out while a's second batch is still unverified.
    tuning = Tuning(batch_size=5, max_in_flight=10, precheck=False, min_poll_s=0.1,
                    max_poll_s=0.1)  # fmt: skip
    commits, state, _ = import_two_files(tmp_path, phoenix, tuning)
    assert commits == [("a", 5, False)], "a's verified head only; nothing unverified"
    a = progress_of(state, "a")
    assert a is not None and (a["line"], a["complete"], a["delivered"]) == (5, False, 5)
    b = progress_of(state, "b")
    assert b is None or (b["offset"], b["complete"], b["delivered"]) == (0, False, 0)
    assert state["runs"]["import"]["outcome"] == "failed"
