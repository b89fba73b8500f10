"""`resync` against a real Phoenix: logs matched by span id whatever their stored id became,
an unmatchable log skipped without blocking the rest, and the annotations people and
evaluators made carried over the replacement."""

from __future__ import annotations

import json
import re
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from ingest.convert.ids import span_hex, span_id_for
from ingest.convert.records import parse_record
from ingest.phoenix.admin.deletes import KILL_AFTER_ENV
from ingest.phoenix.admin.local_server import LocalPhoenix
from ingest.phoenix.api import import_phoenix_client
from ingest.phoenix.reader import ANNOTATOR
from ingest.run.logs import shown
from tests.conftest import read_spans, run_cli
from tests.logs_factory import BASE_TIME, make_log, write_jsonl
from tests.run.test_resync import assert_exact, changed, cli, last_json, spans_by_log

SECRET = "sk-proj-Abc123def456ghi789jkl012mno345pqr678"


def odd_ids() -> list[dict]:
    """Logs whose visible id the conversion changes: a NUL, a secret-looking id (masked),
    an id longer than the value cap; two secret-looking ids mask to the same text."""
    logs = [make_log(i) for i in range(8)]
    logs[1]["id"] = "log\x00with-nul"
    logs[3]["id"] = SECRET
    logs[4]["id"] = SECRET.replace("Abc", "Xyz")
    logs[6]["id"] = "long-" + "x" * 60_000
    return logs


