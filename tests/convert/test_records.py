"""Tolerant parsing of one Portkey log: every field shape DESIGN.md lists, and the fatal cases."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.convert.records import (
    ENRICHMENT_FIELDS,
    EXPORT_FIELDS,
    LogRecord,
    RecordError,
    parse_record,
)

UTC = UTC
WHEN = datetime(2026, 7, 25, 11, 14, 18, tzinfo=UTC)
ISO = "2026-07-25T11:14:18Z"

# Raw export name -> LogRecord attribute, where they differ.
ATTRIBUTE = {"response_time": "response_time_ms", "response_status_code": "status_code"}
OPTIONAL_FIELDS = (
    tuple(f for f in EXPORT_FIELDS if f not in ("id", "created_at")) + ENRICHMENT_FIELDS
)


def parse(**fields: Any) -> LogRecord:
    """A minimal valid log plus `fields` (which may override id and created_at)."""
    return parse_record({"id": "log-1", "created_at": ISO, **fields})


def warned(record: LogRecord, name: str) -> list[str]:
    return [w for w in record.warnings if w.startswith(f"{name}:")]


def coerced(record: LogRecord, name: str) -> list[str]:
    return [c for c in record.coercions if c.startswith(f"{name}:")]


# ---- created_at ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-07-25T11:14:18Z", WHEN),
        ("2026-07-25T11:14:18z", WHEN),
        ("2026-07-25T11:14:18+00:00", WHEN),
        ("2026-07-25T13:14:18+02:00", WHEN),
        ("2026-07-25T04:14:18-07:00", WHEN),
        ("2026-07-25T11:14:18.123Z", WHEN.replace(microsecond=123000)),
        ("2026-07-25T11:14:18.123456+00:00", WHEN.replace(microsecond=123456)),
        ("  2026-07-25T11:14:18Z  ", WHEN),
    ],
)
def test_iso_8601_with_a_zone_is_converted_to_utc(value: str, expected: datetime) -> None:
    record = parse(created_at=value)
    assert record.created_at == expected
    assert record.created_at.tzinfo is UTC
    assert coerced(record, "created_at") == []


@pytest.mark.parametrize("value", ["2026-07-25T11:14:18", "2026-07-25 11:14:18"])
def test_iso_8601_without_a_zone_is_read_as_utc_and_noted(value: str) -> None:
    record = parse(created_at=value)
    assert record.created_at == WHEN
    assert record.created_at.tzinfo is UTC
    assert record.coercions == ("created_at:no-timezone->UTC",)


@pytest.mark.parametrize(
    "value",
    [
        "Sat Jul 25 2026 11:14:18 GMT+0000 (Coordinated Universal Time)",
        "Sat Jul 25 2026 13:14:18 GMT+0200 (Central European Summer Time)",
        "Sat Jul 25 2026 04:14:18 GMT-0700 (Pacific Daylight Time)",
        "Sat Jul 25 2026 16:44:18 GMT+0530 (India Standard Time)",
        "Sun Jul 26 2026 01:14:18 GMT+1400 (Line Islands Time)",
        "Sat Jul 25 2026 11:14:18 GMT+0000",
    ],
)
def test_javascript_date_string_is_converted_to_utc(value: str) -> None:
    record = parse(created_at=value)
    assert record.created_at == WHEN
    assert record.created_at.tzinfo is UTC


def test_epoch_seconds_and_milliseconds_give_the_same_instant() -> None:
    seconds = int(WHEN.timestamp())
    for value, expected in [
        (seconds, WHEN),
        (float(seconds) + 0.5, WHEN.replace(microsecond=500000)),
        (seconds * 1000, WHEN),
        (seconds * 1000 + 250, WHEN.replace(microsecond=250000)),
    ]:
        record = parse(created_at=value)
        assert record.created_at == expected, value
        assert record.created_at.tzinfo is UTC
        assert record.coercions == ("created_at:epoch->datetime",)


# ---- is_success ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected", "note"),
    [
        (True, True, None),
        (False, False, None),
        (1, True, "is_success:number->bool"),
        (0, False, "is_success:number->bool"),
        ("true", True, "is_success:string->bool"),
        ("TRUE ", True, "is_success:string->bool"),
        ("false", False, "is_success:string->bool"),
        ("1", True, "is_success:string->bool"),
        ("0", False, "is_success:string->bool"),
    ],
)
def test_is_success_shapes(value: Any, expected: bool, note: str | None) -> None:
    record = parse(is_success=value)
    assert record.is_success is expected
    assert record.coercions == ((note,) if note else ())
    assert record.warnings == ()


@pytest.mark.parametrize("value", [2, -1, "maybe", [True], {"ok": True}])
def test_is_success_that_is_not_a_boolean_is_dropped_with_a_warning(value: Any) -> None:
    record = parse(is_success=value)
    assert record.is_success is None
    assert len(warned(record, "is_success")) == 1


# ---- metadata -----------------------------------------------------------------------


def test_metadata_object_is_kept_as_is() -> None:
    record = parse(metadata={"_user": "u1", "env": "prod", "n": 3})
    assert record.metadata == {"_user": "u1", "env": "prod", "n": 3}
    assert record.coercions == () and record.warnings == ()


def test_metadata_json_string_is_decoded_and_noted() -> None:
    record = parse(metadata='{"_user": "u1", "env": "prod"}')
    assert record.metadata == {"_user": "u1", "env": "prod"}
    assert record.coercions == ("metadata:json-string->object",)
    assert record.warnings == ()


def test_metadata_invalid_json_string_becomes_empty_with_a_warning() -> None:
    record = parse(metadata="{_user: u1")
    assert record.metadata == {}
    [warning] = warned(record, "metadata")
    assert "not valid JSON" in warning and "{_user: u1" in warning


@pytest.mark.parametrize("value", ["[1, 2]", '"text"', "42", [1, 2], 42, True])
def test_metadata_that_is_not_an_object_becomes_empty_with_a_warning(value: Any) -> None:
    record = parse(metadata=value)
    assert record.metadata == {}
    [warning] = warned(record, "metadata")
    assert "not a JSON object" in warning


def test_dropped_metadata_json_array_string_is_not_counted_as_a_coercion() -> None:
    record = parse(metadata="[1, 2]")
    assert record.metadata == {}
    assert coerced(record, "metadata") == []


# ---- request / response -------------------------------------------------------------


@pytest.mark.parametrize("name", ["request", "response"])
def test_body_object_and_list_are_kept_as_is(name: str) -> None:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    assert getattr(parse(**{name: body}), name) == body
    assert getattr(parse(**{name: [1, "a"]}), name) == [1, "a"]
    assert parse(**{name: body}).coercions == ()


@pytest.mark.parametrize("name", ["request", "response"])
def test_body_json_string_is_decoded_and_noted(name: str) -> None:
    body = {"model": "gpt-4o", "choices": [{"message": {"content": "hello"}}]}
    record = parse(**{name: json.dumps(body)})
    assert getattr(record, name) == body
    assert record.coercions == (f"{name}:json-string->object",)


@pytest.mark.parametrize("name", ["request", "response"])
@pytest.mark.parametrize("text", ["upstream timed out", "{not json", "42", '"quoted"'])
def test_body_plain_text_is_kept_as_text_and_noted(name: str, text: str) -> None:
    record = parse(**{name: text})
    assert getattr(record, name) == text
    assert record.coercions == (f"{name}:kept-as-text",)
    assert record.warnings == ()


@pytest.mark.parametrize("name", ["request", "response"])
@pytest.mark.parametrize("value", [42, True])
def test_body_scalar_is_dropped_with_a_warning(name: str, value: Any) -> None:
    record = parse(**{name: value})
    assert getattr(record, name) is None
    assert len(warned(record, name)) == 1


# ---- missing values -----------------------------------------------------------------


@pytest.mark.parametrize("name", OPTIONAL_FIELDS)
@pytest.mark.parametrize("shape", ["null", "empty", "blank", "absent"])
def test_missing_optional_field_is_none_without_notes(name: str, shape: str) -> None:
    raw: dict[str, Any] = {"id": "log-1", "created_at": ISO}
    if shape != "absent":
        raw[name] = {"null": None, "empty": "", "blank": "   "}[shape]
    record = parse_record(raw)
    expected: Any = {} if name == "metadata" else None
    assert getattr(record, ATTRIBUTE.get(name, name)) == expected
    assert record.coercions == () and record.warnings == ()


# ---- numbers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("req_units", 12, 12.0),
        ("res_units", 30.0, 30.0),
        ("total_units", 0, 0.0),
        ("cost", 0.15, 0.15),
        ("response_time", 523, 523.0),
    ],
)
def test_numbers_are_kept_without_notes(name: str, value: Any, expected: float) -> None:
    record = parse(**{name: value})
    assert getattr(record, ATTRIBUTE.get(name, name)) == expected
    assert record.coercions == () and record.warnings == ()


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("req_units", "12", 12.0),
        ("res_units", " 30 ", 30.0),
        ("total_units", "42.0", 42.0),
        ("cost", "0.15", 0.15),
        ("response_time", "523", 523.0),
    ],
)
def test_numbers_as_strings_are_converted_and_noted(name: str, value: str, expected: float) -> None:
    record = parse(**{name: value})
    assert getattr(record, ATTRIBUTE.get(name, name)) == expected
    assert record.coercions == (f"{name}:string->number",)
    assert record.warnings == ()


@pytest.mark.parametrize("name", ["req_units", "res_units", "total_units", "cost", "response_time"])
@pytest.mark.parametrize(
    "value", [-1, -0.5, "-3", float("nan"), float("inf"), "NaN", "Infinity", "abc", True, [1]]
)
def test_negative_or_non_finite_or_non_numbers_are_dropped_with_a_warning(
    name: str, value: Any
) -> None:
    record = parse(**{name: value})
    assert getattr(record, ATTRIBUTE.get(name, name)) is None
    assert len(warned(record, name)) == 1
    assert warned(record, name)[0].endswith("value ignored")


def test_negative_cost_warning_names_the_value() -> None:
    [warning] = parse(cost=-1).warnings
    assert warning == "cost: not a finite, non-negative number (-1); value ignored"


@pytest.mark.parametrize(
    ("value", "coercions"),
    [
        (200, ()),
        (200.0, ()),
        ("200", ("response_status_code:string->number",)),
        (" 429 ", ("response_status_code:string->number",)),
    ],
)
def test_response_status_code_becomes_an_integer(value: Any, coercions: tuple[str, ...]) -> None:
    record = parse(response_status_code=value)
    assert record.status_code == int(float(value))
    assert type(record.status_code) is int
    assert record.coercions == coercions


@pytest.mark.parametrize("value", [200.5, "2xx", -200])
def test_response_status_code_that_is_not_a_whole_number_is_dropped(value: Any) -> None:
    record = parse(response_status_code=value)
    assert record.status_code is None
    assert len(warned(record, "response_status_code")) == 1


def test_integer_too_large_for_a_float_is_dropped_with_a_warning() -> None:
    line = '{"id": "log-1", "created_at": "' + ISO + '", "cost": 1' + "0" * 400 + "}"
    raw = json.loads(line)  # valid JSON: Python reads it as an exact int
    record = parse_record(raw)
    assert record.cost is None
    assert len(warned(record, "cost")) == 1


# ---- text fields, enrichment extras, ids --------------------------------------------


def test_text_fields_are_stripped_and_numbers_become_text_with_a_note() -> None:
    record = parse(ai_model="  gpt-4o ", ai_org="openai", prompt_slug=7, mode={"x": 1})
    assert record.ai_model == "gpt-4o"
    assert record.ai_org == "openai"
    assert record.prompt_slug == "7"
    assert record.coercions == ("prompt_slug:number->string",)
    assert record.mode is None
    assert len(warned(record, "mode")) == 1


def test_all_twenty_export_fields_land_on_the_record() -> None:
    raw = {
        "id": "log-1",
        "trace_id": "tr-1",
        "created_at": ISO,
        "request": {"model": "gpt-4o"},
        "response": {"id": "chatcmpl-1"},
        "is_success": True,
        "ai_org": "openai",
        "ai_model": "gpt-4o",
        "req_units": 10,
        "res_units": 5,
        "total_units": 15,
        "request_url": "https://api.openai.com/v1/chat/completions",
        "cost": 0.02,
        "cost_currency": "USD",
        "response_time": 812,
        "response_status_code": 200,
        "mode": "single",
        "config": "pc-abc",
        "prompt_slug": "pp-greet",
        "metadata": {"_user": "u1"},
    }
    assert set(raw) == set(EXPORT_FIELDS)
    record = parse_record(raw)
    for name in EXPORT_FIELDS:
        attribute = {"id": "log_id"}.get(name, ATTRIBUTE.get(name, name))
        value = getattr(record, attribute)
        assert value == (WHEN if name == "created_at" else raw[name]), name
    assert record.coercions == () and record.warnings == ()


def test_enrichment_extras_are_used_when_present() -> None:
    record = parse(
        cache_status="HIT",
        span_id="sp-2",
        parent_span_id="sp-1",
        span_name="agent.step",
        retry_success_count="2",
        last_used_option_index=0,
        virtual_key="openai-prod-1a2b",
    )
    assert record.cache_status == "HIT"
    assert record.span_id == "sp-2"
    assert record.parent_span_id == "sp-1"
    assert record.span_name == "agent.step"
    assert record.retry_success_count == 2
    assert record.last_used_option_index == 0
    assert record.virtual_key == "openai-prod-1a2b"
    assert record.coercions == ("retry_success_count:string->number",)


def test_enrichment_extras_are_none_when_absent() -> None:
    record = parse()
    assert all(getattr(record, name) is None for name in ENRICHMENT_FIELDS)


def test_underscore_id_is_accepted_as_the_log_id() -> None:
    assert parse_record({"_id": "log-9", "created_at": ISO}).log_id == "log-9"
    assert parse_record({"id": "", "_id": "log-9", "created_at": ISO}).log_id == "log-9"


def test_id_wins_over_underscore_id() -> None:
    assert parse_record({"id": "log-1", "_id": "log-9", "created_at": ISO}).log_id == "log-1"


def test_id_is_stripped_and_a_numeric_id_is_noted() -> None:
    assert parse(id="  log-1\n").log_id == "log-1"
    record = parse(id=12345)
    assert record.log_id == "12345"
    assert record.coercions == ("id:number->string",)


# ---- fatal cases --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "kind"),
    [([], "array"), ("text", "string"), (5, "number"), (None, "null"), (True, "boolean")],
)
def test_not_an_object_is_a_record_error(raw: Any, kind: str) -> None:
    with pytest.raises(RecordError) as caught:
        parse_record(raw)
    assert str(caught.value) == f"line is JSON but not an object (got {kind})"


@pytest.mark.parametrize(
    "raw",
    [
        {"created_at": ISO},
        {"id": None, "created_at": ISO},
        {"id": "", "created_at": ISO},
        {"id": "   ", "created_at": ISO},
        {"_id": "", "created_at": ISO},
    ],
    ids=["absent", "null", "empty", "blank", "empty-underscore-id"],
)
def test_no_id_or_empty_id_is_a_record_error(raw: dict[str, Any]) -> None:
    with pytest.raises(RecordError) as caught:
        parse_record(raw)
    assert str(caught.value) == "no log id: field 'id' is missing or empty"


@pytest.mark.parametrize(
    "raw",
    [{"id": "log-1"}, {"id": "log-1", "created_at": None}, {"id": "log-1", "created_at": "  "}],
    ids=["absent", "null", "blank"],
)
def test_no_created_at_is_a_record_error(raw: dict[str, Any]) -> None:
    with pytest.raises(RecordError) as caught:
        parse_record(raw)
    assert str(caught.value) == "no usable timestamp: field 'created_at' is missing or empty"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("yesterday", re.escape("'yesterday' is neither ISO-8601 nor a JavaScript date string")),
        ("2026-13-45T00:00:00Z", re.escape("is neither ISO-8601 nor a JavaScript date string")),
        ("Sat Foo 25 2026 11:14:18 GMT+0000", re.escape("is not a valid date")),
        ("Sat Feb 30 2026 11:14:18 GMT+0000", re.escape("is not a valid date")),
        ({"$date": ISO}, "created_at is an? object$"),
        ([ISO], "created_at is an? array$"),
        (1e20, re.escape("created_at 1e+20 is out of range")),
        (float("nan"), re.escape("is out of range")),
    ],
)
def test_unparseable_created_at_is_a_record_error(value: Any, reason: str) -> None:
    with pytest.raises(RecordError) as caught:
        parse(created_at=value)
    message = str(caught.value)
    assert message.startswith("no usable timestamp: ")
    assert re.search(reason, message), message


@pytest.mark.parametrize("value", [True, False])
def test_boolean_created_at_is_a_record_error(value: bool) -> None:
    with pytest.raises(RecordError) as caught:
        parse(created_at=value)
    assert str(caught.value) == f"no usable timestamp: created_at is a boolean ({value})"


@pytest.mark.parametrize(
    "value",
    [
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        "Mon Jan 01 0001 00:00:00 GMT+0100",
        "Fri Dec 31 9999 23:59:59 GMT-0100",
    ],
)
def test_created_at_outside_the_calendar_in_utc_is_a_record_error(value: str) -> None:
    with pytest.raises(RecordError, match="no usable timestamp"):
        parse(created_at=value)


@pytest.mark.parametrize("name", ["request", "response", "metadata"])
def test_deeply_nested_json_string_in_a_body_does_not_crash(name: str) -> None:
    text = "[" * 100_000
    record = parse(**{name: text})
    assert getattr(record, name) in (text, None, {})
    assert coerced(record, name) or warned(record, name)


# ---- properties ---------------------------------------------------------------------

# Integers stay within float range here: larger ones are the known crash tested above.
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats()  # json.loads yields NaN and +-Infinity too
    | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
# A field holds a JSON value, or that value encoded as a JSON string (as some exports do).
field_values = json_values | json_values.map(json.dumps)

offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
# Years where every offset stays inside the calendar (the edges are the known crash above).
instants = st.datetimes(
    min_value=datetime(1974, 1, 1), max_value=datetime(2200, 1, 1), timezones=offsets
)
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def js_date(moment: datetime) -> str:
    """`Date.prototype.toString()` as a browser or Node prints it, for `moment`'s offset."""
    minutes = int(moment.utcoffset().total_seconds() // 60)  # type: ignore[union-attr]
    sign = "+" if minutes >= 0 else "-"
    hh, mm = divmod(abs(minutes), 60)
    return (
        f"{_DAYS[moment.weekday()]} {_MONS[moment.month - 1]} {moment.day:02d} {moment.year} "
        f"{moment:%H:%M:%S} GMT{sign}{hh:02d}{mm:02d} (Some Local Time)"
    )


valid_created_at = (
    instants.map(datetime.isoformat)
    | instants.map(js_date)
    | instants.map(lambda m: int(m.timestamp()))
    | instants.map(lambda m: int(m.timestamp() * 1000))
)
valid_ids = st.text(min_size=1, max_size=20).filter(str.strip) | st.integers(0, 2**63)

optional_fields = {name: field_values for name in (*OPTIONAL_FIELDS, "_id")}
export_dicts = st.fixed_dictionaries(
    {},
    optional={
        **optional_fields,
        "id": valid_ids | field_values,
        "created_at": valid_created_at | field_values,
    },
)
valid_dicts = st.fixed_dictionaries(
    {"id": valid_ids, "created_at": valid_created_at}, optional=optional_fields
)
FAST = settings(max_examples=200, deadline=None)


def assert_well_formed(record: LogRecord) -> None:
    assert isinstance(record.log_id, str) and record.log_id.strip() == record.log_id != ""
    assert record.created_at.tzinfo is UTC
    assert isinstance(record.metadata, dict)


@FAST
@given(json_values | export_dicts)
def test_any_json_value_is_a_record_or_a_record_error(raw: Any) -> None:
    try:
        record = parse_record(raw)
    except RecordError as exc:
        assert str(exc)  # a quarantined line always carries a reason
    else:
        assert_well_formed(record)


@FAST
@given(valid_dicts)
def test_valid_id_and_created_at_are_never_rejected_whatever_else_the_log_holds(
    raw: dict[str, Any],
) -> None:
    record = parse_record(raw)
    assert_well_formed(record)
    assert record.log_id == str(raw["id"]).strip()


@FAST
@given(instants)
def test_every_created_at_shape_gives_the_same_instant(moment: datetime) -> None:
    whole = moment.replace(microsecond=0)
    assert parse(created_at=moment.isoformat()).created_at == moment
    assert parse(created_at=js_date(whole)).created_at == whole
    assert parse(created_at=int(whole.timestamp())).created_at == whole
    assert parse(created_at=int(whole.timestamp()) * 1000).created_at == whole
    assert parse(created_at=moment.isoformat()).created_at.tzinfo is UTC


def test_an_id_that_is_an_object_is_named_as_such() -> None:
    with pytest.raises(RecordError, match="no usable log id: field 'id' is an object"):
        parse_record({"id": {"nested": 1}, "created_at": "2026-07-25T11:14:18Z"})


# ---- both vocabularies (issue 23, item 1) ---------------------------------------------------

SPEC_TO_DOCS = {"ai_org": "ai_provider", "req_units": "request_tokens",
                "res_units": "response_tokens", "total_units": "total_tokens",
                "response_status_code": "status_code"}  # fmt: skip


def test_a_line_in_the_docs_vocabulary_gets_the_same_record_as_in_the_spec_one() -> None:
    spec = {"ai_org": "openai", "req_units": 24, "res_units": 31, "total_units": 55,
            "response_status_code": 429}  # fmt: skip
    docs = {SPEC_TO_DOCS[name]: value for name, value in spec.items()}
    assert parse(**docs) == parse(**spec)
    record = parse(**docs)
    assert (record.ai_org, record.req_units, record.status_code) == ("openai", 24, 429)
    assert record.warnings == ()


@pytest.mark.parametrize(("spec", "docs", "spec_value", "docs_value"), [
    ("ai_org", "ai_provider", "openai", "azure-openai"),
    ("req_units", "request_tokens", 10, 12),
    ("res_units", "response_tokens", 3, 4),
    ("total_units", "total_tokens", 13, 16),
    ("response_status_code", "status_code", 200, 500),
])  # fmt: skip
def test_when_both_names_disagree_the_spec_wins_and_the_record_says_so(
    spec: str, docs: str, spec_value: Any, docs_value: Any
) -> None:
    record = parse(**{spec: spec_value, docs: docs_value})
    attribute = ATTRIBUTE.get(spec, spec)
    assert getattr(record, attribute) == spec_value
    [note] = record.warnings
    assert note == f"{spec} {spec_value!r} and {docs} {docs_value!r} disagree; {spec} kept"
    agreeing = parse(**{spec: spec_value, docs: spec_value})
    assert agreeing.warnings == () and getattr(agreeing, attribute) == spec_value


def test_an_empty_spec_field_falls_back_to_the_docs_name() -> None:
    record = parse(ai_org="", ai_provider="anthropic", req_units=None, request_tokens="7")
    assert (record.ai_org, record.req_units) == ("anthropic", 7)
    assert record.warnings == ()


# ---- bounded ids and keys (issue 21, item 4) ------------------------------------------------


def test_an_id_over_256_characters_becomes_its_stable_digest_with_a_warning() -> None:
    huge = "x" * 200_000
    record = parse(id=huge, trace_id=huge + "t", span_id="s" * 300, parent_span_id="p" * 256)
    digest = "sha256:" + hashlib.sha256(huge.encode()).hexdigest()
    assert record.log_id == digest and len(record.log_id) == 71
    assert parse(id=huge).log_id == digest  # stable: the same span on every run
    assert record.trace_id.startswith("sha256:") and record.trace_id != digest
    assert record.span_id.startswith("sha256:")
    assert record.parent_span_id == "p" * 256  # 256 is still allowed
    assert warned(record, "id") == [
        f"id: 200,000 characters, over 256; replaced by its digest {digest}"
    ]
    assert len(record.warnings) == 3 and max(len(w) for w in record.warnings) < 200


def test_a_metadata_key_over_256_characters_is_cut_and_told_apart() -> None:
    one, two = "k" * 1_000_000 + "a", "k" * 1_000_000 + "b"
    record = parse(metadata={one: 1, two: 2, "env": "prod"})
    keys = list(record.metadata)
    assert keys[2] == "env" and len(set(keys)) == 3
    assert all(len(key) <= 256 for key in keys)
    assert keys[0].startswith("k" * 200) and keys[0].endswith("]")
    assert parse(metadata={one: 1}).metadata == {keys[0]: 1}  # stable
    assert warned(record, "metadata") == ["metadata: 2 key(s) over 256 characters cut"]
