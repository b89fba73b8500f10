"""Routing (`--project-from`) and sampling (`--sample`): pure functions of the record."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.convert.ids import (
    MAX_PROJECT_CHARS,
    Route,
    check_project_from,
    route,
    sampled_in,
    span_id_for,
    trace_id_for,
)
from ingest.convert.records import LogRecord, parse_record
from ingest.convert.spans import ConversionOptions, make_resource, span_to_dict, to_span

BASE = {"id": "log-1", "created_at": "2026-07-01T00:00:00Z"}


def record(**fields: Any) -> LogRecord:
    return parse_record({**BASE, **fields})


def test_a_metadata_value_names_the_project_and_a_missing_one_goes_to_the_default() -> None:
    assert route(record(metadata={"app": " billing "}), "metadata.app", "prod") == Route("billing")
    assert route(record(metadata={"other": "x"}), "metadata.app", "prod") == Route("prod")
    assert route(record(), "metadata.app", "prod") == Route("prod")
    assert route(record(metadata={"app": "billing"}), None, "prod") == Route("prod")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "metadata.app is empty"),
        ("   ", "metadata.app is empty"),
        ("x" * (MAX_PROJECT_CHARS + 1), f"longer than {MAX_PROJECT_CHARS} characters"),
        ("bad\nname", "control characters"),
        ("bad\x1b[31mname", "control characters"),
        ("bad\u200ename", "control characters"),  # a format character is invisible too
        (42, "metadata.app is not text"),
    ],
)
def test_a_value_that_cannot_be_a_project_name_falls_back_with_the_reason(
    value: Any, reason: str
) -> None:
    where = route(record(metadata={"app": value}), "metadata.app", "prod")
    assert where.project == "prod"
    assert where.fallback is not None and reason in where.fallback


def test_route_only_keeps_the_listed_projects_and_sends_the_rest_to_the_default() -> None:
    only = frozenset({"billing", "search"})
    app = "metadata.app"
    assert route(record(metadata={"app": "billing"}), app, "prod", only) == Route("billing")
    # A value outside the list is no fault of the log: the default, silently, like no value
    assert route(record(metadata={"app": "rogue-42"}), app, "prod", only) == Route("prod")
    assert route(record(), app, "prod", only) == Route("prod")
    # A value that cannot be a name still says why
    assert route(record(metadata={"app": "bad\nname"}), app, "prod", only).fallback
    options = ConversionOptions(project="prod", project_from=app, route_only=only)
    assert options.route(record(metadata={"app": "search"})) == Route("search")
    assert options.destination == "prod [project from metadata.app, only billing, search]"


def test_workspace_routes_by_the_logs_workspace_slug() -> None:
    assert route(record(workspace_slug="ws-a"), "workspace", "prod") == Route("ws-a")
    assert route(record(), "workspace", "prod") == Route("prod")


@pytest.mark.parametrize("spec", ["metadata.", "meta.app", "workspaces", "", "model"])
def test_an_unknown_routing_field_is_refused_naming_what_is_accepted(spec: str) -> None:
    with pytest.raises(ValueError, match=r"use metadata\.<key>"):
        check_project_from(spec)


def test_a_routed_log_gets_the_ids_it_would_get_in_that_project_alone() -> None:
    raw = record(trace_id="t-1", metadata={"app": "billing"})
    routed = to_span(raw, ConversionOptions("prod", project_from="metadata.app"),
                     make_resource("billing"))  # fmt: skip
    alone = to_span(raw, ConversionOptions("billing"), make_resource("billing"))
    assert span_to_dict(routed) == span_to_dict(alone)
    assert routed.context.span_id == span_id_for("billing", "log-1")
    assert routed.context.trace_id == trace_id_for("billing", "t-1", "log-1")


ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=40)


@settings(max_examples=200)
@given(trace=st.one_of(st.none(), ids), log_a=ids, log_b=ids,
       rate=st.floats(min_value=0.001, max_value=1.0))  # fmt: skip
def test_sampling_keeps_or_drops_whole_traces_and_more_at_a_higher_rate(
    trace: str | None, log_a: str, log_b: str, rate: float
) -> None:
    a = parse_record({**BASE, "id": log_a, "trace_id": trace})
    b = parse_record({**BASE, "id": log_b, "trace_id": trace})
    if trace:  # one trace: one decision for all its logs
        assert sampled_in(a, rate) == sampled_in(b, rate)
    if sampled_in(a, rate):  # kept at a rate: kept at every higher rate
        assert sampled_in(a, min(1.0, rate * 1.5))
    assert sampled_in(a, 1.0)


def test_sampling_keeps_about_the_rate_and_the_same_traces_every_time() -> None:
    logs = [parse_record({**BASE, "id": f"log-{i}", "trace_id": f"t-{i}"}) for i in range(4000)]
    kept = [log.log_id for log in logs if sampled_in(log, 0.5)]
    assert 1800 < len(kept) < 2200
    assert kept == [log.log_id for log in logs if sampled_in(log, 0.5)]
    # A fixed answer: the decision never depends on the machine or the process.
    assert [sampled_in(log, 0.5) for log in logs[:8]] == EXPECTED_FIRST_EIGHT


def test_the_destination_names_the_routing_and_the_rate() -> None:
    assert ConversionOptions("prod").destination == "prod"
    routed = ConversionOptions("prod", project_from="metadata.app", sample=0.25)
    assert routed.destination == "prod [project from metadata.app, sample 0.25]"


EXPECTED_FIRST_EIGHT = [False, False, False, True, True, False, True, True]