def test_logs_whose_stored_id_changed_are_replaced(
    phoenix: LocalPhoenix, project: str, tmp_path: Path
) -> None:
    logs = odd_ids()
    assert cli(phoenix, project, "import", str(write_jsonl(tmp_path / "a.jsonl", logs))
               ).returncode == 0  # fmt: skip
    stored = spans_by_log(phoenix, project)
    assert "log\x00with-nul" not in stored and SECRET not in stored  # the visible id changed
    assert len(read_spans(phoenix.url, project)) == 8

    new = changed(logs, (1, 3, 4, 6))
    updated = write_jsonl(tmp_path / "b.jsonl", new)
    dry = cli(phoenix, project, "resync", str(updated), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would delete 8 spans in 3 traces" in dry.stdout and "re-send 8" in dry.stdout

    result = cli(phoenix, project, "resync", str(updated), "--yes", "--json")
    assert result.returncode == 0, result.stderr
    summary = last_json(result)
    assert (summary["deleted"], summary["resent"], summary["verified"]) == (8, 8, 8)
    assert summary["unmatched"] == [] and SECRET not in result.stdout + result.stderr
    spans = {s["context"]["span_id"]: s for s in read_spans(phoenix.url, project)}
    assert len(spans) == 8
    for log in new:
        # the id the span id comes from: the raw one, or its digest when over MAX_ID_CHARS
        span = spans[span_hex(span_id_for(project, parse_record(log).log_id))]
        assert span["attributes"]["llm.model_name"] == log["response"]["model"]


def send_span_with_id(phoenix: LocalPhoenix, project: str, span_id: int, at: Any) -> None:
    """Another writer's span that happens to hold the id of one of our logs."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class FixedIds(RandomIdGenerator):
        def generate_span_id(self) -> int:
            return span_id

    provider = TracerProvider(resource=Resource({"openinference.project.name": project}),
                              id_generator=FixedIds())  # fmt: skip
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{phoenix.url}/v1/traces"))
    )
    start = int(at.timestamp() * 1e9)
    span = provider.get_tracer("live").start_span("live-call", start_time=start)
    span.end(end_time=start + 5_000_000)
    provider.shutdown()
    wanted = span_hex(span_id)
    deadline = time.monotonic() + 30
    while not any(s["context"]["span_id"] == wanted for s in read_spans(phoenix.url, project)):
        assert time.monotonic() < deadline, "the other writer's span was not stored"
        time.sleep(0.3)


def test_a_log_held_by_another_writer_is_reported_and_the_rest_replaced(
    phoenix: LocalPhoenix, project: str, tmp_path: Path
) -> None:
    logs = [make_log(i) for i in range(9)]
    logs[5]["id"] = "taken\nby-another\x1b[31m-writer"  # control characters: escaped
    held = span_id_for(project, logs[5]["id"])
    send_span_with_id(phoenix, project, held, BASE_TIME + timedelta(seconds=5))
    first = write_jsonl(tmp_path / "a.jsonl", [log for i, log in enumerate(logs) if i != 5])
    assert cli(phoenix, project, "import", str(first)).returncode == 0

    new = changed(logs, (2, 5, 7))
    updated = write_jsonl(tmp_path / "b.jsonl", new)
    dry = cli(phoenix, project, "resync", str(updated), "--dry-run")
    assert dry.returncode == 3, dry.stderr
    assert "would delete 8 spans" in dry.stdout and "re-send 8" in dry.stdout
    assert "Would skip: log 'taken\\nby-another\\u001b[31m-writer'" in dry.stdout

    result = cli(phoenix, project, "resync", str(updated), "--yes")
    assert result.returncode == 3, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("Skipped:"))
    assert line == (
        "Skipped: log 'taken\\nby-another\\u001b[31m-writer': its span id "
        f"{span_hex(held)} in project '{project}' is held by a span this tool did not write "
        "(no portkey.log_id); left as it is, this log is not replaced. Delete that span in "
        "Phoenix and resync again to replace it."
    )
    assert "\x1b" not in result.stdout + result.stderr
    assert "deleted 8 spans" in result.stdout and "verified 8" in result.stdout
    assert_exact(phoenix, project, [log for i, log in enumerate(new) if i != 5], foreign=1)
    other = [
        s for s in read_spans(phoenix.url, project) if s["context"]["span_id"] == span_hex(held)
    ]
    assert len(other) == 1 and other[0]["name"] == "live-call"  # untouched
    assert "Resync in progress" not in run_cli("status").stdout


# ---- annotations others made ------------------------------------------------------------


def others(phoenix: LocalPhoenix, project: str, span_ids: list[str]) -> dict[tuple, dict]:
    """Every annotation on these spans that is not the tool's, by (span, name, identifier)."""
    import httpx

    client = import_phoenix_client()(base_url=phoenix.url)
    try:
        found = client.spans.get_span_annotations(
            span_ids=span_ids, project_identifier=project, exclude_annotation_names=[], limit=1000
        )
    except httpx.HTTPStatusError as exc:  # "None of the supplied span_ids exist"
        assert exc.response.status_code == 404
        return {}
    return {(a["span_id"], a["name"], a["identifier"]): a for a in found
            if a["identifier"] != ANNOTATOR}  # fmt: skip


def annotate(phoenix: LocalPhoenix, project: str, span_id: str, other_span: str) -> None:
    """What people and evaluators add in Phoenix: a human label, an LLM eval, a second
    eval of another identifier and, on one span, a human label with no identifier."""
    client = import_phoenix_client()(base_url=phoenix.url)
    client.spans.log_span_annotations(sync=True, span_annotations=[
        {"span_id": span_id, "name": "correctness", "annotator_kind": "HUMAN", "identifier": "",
         "result": {"label": "correct", "score": 1.0, "explanation": "checked by hand"},
         "metadata": {"reviewer": "ana", "ticket": 42}},
        {"span_id": span_id, "name": "hallucination", "annotator_kind": "LLM",
         "identifier": "evals-v2", "result": {"label": "factual", "score": 0.125,
                                              "explanation": "grounded in the context"},
         "metadata": {"model": "gpt-4.1", "template": "hallucination-v2"}},
        {"span_id": other_span, "name": "hallucination", "annotator_kind": "LLM",
         "identifier": "evals-v3", "result": {"label": "hallucinated", "score": 0.875}},
    ])  # fmt: skip


def comparable(annotations: dict[tuple, dict]) -> dict[tuple, tuple]:
    return {
        key: (a["annotator_kind"], a["result"], a["metadata"]) for key, a in annotations.items()
    }


def test_annotations_people_and_evaluators_made_survive_the_resync(
    any_phoenix: LocalPhoenix, project: str, tmp_path: Path
) -> None:
    phoenix = any_phoenix  # the newest and the oldest supported Phoenix
    logs = [make_log(i) for i in range(6)]
    assert cli(phoenix, project, "import", str(write_jsonl(tmp_path / "a.jsonl", logs))
               ).returncode == 0  # fmt: skip
    ids = [span_hex(span_id_for(project, log["id"])) for log in logs]
    annotate(phoenix, project, ids[1], ids[4])
    before = others(phoenix, project, ids)
    assert len(before) == 3

    new = changed(logs, (1, 4))
    updated = write_jsonl(tmp_path / "b.jsonl", new)
    dry = cli(phoenix, project, "resync", str(updated), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "carry over 3 annotations made in Phoenix" in dry.stdout

    result = cli(phoenix, project, "resync", str(updated), "--yes", "--json")
    assert result.returncode == 0, result.stderr
    summary = last_json(result)
    assert (summary["deleted"], summary["verified"]) == (6, 6)
    assert (summary["annotations_kept"], summary["annotations_restored"]) == (3, 3)
    assert_exact(phoenix, project, new)  # the gateway annotations once each
    after = others(phoenix, project, ids)
    assert comparable(after) == comparable(before)
    assert not list((tmp_path / "state").rglob("resync-annotations/*.jsonl"))


def test_killed_after_the_delete_the_next_resync_writes_the_annotations_back(
    phoenix: LocalPhoenix, project: str, tmp_path: Path
) -> None:
    logs = [make_log(i) for i in range(4)]
    assert cli(phoenix, project, "import", str(write_jsonl(tmp_path / "a.jsonl", logs))
               ).returncode == 0  # fmt: skip
    ids = [span_hex(span_id_for(project, log["id"])) for log in logs]
    annotate(phoenix, project, ids[0], ids[3])
    before = others(phoenix, project, ids)
    updated = write_jsonl(tmp_path / "b.jsonl", changed(logs, (0, 3)))
    killed = cli(phoenix, project, "resync", str(updated), "--yes", env={KILL_AFTER_ENV: "4"})
    assert killed.returncode == -9
    assert others(phoenix, project, ids) == {}  # gone with the spans
    saved = list((tmp_path / "state").rglob("resync-annotations/*.jsonl"))
    assert len(saved) == 1 and oct(saved[0].stat().st_mode & 0o777) == "0o600"
    dry = cli(phoenix, project, "resync", str(updated), "--dry-run")
    assert "would delete 0 spans" in dry.stdout, dry.stderr
    assert "carry over 3 annotations made in Phoenix" in dry.stdout  # from the saved file

    result = cli(phoenix, project, "resync", str(updated), "--yes", "--json")
    assert result.returncode == 0, result.stderr
    assert last_json(result)["annotations_restored"] == 3
    assert comparable(others(phoenix, project, ids)) == comparable(before)
    assert not saved[0].exists()


def test_notes_survive_the_resync(phoenix: LocalPhoenix, project: str, tmp_path: Path) -> None:
    logs = [make_log(i) for i in range(3)]
    assert cli(phoenix, project, "import", str(write_jsonl(tmp_path / "a.jsonl", logs))
               ).returncode == 0  # fmt: skip
    span_id = span_hex(span_id_for(project, logs[0]["id"]))
    client = import_phoenix_client()(base_url=phoenix.url)
    client.spans.add_span_note(span_id=span_id, note="customer complained about this answer")
    client.spans.add_span_note(span_id=span_id, note="fixed in prompt v7")
    before = others(phoenix, project, [span_id])
    assert len(before) == 2

    result = cli(phoenix, project, "resync", str(write_jsonl(tmp_path / "b.jsonl", logs)),
                 "--yes", "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert last_json(result)["annotations_restored"] == 2
    assert comparable(others(phoenix, project, [span_id])) == comparable(before)


def test_annotations_that_cannot_be_written_back_are_saved_to_a_named_file(
    phoenix_oldest: LocalPhoenix, project: str, tmp_path: Path
) -> None:
    """Phoenix 12.18 has no REST endpoint that writes a note: the resync replaces the spans,
    writes back what it can and saves the note to a file the error names."""
    phoenix = phoenix_oldest
    logs = [make_log(i) for i in range(3)]
    assert cli(phoenix, project, "import", str(write_jsonl(tmp_path / "a.jsonl", logs))
               ).returncode == 0  # fmt: skip
    ids = [span_hex(span_id_for(project, log["id"])) for log in logs]
    annotate(phoenix, project, ids[0], ids[2])
    spans = {s["context"]["span_id"]: s for s in read_spans(phoenix.url, project)}
    graphql = import_phoenix_client()(base_url=phoenix.url)._client.post(
        "graphql", json={"query": "mutation($id: ID!) { createSpanNote(annotationInput: "
                         "{spanId: $id, note: \"ask the customer\"}) { query { __typename } } }",
                         "variables": {"id": spans[ids[0]]["id"]}})  # fmt: skip
    assert graphql.status_code == 200 and "errors" not in graphql.json(), graphql.text
    before = others(phoenix, project, ids)
    assert len(before) == 4

    result = cli(phoenix, project, "resync", str(write_jsonl(tmp_path / "b.jsonl", logs)),
                 "--yes")  # fmt: skip
    assert result.returncode == 1, result.stderr
    error = next(line for line in result.stderr.splitlines() if line.startswith("Error: "))
    path = Path(re.search(r"saved in (\S+)\. Rerun", error).group(1))  # type: ignore[union-attr]
    assert "1 annotations made in Phoenix" in error and "Rerun the same resync" in error
    saved = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(s["span_id"], s["name"], s["result"]["explanation"]) for s in saved] == [
        (ids[0], "note", "ask the customer")
    ]
    after = others(phoenix, project, ids)
    assert comparable(after) == comparable({k: v for k, v in before.items() if k[1] != "note"})
    assert "Resync in progress" in run_cli("status").stdout


# ---- how a skipped log is named ---------------------------------------------------------


@given(st.text(max_size=400), st.sampled_from(["", SECRET, "\n", "\x1b[2J", "\u2028"]))
def test_a_reported_log_id_is_one_short_line_without_secrets(text: str, extra: str) -> None:
    shown_id = shown(f"{text} {extra} {text}")
    assert not re.search(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", shown_id)
    assert SECRET not in shown_id
    assert len(shown_id) <= 120 + len("''…[ chars]") + 4
    assert shown_id.startswith("'") and shown_id.endswith("'")


def test_a_long_id_is_cut_and_its_length_given() -> None:
    assert shown("a" * 60_000) == f"'{'a' * 120}…[60000 chars]'"
    assert shown("log\x00with-nul") == "'log\\u0000with-nul'"
