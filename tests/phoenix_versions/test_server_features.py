"""Feature detection and the window read against real servers: the newest Phoenix and the
oldest supported one (installed by tests/phoenix_versions/install.sh)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from ingest.convert.records import parse_record
from ingest.convert.spans import ConversionOptions, make_resource, to_span
from ingest.errors import ConfigError
from ingest.phoenix import capabilities as caps
from ingest.phoenix.admin import guards
from ingest.phoenix.admin.local_server import LocalPhoenix
from ingest.phoenix.admin.models import ModelSpec, ModelTable
from ingest.phoenix.api import PhoenixSettings
from ingest.phoenix.reader import GetJson, SpanReader, StartRange, spans_in_window, stored_by_query
from tests.conftest import OLDEST_PHOENIX, run_cli


def stored_in_window(
    get_json: GetJson, project: str, span_ids: list[str], window: StartRange
) -> set[str]:
    """Which of `span_ids` Phoenix has stored, read from their start-time window."""
    found = spans_in_window(get_json, project, span_ids, window)
    return {str(span.get("context", {}).get("span_id", "")) for span in found}


def _get_text(url: str) -> Any:
    def get_text(path: str) -> str | None:
        answer = requests.get(f"{url}{path}", timeout=30)
        return answer.text if answer.ok else None

    return get_text


def _get_json(url: str) -> Any:
    def get_json(path: str, params: Sequence[tuple[str, str]]) -> Any:
        answer = requests.get(f"{url}{path}", params=list(params), timeout=30)
        if answer.status_code == 404:
            return None
        answer.raise_for_status()
        return answer.json()

    return get_json


def test_detect_reads_the_servers_version(
    any_phoenix: LocalPhoenix, request: pytest.FixtureRequest
) -> None:
    features = caps.detect(_get_text(any_phoenix.url))
    if request.node.callspec.params["any_phoenix"] == "oldest":
        assert features.found() == OLDEST_PHOENIX
        assert not features.supports(caps.SPAN_READ_BY_ID)
        assert not features.supports(caps.TRACE_WINDOW_DELETE)
    else:
        assert features.version is not None and features.version >= caps.NEWEST_TESTED
        assert all(supported for _, supported in features.summary())


def test_window_delete_is_refused_on_the_oldest_server(phoenix_oldest: LocalPhoenix) -> None:
    features = caps.detect(_get_text(phoenix_oldest.url))
    with pytest.raises(ConfigError) as refused:
        caps.require(features, caps.TRACE_WINDOW_DELETE, phoenix_oldest.url)
    assert str(refused.value) == (
        "Deleting a project's traces by time window (DELETE /v1/projects/{id}/traces) needs "
        f"Phoenix 20.6.0 or newer, but the Phoenix server at {phoenix_oldest.url} is version "
        f"{OLDEST_PHOENIX}. Upgrade Phoenix, or delete the traces in the Phoenix UI, then run "
        "the command again."
    )
    # ...and the server agrees: the route is not there.
    answer = requests.delete(
        f"{phoenix_oldest.url}/v1/projects/default/traces",
        params={"start_time": "2020-01-01T00:00:00+00:00", "end_time": "2020-01-01T00:00:00+00:00"},
        timeout=30,
    )
    assert answer.status_code == 405


def _post_text(url: str) -> Any:
    def post_text(path: str, params: Sequence[tuple[str, str]], body: Any) -> str | None:
        answer = requests.post(
            f"{url}{path}",
            params=list(params),
            headers={"accept": "application/json"},
            json=body,
            timeout=30,
        )
        if answer.status_code == 404:
            return None
        answer.raise_for_status()
        return answer.text

    return post_text


def test_window_and_query_reads_find_exactly_the_stored_ids(
    any_phoenix: LocalPhoenix, project: str
) -> None:
    base = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
    options, resource = ConversionOptions(project=project), make_resource(project)
    records = [
        {
            "id": f"log-{n}-{secrets.token_hex(3)}",
            "created_at": (base + timedelta(seconds=n)).isoformat(),
            "request": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
            "response": {"choices": [{"message": {"role": "assistant", "content": "yo"}}]},
        }
        for n in range(30)
    ]
    spans = [to_span(parse_record(record), options, resource) for record in records]
    ids = [format(span.context.span_id, "016x") for span in spans]
    exporter = OTLPSpanExporter(endpoint=f"{any_phoenix.url}/v1/traces", timeout=30)
    assert exporter.export(spans[:20]) is SpanExportResult.SUCCESS  # the last 10: never sent
    window = (base, base + timedelta(seconds=29))
    get_json = _get_json(any_phoenix.url)
    deadline = time.monotonic() + 30
    while (found := stored_in_window(get_json, project, ids, window)) != set(ids[:20]):
        assert time.monotonic() < deadline, f"{len(found)} of 20 spans found"
        time.sleep(0.5)
    # the window bounds the read: the first span only, when asked about its own second
    first = (base, base)
    assert stored_in_window(get_json, project, ids, first) == {ids[0]}
    assert stored_by_query(_post_text(any_phoenix.url), project, ids, window) == set(ids[:20])
    assert stored_by_query(_post_text(any_phoenix.url), project, ids, first) == {ids[0]}
    assert stored_by_query(_post_text(any_phoenix.url), "no-such-project", ids, window) == set()


def test_doctor_names_the_version_and_the_features_the_oldest_server_lacks(
    phoenix_oldest: LocalPhoenix,
) -> None:
    result = run_cli("doctor", env={"PHOENIX_COLLECTOR_ENDPOINT": phoenix_oldest.url})
    lines = {line.split("  ")[0]: line for line in result.stdout.splitlines()}
    version = next(line for line in result.stdout.splitlines() if "Phoenix version" in line)
    assert version.split() == ["OK", "Phoenix", "version", OLDEST_PHOENIX, "(supported:",
                               OLDEST_PHOENIX, "to", "20.26.1)"], lines  # fmt: skip
    features = next(line for line in result.stdout.splitlines() if "Phoenix features" in line)
    assert "supported: span delete, trace delete, span annotations, span query dsl" in features
    assert (
        "not on this server: span read by id (needs 19.6.0: `check` reads the logs' time "
        "window instead); trace window delete (needs 20.6.0: delete the traces in the Phoenix "
        "UI, then run the command again)"
    ) in features


def test_custom_prices_work_on_the_oldest_server(phoenix_oldest: LocalPhoenix) -> None:
    table = ModelTable(PhoenixSettings(endpoint=phoenix_oldest.url))
    before = table.list()
    assert any(not model.custom for model in before), "the built-in models are listed"
    name = f"compat-model-{secrets.token_hex(3)}"
    spec = ModelSpec(name, "compat", f"^{name}$", None, {"input": 1.5, "output": 6.0})
    model_id = table.create(spec, {"input": True, "output": False})
    mine = [model for model in table.list() if model.id == model_id]
    assert [(m.name, m.custom, m.prices) for m in mine] == [
        (name, True, {"input": 1.5, "output": 6.0})
    ]
    table.delete(model_id)
    assert model_id not in {model.id for model in table.list()}


def test_a_server_without_the_models_api_is_refused_by_version() -> None:
    features = caps.ServerFeatures((12, 0, 0), "12.0.0")
    with pytest.raises(ConfigError) as refused:
        caps.require(features, caps.CUSTOM_MODEL_PRICES, "http://phoenix:6006")
    assert str(refused.value) == (
        "Custom model prices (the GraphQL models API: generativeModels, createModel) needs "
        "Phoenix 12.18.0 or newer, but the Phoenix server at http://phoenix:6006 is version "
        "12.0.0. Upgrade Phoenix, or add the prices in the Phoenix UI (Settings > Models)."
    )


def test_backfill_on_the_oldest_server_reads_its_retention_policy(
    phoenix_oldest: LocalPhoenix, project: str
) -> None:
    settings = PhoenixSettings(endpoint=phoenix_oldest.url, project=project)
    since = datetime(2020, 1, 1, tzinfo=UTC)
    # the default policy keeps traces forever: no warning, no refusal, no "older" note
    assert guards.check_backfill(settings, since, since + timedelta(days=1), False) == []


def test_retention_guard_is_skipped_with_a_note_without_retention_policies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    old = caps.ServerFeatures((12, 0, 0), "12.0.0")
    monkeypatch.setattr(guards, "server_features", lambda settings: old)
    settings = PhoenixSettings(endpoint="http://127.0.0.1:9", project="p")
    since = datetime(2020, 1, 1, tzinfo=UTC)
    assert guards.check_backfill(settings, since, since + timedelta(days=1), False) == [
        "Phoenix at http://127.0.0.1:9 is version 12.0.0; this tool supports Phoenix 12.18.0 "
        "to 20.26.1. Older servers may lack annotations or the span query: upgrade Phoenix if "
        "the run fails.",
        "The retention guard (Phoenix's trace retention policies) needs Phoenix 12.18.0 or "
        "newer; Phoenix at http://127.0.0.1:9 is version 12.0.0, so it was skipped: check the "
        "project's retention in Phoenix yourself.",
    ]


def test_the_reader_names_an_older_servers_version_not_a_wrong_endpoint(
    phoenix_oldest: LocalPhoenix,
) -> None:
    reader = SpanReader(PhoenixSettings(endpoint=phoenix_oldest.url, project="p"))
    assert reader.features.found() == OLDEST_PHOENIX
    error = reader._unexpected("HTTP 422: unprocessable")
    assert str(error) == (
        f"Phoenix {OLDEST_PHOENIX} at {phoenix_oldest.url} did not answer a span read as this "
        "tool expects (HTTP 422: unprocessable). This tool supports Phoenix 12.18.0 to 20.26.1: "
        "upgrade Phoenix if it is older, and run `doctor` to see which features it offers."
    )
    assert "PHOENIX_COLLECTOR_ENDPOINT" not in str(error)
