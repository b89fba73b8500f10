"""Hostile records: every line ends as a span the OTLP encoder accepts, or a RecordError.

Pure unit tests (no Phoenix): the line goes decode -> parse_record -> to_span -> the OTel
protobuf encoder, as `import` sends it, and `convert` prints the same span.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan

from ingest.convert.records import parse_record
from ingest.convert.spans import ConversionOptions, make_resource, span_to_dict, to_span
from ingest.errors import RecordError
from ingest.sources.files import SourceLine, decode_line

PROJECT = "hostile"
OPTIONS = ConversionOptions(project=PROJECT)
RESOURCE = make_resource(PROJECT)
BASE: dict[str, Any] = {"id": "log-1", "created_at": "2026-07-25T11:14:18Z"}


def span_or_error(line: bytes, options: ConversionOptions = OPTIONS) -> ReadableSpan | str:
    """What the per-line step does with one line: an encoded span, or the rejection."""
    try:
        raw = decode_line(SourceLine(path=None, line_no=1, end_offset=0, data=line))  # type: ignore[arg-type]
        span = to_span(parse_record(raw), options, make_resource(options.project))
    except RecordError as exc:
        return str(exc)
    encode_spans([span]).SerializeToString()  # raises if OTLP cannot carry it
    json.dumps(span_to_dict(span), ensure_ascii=False).encode("utf-8")  # `convert` prints it
    return span


def record_line(**fields: Any) -> bytes:
    return json.dumps({**BASE, **fields}).encode()


def attributes_of(line: bytes, options: ConversionOptions = OPTIONS) -> dict[str, Any]:
    span = span_or_error(line, options)
    assert isinstance(span, ReadableSpan), span
    return dict(span.attributes or {})


# ---- property: any JSON value ------------------------------------------------------------

_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=30,
)
_fields = st.sampled_from(
    ["id", "trace_id", "created_at", "request", "response", "is_success", "ai_org", "ai_model",
     "req_units", "res_units", "total_units", "request_url", "cost", "cost_currency",
     "response_time", "response_status_code", "mode", "config", "prompt_slug", "metadata",
     "span_id", "parent_span_id", "cache_status", "retry_success_count", "virtual_key"]
)  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_json_values, st.dictionaries(_fields, _json_values, max_size=12)))
def test_any_json_value_is_an_encodable_span_or_a_record_error(value: Any) -> None:
    span_or_error(json.dumps(value).encode())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_fields, _json_values, max_size=12))
def test_any_fields_on_a_sound_record_still_give_a_span(fields: dict[str, Any]) -> None:
    fields.update(BASE)  # a usable id and time: nothing else may reject the record
    assert isinstance(span_or_error(json.dumps(fields).encode()), ReadableSpan)


# ---- times and integers OTLP cannot carry ------------------------------------------------


@pytest.mark.parametrize(
    ("created_at", "reason"),
    [
        ("1969-12-31T23:59:59Z", "before 1970-01-01"),
        ("0001-01-01T00:00:00Z", "before 1970-01-01"),
        (-5, "before 1970-01-01"),
        ("2263-01-01T00:00:00Z", "beyond OTLP's 64-bit nanoseconds"),
        ("9999-12-31T23:59:59Z", "beyond OTLP's 64-bit nanoseconds"),
        (1e300, "out of range"),
    ],
)
def test_a_start_time_otlp_cannot_carry_rejects_the_record(created_at: Any, reason: str) -> None:
    rejected = span_or_error(record_line(created_at=created_at))
    assert isinstance(rejected, str) and rejected.startswith("no usable timestamp")
    assert reason in rejected


@pytest.mark.parametrize(
    ("created_at", "response_time"),
    [("2262-04-11T00:00:00Z", 10**12), ("2000-01-01T00:00:00Z", 1.797693134862316e302)],
)  # the second is finite in ms and overflows to inf in ns (found by Hypothesis)
def test_a_response_time_past_2262_is_dropped_with_a_warning(
    created_at: str, response_time: float
) -> None:
    line = record_line(created_at=created_at, response_time=response_time)
    span = span_or_error(line)
    assert isinstance(span, ReadableSpan)
    assert span.end_time == span.start_time
    (warning,) = span.attributes["portkey.ingest.warnings"]  # type: ignore[index]
    assert warning.startswith("response_time: ends after 2262")
    assert "portkey.response_time_ms" not in span.attributes  # type: ignore[operator]


def test_integers_beyond_64_bits_are_dropped_and_token_counts_clamped_with_a_warning() -> None:
    usage = {"prompt_tokens": 10**30, "completion_tokens": 5, "total_tokens": 10**30}
    got = attributes_of(
        record_line(response_status_code=1e20, response={"usage": usage}, retry_success_count=2**70)
    )
    assert "portkey.status_code" not in got and "portkey.retry_success_count" not in got
    assert got["llm.token_count.prompt"] == got["llm.token_count.total"] == 10_000_000
    assert got["llm.token_count.completion"] == 5
    warnings = "\n".join(got["portkey.ingest.warnings"])
    for name in ("response_status_code", "retry_success_count", "llm.token_count.prompt"):
        assert name in warnings


def test_token_counts_whose_trace_sums_would_overflow_phoenix_are_clamped_per_span() -> None:
    # Within 64 bits, but two such spans in one trace overflow Phoenix's cumulative count
    usage = {"prompt_tokens": 2**62, "completion_tokens": 10_000_000, "total_tokens": 2**62 + 7,
             "prompt_tokens_details": {"cached_tokens": 2**40}}  # fmt: skip
    got = attributes_of(record_line(response={"usage": usage}))
    assert got["llm.token_count.prompt"] == 10_000_000
    assert got["llm.token_count.completion"] == 10_000_000  # at the bound: kept as it is
    assert got["llm.token_count.total"] == 10_000_000
    assert got["llm.token_count.prompt_details.cache_read"] == 10_000_000
    assert 214 * 10_000_000 <= 2**31 - 1  # a trace of 214 such spans fits PostgreSQL's INTEGER
    warnings = got["portkey.ingest.warnings"]
    assert (
        "llm.token_count.prompt: 4611686018427387904 tokens, over the 10,000,000 a span may add "
        "to its trace's sums in Phoenix; clamped" in warnings
    )
    assert not any("llm.token_count.completion" in warning for warning in warnings)


# ---- text, nesting, size -----------------------------------------------------------------


def test_nul_and_lone_surrogates_become_valid_text() -> None:
    line = (
        b'{"id": "log-\\u0000x", "created_at": "2026-07-25T11:14:18Z", "ai_model": "g\\ud800",'
        b' "request": {"messages": [{"role": "user", "content": "a\\u0000b\\udfff"}]},'
        b' "response": {"error": {"type": "x\\ud800", "message": "m\\u0000"}}, "is_success": 0}'
    )
    span = span_or_error(line)
    assert isinstance(span, ReadableSpan)
    assert span.attributes["llm.input_messages.0.message.content"] == "ab?"  # type: ignore[index]
    assert "\x00" not in (span.status.description or "")


@pytest.mark.parametrize("depth", [50, 900, 5_000, 100_000])
def test_deep_nesting_is_a_span_or_a_record_error(depth: int) -> None:
    body = "[" * depth + "]" * depth
    line = f'{{"id": "a", "created_at": "2026-07-25T11:14:18Z", "request": {body}}}'.encode()
    outcome = span_or_error(line)
    assert isinstance(outcome, ReadableSpan) or "nested too deeply" in outcome


def test_huge_numbers_in_every_numeric_field() -> None:
    fields = {
        name: 10**400
        for name in ("req_units", "res_units", "total_units", "cost", "response_time",
                     "response_status_code", "retry_success_count", "last_used_option_index")
    }  # fmt: skip
    got = attributes_of(record_line(**fields))
    assert len(got["portkey.ingest.warnings"]) == len(fields)


def test_two_hundred_thousand_embedding_inputs_stay_within_the_caps() -> None:
    line = record_line(
        request_url="https://api.openai.com/v1/embeddings",
        request={"model": "text-embedding-3-small", "input": [f"text {i}" for i in range(200_000)]},
    )
    span = span_or_error(line)
    assert isinstance(span, ReadableSpan)
    attributes = span.attributes or {}
    assert len(attributes) <= OPTIONS.max_attributes
    assert "embedding.embeddings.199.embedding.text" in attributes
    assert "embedding.embeddings.200.embedding.text" not in attributes
    assert "embedding.embeddings: kept 200 of 200000" in attributes["portkey.ingest.truncated"]
    assert len(encode_spans([span]).SerializeToString()) < 1_200_000


@pytest.mark.parametrize(
    "request_body",
    [
        {"messages": [{"role": "user", "content": "x" * 40_000}] * 200},  # 8 MB of messages
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "p"}] * 5_000}]},
        {"tools": [{"type": "function", "function": {"name": f"f{i}"}} for i in range(5_000)]},
    ],
    ids=["long-messages", "many-content-parts", "many-tools"],
)
def test_list_shaped_inputs_are_bounded(request_body: dict[str, Any]) -> None:
    span = span_or_error(record_line(request=request_body))
    assert isinstance(span, ReadableSpan)
    attributes = span.attributes or {}
    assert len(attributes) <= OPTIONS.max_attributes
    assert len(encode_spans([span]).SerializeToString()) < 1_200_000
    assert attributes["portkey.ingest.truncated"]


def test_span_size_cap_is_configurable_and_cuts_the_longest_values() -> None:
    options = ConversionOptions(project=PROJECT, max_span_bytes=20_000)
    messages = [{"role": "user", "content": "x" * 30_000}, {"role": "user", "content": "short"}]
    got = attributes_of(record_line(request={"messages": messages}), options)
    assert got["llm.input_messages.1.message.content"] == "short"
    assert got["llm.input_messages.0.message.content"].endswith("chars]")
    assert sum(len(v) for v in got.values() if isinstance(v, str)) < 20_000
    assert any("span size cap" in cut for cut in got["portkey.ingest.truncated"])


def test_attribute_cap_keeps_the_most_recent_messages_renumbered() -> None:
    options = ConversionOptions(project=PROJECT, max_attributes=60)
    messages = [{"role": "user", "content": f"m{i}"} for i in range(100)]
    got = attributes_of(record_line(request={"messages": messages}), options)
    assert len(got) <= 60
    contents = [v for k, v in got.items() if k.startswith("llm.input_messages.")
                and k.endswith(".content")]  # fmt: skip
    assert contents[-1] == "m99" and got["llm.input_messages.0.message.content"] == contents[0]
    assert any("attribute cap" in cut for cut in got["portkey.ingest.truncated"])


def test_content_parts_beyond_the_cap_leave_a_visible_marker() -> None:
    parts = [{"type": "text", "text": f"p{i}"} for i in range(250)]
    got = attributes_of(record_line(request={"messages": [{"role": "user", "content": parts}]}))
    prefix = "llm.input_messages.0.message.contents"
    assert got[f"{prefix}.199.message_content.text"] == "p199"
    assert got[f"{prefix}.200.message_content.text"] == "…[50 more content parts omitted]"
    assert f"{prefix}.201.message_content.text" not in got
