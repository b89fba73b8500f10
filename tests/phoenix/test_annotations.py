"""Gateway annotations: billed cost, cache, routing and outcome, upserted and verified."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from ingest.convert.ids import span_hex
from ingest.convert.records import parse_record
from ingest.convert.spans import ConversionOptions, make_resource, to_span
from ingest.phoenix.admin.local_server import LocalPhoenix
from ingest.phoenix.api import import_phoenix_client
from ingest.phoenix.reader import (
    ANNOTATOR,
    BILLED_COST,
    CACHE,
    OUTCOME,
    ROUTING,
    SpanAnnotator,
    annotations_for,
    outcome_label,
)
from tests.conftest import run_cli
from tests.logs_factory import make_log, write_jsonl


def convert(raw: dict) -> object:
    return to_span(parse_record(raw), ConversionOptions(project="p"), make_resource("p"))


def by_name(annotations: list[dict]) -> dict[str, dict]:
    return {item["name"]: item["result"] for item in annotations}


@pytest.mark.parametrize(
    ("status", "success", "label"),
    [(200, True, "success"), (429, False, "rate_limited"), (401, False, "auth_error"),
     (403, False, "auth_error"), (400, False, "client_error"), (504, False, "timeout"),
     (500, False, "provider_error"), (None, True, "success"), (None, False, "error"),
     (None, None, "unknown")],
)  # fmt: skip
def test_outcome_labels(status: int | None, success: bool | None, label: str) -> None:
    assert outcome_label(status, success) == label


def test_annotations_of_one_log_follow_its_gateway_facts() -> None:
    raw = make_log(1) | {"cost": 2.5, "mode": "fallback", "config": "pc-prod",
                         "cache_status": "SEMANTIC HIT", "last_used_option_index": 1,
                         "retry_success_count": 2}  # fmt: skip
    found = by_name(annotations_for(convert(raw)))
    assert found[BILLED_COST]["score"] == pytest.approx(0.025)
    assert found[BILLED_COST]["explanation"] == "Portkey billed 2.5 cents (USD)"
    assert found[CACHE]["label"] == "semantic hit"
    assert found[ROUTING]["label"] == "fallback"
    assert found[ROUTING]["explanation"] == (
        "config pc-prod, served by target 1, 2 retries, provider openai"
    )
    assert found[OUTCOME] == {"label": "success", "score": None, "explanation": "HTTP 200"}


def test_unknown_facts_make_no_annotation() -> None:
    raw = make_log(2) | {"cost": None, "mode": None, "response_status_code": None,
                         "is_success": None}  # fmt: skip
    assert annotations_for(convert(raw)) == []


def stored_annotations(url: str, project: str) -> list[dict]:
    client = import_phoenix_client()(base_url=url)
    spans = client.spans.get_spans(project_identifier=project, limit=1000)
    return list(
        client.spans.get_span_annotations(
            span_ids=[span["context"]["span_id"] for span in spans],
            project_identifier=project,
            limit=10_000,
        )
    )


def test_annotations_are_stored_not_duplicated_and_corrected_by_reruns(
    any_phoenix: LocalPhoenix, project: str, tmp_path: Path
) -> None:
    phoenix = any_phoenix  # the newest and the oldest supported Phoenix
    logs = [make_log(i) for i in range(4)]
    logs[0] |= {"response_status_code": 429, "is_success": False}
    write_jsonl(tmp_path / "export.jsonl", logs)
    args = ("import", str(tmp_path / "export.jsonl"), "--endpoint", phoenix.url,
            "--project", project, "--json")  # fmt: skip
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["annotations"] == 12  # cost, routing, outcome for 4 logs
    first = stored_annotations(phoenix.url, project)
    assert len(first) == 12
    outcomes = sorted(a["result"]["label"] for a in first if a["name"] == OUTCOME)
    assert outcomes == ["rate_limited", "success", "success", "success"]

    # The same logs again, now with the cache status an enriched export carries and a
    # corrected cost: the spans stay (write-once), the annotations are upserted.
    for log in logs:
        log |= {"cache_status": "HIT", "cost": 1.0}
    write_jsonl(tmp_path / "export.jsonl", logs)
    result = run_cli(*args, "--state-dir", str(tmp_path / "fresh-state"))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["delivered"], summary["already_present"], summary["annotations"]) == (0, 4, 16)
    second = stored_annotations(phoenix.url, project)
    assert len(second) == 16, "one annotation per (span, name): upserted, not duplicated"
    assert {a["result"]["label"] for a in second if a["name"] == CACHE} == {"hit"}
    assert {a["result"]["score"] for a in second if a["name"] == BILLED_COST} == {0.01}
    # Only what changed was written again: routing and outcome kept their stored rows.
    before = {(a["span_id"], a["name"]): a["updated_at"] for a in first}
    rewritten = {
        a["name"] for a in second if before.get((a["span_id"], a["name"])) != a["updated_at"]
    }
    assert rewritten == {BILLED_COST, CACHE}


def test_no_annotations_flag(phoenix: LocalPhoenix, project: str, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "export.jsonl", [make_log(i) for i in range(3)])
    result = run_cli("import", str(tmp_path / "export.jsonl"), "--endpoint", phoenix.url,
                     "--project", project, "--no-annotations")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert stored_annotations(phoenix.url, project) == []


class FakePhoenixSpans:
    """Phoenix's annotation store as the annotator sees it: upserts by (span, name), reads
    by span ids; asynchronous posts land only when `land()` is called (Phoenix's queue)."""

    def __init__(self) -> None:
        self.stored: dict[tuple[str, str], dict] = {}
        self.queued: list[dict] = []
        self.posts: list[tuple[int, bool]] = []  # (annotations, sync) per request
        self.reads = 0

    def log_span_annotations(self, span_annotations: list[dict], sync: bool) -> None:
        self.posts.append((len(span_annotations), sync))
        self.queued.extend(span_annotations)
        if sync:
            self.land()

    def land(self) -> None:
        for item in self.queued:
            self.stored[(item["span_id"], item["name"])] = item | {"identifier": ANNOTATOR}
        self.queued.clear()

    def get_span_annotations(self, span_ids: list[str], **_: object) -> list[dict]:
        self.reads += 1
        return [item for (span_id, _), item in self.stored.items() if span_id in span_ids]


def fake_annotator(verify_after: int = 20_000) -> tuple[SpanAnnotator, FakePhoenixSpans]:
    spans = FakePhoenixSpans()
    reader = SimpleNamespace(
        client=SimpleNamespace(spans=spans),
        project_path="p",
        settings=SimpleNamespace(request_timeout_s=5),
    )
    annotator = SpanAnnotator(reader, verify_after=verify_after, sleep=lambda _: spans.land())  # type: ignore[arg-type]
    return annotator, spans


def converted(count: int, **changes: object) -> list:
    return [convert(make_log(i) | changes) for i in range(count)]


def test_posts_once_per_batch_and_reads_back_at_the_end() -> None:
    annotator, phoenix = fake_annotator()
    annotator.annotate(converted(2))
    annotator.annotate(converted(3)[2:])
    phoenix.land()
    annotator.annotate(converted(2)[1:])  # a log seen again: its annotations are in place
    assert [sync for _, sync in phoenix.posts] == [False, False], "nothing posted twice"
    assert phoenix.reads == 3, "one read per batch (what is stored), none to verify"
    assert annotator.written == 3, "only the unchanged ones so far"
    annotator.flush()
    assert phoenix.reads == 4, "everything posted is read back in one read at the end"
    assert (annotator.written, annotator.unchanged, annotator.failed) == (12, 3, 0)


def test_spans_this_run_stored_are_not_read_before_posting() -> None:
    annotator, phoenix = fake_annotator()
    spans = converted(3)
    ids = [span_hex(span.context.span_id) for span in spans]
    annotator.annotate(spans, fresh=ids)
    assert phoenix.reads == 0, "a span this run stored holds no annotation: nothing to read"
    assert phoenix.posts == [(9, False)]
    again, phoenix = fake_annotator()
    phoenix.stored = {(ids[0], name): {"span_id": ids[0], "name": name, "identifier": ANNOTATOR}
                      for name in (BILLED_COST,)}  # fmt: skip
    again.annotate(spans, fresh=ids[1:])
    assert phoenix.reads == 1, "the span held before the run is read"
    annotator.flush()
    assert (annotator.written, annotator.failed) == (9, 0), "and still read back at the end"


def test_rerun_writes_only_what_changed() -> None:
    annotator, phoenix = fake_annotator()
    annotator.annotate(converted(4))
    annotator.flush()
    assert (annotator.written, annotator.unchanged) == (12, 0)

    again = SpanAnnotator(annotator.reader, sleep=lambda _: phoenix.land())
    again.annotate(converted(4))  # the same values: nothing to write
    again.annotate(converted(2, cost=9.0))  # a corrected cost: only that is written
    again.flush()
    assert phoenix.posts[1:] == [(2, False)]
    assert (again.written, again.unchanged, again.failed) == (18, 16, 0)
    assert phoenix.stored[(span_hex(converted(1)[0].context.span_id), BILLED_COST)][
        "result"]["score"] == pytest.approx(0.09)  # fmt: skip


def test_lost_posts_are_written_again_synchronously() -> None:
    annotator, phoenix = fake_annotator()
    annotator.sleep = lambda _: None  # Phoenix never inserts the queued posts
    annotator.clock = iter(range(0, 1000, 10)).__next__  # type: ignore[assignment]
    annotator.annotate(converted(2))
    phoenix.queued.clear()  # lost (a restart empties Phoenix's queue)
    annotator.flush()
    assert phoenix.posts[-1] == (6, True)
    assert (annotator.written, annotator.failed) == (6, 0)


def test_a_long_run_reads_back_as_it_goes() -> None:
    annotator, _ = fake_annotator(verify_after=6)
    annotator.annotate(converted(2))  # 6 pending, but the newest post is never read back
    assert annotator.written == 0
    annotator.annotate(converted(3)[2:])
    assert annotator.written == 6, "the first post was read back while the run went on"
    annotator.flush()
    assert (annotator.written, annotator.failed) == (9, 0)
