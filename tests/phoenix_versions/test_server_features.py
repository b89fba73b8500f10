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
from ingest.phoenix.compat_reads import stored_by_query, stored_in_window
from ingest.phoenix.local_server import LocalPhoenix
from tests.conftest import OLDEST_PHOENIX


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
