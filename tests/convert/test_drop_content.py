"""`--drop-content` (issue 25, item 2): spans without what was said, everything else kept."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ingest.convert.records import RecordError, parse_record
from ingest.convert.spans import ConversionOptions, make_resource, span_to_dict, to_span
from tests.logs_factory import MARKER, planted_sample_logs

SAMPLES = Path(__file__).resolve().parents[2] / "sample_logs"
KEPT = ("llm.model_name", "llm.provider", "llm.cost.total", "portkey.cost",
        "portkey.status_code", "portkey.response_time_ms", "user.id", "session.id", "metadata",
        "openinference.span.kind", "tag.tags")  # fmt: skip


def spans(records: list[dict[str, Any]], drop: bool) -> list[dict[str, Any]]:
    options = ConversionOptions(project="p", drop_content=drop)
    resource = make_resource("p")
    out = []
    for raw in records:
        try:
            record = parse_record(raw)
        except RecordError:
            continue
        out.append(span_to_dict(to_span(record, options, resource)))
    return out


def test_no_planted_marker_survives_and_tokens_cost_and_facts_stay() -> None:
    records = planted_sample_logs(SAMPLES)
    full, bare = spans(records, drop=False), spans(records, drop=True)
    assert len(bare) == len(full) > 40
    assert sum(MARKER in json.dumps(span) for span in full) > 40  # the markers are there...
    leaks = [(span["name"], key) for span in bare for key, value in span["attributes"].items()
             if MARKER in json.dumps(value)]  # fmt: skip
    assert leaks == []  # ...and none is left
    assert not [span for span in bare if MARKER in json.dumps(span)]
    for before, after in zip(full, bare, strict=True):
        a, b = before["attributes"], after["attributes"]
        assert {k: v for k, v in a.items() if k.startswith("llm.token_count.")} == {
            k: v for k, v in b.items() if k.startswith("llm.token_count.")
        }
        assert {k: a[k] for k in KEPT if k in a} == {k: b[k] for k in KEPT if k in b}
        assert (before["name"], before["span_id"], before["status"]["code"]) == (
            after["name"], after["span_id"], after["status"]["code"],
        )  # fmt: skip
        assert b["portkey.ingest.content_dropped"]
        assert "portkey.ingest.content_dropped" not in a


def test_the_dropped_families_are_named_on_the_span() -> None:
    chat = {
        "id": "c",
        "created_at": "2026-07-25T11:14:18Z",
        "request_url": "https://api.openai.com/v1/chat/completions",
        "request": {
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "hi"}],
            "instructions": "be brief",
        },
        "response": {"choices": [{"message": {"role": "assistant", "content": "hello"}}]},
    }
    [span] = spans([chat], drop=True)  # fmt: skip
    assert span["attributes"]["portkey.ingest.content_dropped"] == (
        "input.value, output.value, llm.input_messages, llm.output_messages, "
        "1 invocation parameter(s)"
    )
    failed = {
        **chat,
        "is_success": False,
        "response_status_code": 400,
        "response": {"error": {"message": "bad prompt: hi", "type": "invalid_request"}},
    }
    [span] = spans([failed], drop=True)  # fmt: skip
    assert span["status"] == {"code": "ERROR", "message": "HTTP 400"}
    assert "status message" in span["attributes"]["portkey.ingest.content_dropped"]
    [span] = spans([{"id": "e", "created_at": "2026-07-25T11:14:18Z"}], drop=True)
    assert span["attributes"]["portkey.ingest.content_dropped"] == (
        "nothing: the log held no content"
    )
