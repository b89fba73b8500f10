"""Span-level rules: ids, times, status and error events, the `convert` JSON format, OTLP."""

from __future__ import annotations

import json
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from ingest.convert import ids
from ingest.convert.records import parse_record
from ingest.convert.spans import ConversionOptions, make_resource, span_to_dict, to_span

PROJECT = "test-project"
BASE: dict[str, Any] = {"id": "log-1", "created_at": "2026-07-25T11:14:18.123Z"}


def span_of(project: str = PROJECT, **fields: Any) -> ReadableSpan:
    options = ConversionOptions(project=project)
    return to_span(parse_record({**BASE, **fields}), options, make_resource(project))


def convert(project: str = PROJECT, **fields: Any) -> dict[str, Any]:
    return span_to_dict(span_of(project, **fields))


# ---- ids ---------------------------------------------------------------------------------


def test_ids_are_the_deterministic_ids_of_the_log() -> None:
    span = convert(trace_id="tr-9")
    assert span["span_id"] == ids.span_hex(ids.span_id_for(PROJECT, "log-1"))
    assert span["trace_id"] == ids.trace_hex(ids.trace_id_for(PROJECT, "tr-9", "log-1"))
    assert span["parent_span_id"] is None


def test_same_log_gets_the_same_ids_whatever_else_changes() -> None:
    first = convert(ai_model="a", response_time=10)
    again = convert(ai_model="b", response_time=99, cache_status="HIT", span_id="enriched")
    assert (first["trace_id"], first["span_id"]) == (again["trace_id"], again["span_id"])


def test_another_project_gets_other_ids() -> None:
    here, there = convert(), convert(project="elsewhere")
    assert here["span_id"] != there["span_id"]
    assert here["trace_id"] != there["trace_id"]


def test_logs_sharing_a_portkey_trace_share_a_trace() -> None:
    one = convert(id="log-a", trace_id="tr-1")
    two = convert(id="log-b", trace_id="tr-1")
    assert one["trace_id"] == two["trace_id"]
    assert one["span_id"] != two["span_id"]


def test_logs_without_a_trace_id_get_a_trace_each() -> None:
    assert convert(id="log-a")["trace_id"] != convert(id="log-b")["trace_id"]


# ---- times -------------------------------------------------------------------------------


def test_start_is_created_at_and_end_adds_the_response_time() -> None:
    span = convert(response_time=1234.5)
    assert span["start_time"] == "2026-07-25T11:14:18.123000Z"
    assert span["end_time"] == "2026-07-25T11:14:19.357500Z"


def test_javascript_dates_and_nanosecond_times() -> None:
    span = span_of(
        created_at="Sat Jul 25 2026 13:14:18 GMT+0200 (Central European Summer Time)",
        response_time=2,
    )
    assert span.start_time == 1_784_978_058_000_000_000  # 2026-07-25T11:14:18Z
    assert span.end_time == span.start_time + 2_000_000
    assert span_to_dict(span)["start_time"] == "2026-07-25T11:14:18.000000Z"


def test_end_is_start_when_the_response_time_is_missing() -> None:
    span = convert()
    assert span["end_time"] == span["start_time"]


# ---- status ------------------------------------------------------------------------------


def error_event(span: ReadableSpan) -> dict[str, Any]:
    (event,) = span.events
    assert event.name == "exception"
    assert event.timestamp == span.end_time
    return dict(event.attributes or {})


@pytest.mark.parametrize(
    ("status", "response", "message", "error_type"),
    [
        (  # OpenAI and Portkey: the code is more specific than the type
            429,
            {"error": {"message": "Rate limit reached", "type": "requests",
                       "code": "rate_limit_exceeded"}},
            "429 rate_limit_exceeded: Rate limit reached",
            "RateLimitError",
        ),
        (  # Anthropic
            529,
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
            "529 overloaded_error: Overloaded",
            "InternalServerError",
        ),
        (  # Gemini: a numeric code repeats the HTTP status; the status names the failure
            400,
            {"error": {"code": 400, "message": "API key not valid", "status": "INVALID_ARGUMENT"}},
            "400 INVALID_ARGUMENT: API key not valid",
            "BadRequestError",
        ),
        (  # Gemini streaming: a one-item list
            429,
            [{"error": {"message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED"}}],
            "429 RESOURCE_EXHAUSTED: Quota exceeded",
            "RateLimitError",
        ),
        (403, {"message": "The security token included in the request is invalid."},  # Bedrock
         "403: The security token included in the request is invalid.", "PermissionDeniedError"),
        (504, {"error": "upstream timed out"}, "504: upstream timed out", "APITimeoutError"),
        (401, {"error": {"code": "invalid_api_key", "message": "Bad key"}},
         "401 invalid_api_key: Bad key", "AuthenticationError"),
        (502, {"unexpected": True}, "HTTP 502", "InternalServerError"),
        (502, None, "HTTP 502", "InternalServerError"),
        (None, {"error": {"type": "weird_thing", "message": "odd"}}, "weird_thing: odd",
         "APIError"),
    ],
)  # fmt: skip
def test_errors_carry_status_code_and_provider_message(
    status: int | None, response: Any, message: str, error_type: str | None
) -> None:
    span = span_of(response=response, response_status_code=status, is_success=False)
    as_dict = span_to_dict(span)
    assert as_dict["status"] == {"code": "ERROR", "message": message}
    event = error_event(span)
    assert event["exception.message"] == message
    assert event.get("exception.type") == error_type
    assert as_dict["attributes"]["tag.tags"][-1] == "error"


def test_http_500_without_is_success_is_an_error() -> None:
    span = convert(response_status_code=500)
    assert span["status"] == {"code": "ERROR", "message": "HTTP 500"}


def test_a_4xx_code_is_an_error_even_when_is_success_says_true() -> None:
    assert convert(response_status_code=429, is_success=True)["status"]["code"] == "ERROR"


def test_failure_without_code_or_body_says_request_failed() -> None:
    span = span_of(is_success=False)
    assert span_to_dict(span)["status"] == {"code": "ERROR", "message": "request failed"}
    assert error_event(span) == {"exception.message": "request failed"}


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"is_success": True}, "OK"),
        ({"response_status_code": 200}, "OK"),
        ({"response_status_code": 304}, "OK"),
        ({"is_success": 1, "response_status_code": 200}, "OK"),
        ({}, "UNSET"),
    ],
)
def test_success_is_ok_and_nothing_known_is_unset(fields: dict[str, Any], code: str) -> None:
    span = span_of(**fields)
    assert span_to_dict(span)["status"] == {"code": code, "message": None}
    assert not span.events
    assert "error" not in span_to_dict(span)["attributes"]["tag.tags"]


def test_long_error_messages_are_bounded() -> None:
    options = ConversionOptions(project=PROJECT, max_value_chars=50)
    record = parse_record({**BASE, "is_success": False, "response": {"error": "e" * 80}})
    span = to_span(record, options, make_resource(PROJECT))
    assert span.status.description == "e" * 50 + "…[truncated: 80 chars]"


# ---- span shape and the convert format ---------------------------------------------------


def test_span_is_a_client_span_of_our_scope_and_project() -> None:
    span = span_of()
    assert span.kind is SpanKind.CLIENT
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == "portkey-phoenix-ingest"
    assert span.context is not None and span.context.trace_flags.sampled
    assert dict(span.resource.attributes) == {
        "openinference.project.name": PROJECT,
        "service.name": "portkey-gateway",
    }


FULL: dict[str, Any] = {
    "trace_id": "tr-1",
    "request": {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]},
    "response": {"model": "gpt-4o-2024-08-06", "choices": [], "usage": {"prompt_tokens": 3}},
    "is_success": True,
    "ai_org": "openai",
    "ai_model": "gpt-4o",
    "request_url": "https://api.openai.com/v1/chat/completions",
    "cost": 0.02,
    "response_time": 250,
    "response_status_code": 200,
    "mode": "single",
    "metadata": {"_user": "u", "session_id": "s"},
}


def test_convert_output_has_exactly_the_documented_keys_and_round_trips() -> None:
    span = convert(**FULL)
    assert list(span) == [
        "trace_id",
        "span_id",
        "parent_span_id",
        "name",
        "start_time",
        "end_time",
        "status",
        "attributes",
        "resource",
    ]
    assert len(span["trace_id"]) == 32 and int(span["trace_id"], 16)
    assert len(span["span_id"]) == 16 and int(span["span_id"], 16)
    assert set(span["status"]) == {"code", "message"}
    assert span["name"] == "chat gpt-4o-2024-08-06"
    assert span["resource"] == {
        "openinference.project.name": PROJECT,
        "service.name": "portkey-gateway",
    }
    assert json.loads(json.dumps(span)) == span
    assert isinstance(span["attributes"]["tag.tags"], list)


CASES: list[dict[str, Any]] = [
    FULL,
    {"is_success": False, "response_status_code": 500, "response": {"error": {"code": 500}}},
    {"request": "text\ud800body", "response": "\x00", "metadata": '{"k": "\\ud800"}'},
    {
        "request_url": "https://api.openai.com/v1/embeddings",
        "request": {"input": ["a", "b"], "model": "text-embedding-3-small"},
        "response": {"data": [{"embedding": [0.1]}], "usage": {"prompt_tokens": 2}},
    },
    {"request": {"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]}},
    {"is_success": "nope", "cost": 3, "cost_currency": "EUR", "cache_status": "HIT"},
]


def test_spans_encode_to_otlp_protobuf_without_losing_attributes() -> None:
    spans = [span_of(id=f"log-{i}", **fields) for i, fields in enumerate(CASES)]
    for span in spans:
        for key, value in (span.attributes or {}).items():
            assert isinstance(value, str | bool | int | float | list), key
            if isinstance(value, list):
                assert len({type(item) for item in value}) <= 1, key
    payload = encode_spans(spans).SerializeToString()
    decoded = ExportTraceServiceRequest.FromString(payload)
    encoded = decoded.resource_spans[0].scope_spans[0].spans
    # The encoder skips (and only logs) attributes it cannot encode, e.g. lone surrogates.
    assert [len(span.attributes) for span in encoded] == [len(s.attributes or {}) for s in spans]
    assert [span.name for span in encoded] == [span.name for span in spans]
