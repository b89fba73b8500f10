"""Feature detection from the Phoenix server's version, and the window read for old servers
(pure: the server is played by callables; tests/phoenix_versions covers real servers)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from ingest.errors import EXIT_USAGE, ConfigError
from ingest.phoenix import capabilities as caps
from ingest.phoenix.reader import GetJson, StartRange, spans_in_window, stored_by_query


def stored_in_window(
    get_json: GetJson, project: str, span_ids: list[str], window: StartRange
) -> set[str]:
    """Which of `span_ids` Phoenix has stored, read from their start-time window."""
    found = spans_in_window(get_json, project, span_ids, window)
    return {str(span.get("context", {}).get("span_id", "")) for span in found}


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("20.26.1", (20, 26, 1)),
        ("12.18.0\n", (12, 18, 0)),
        ("19.6", (19, 6, 0)),
        ("12.18.0rc1", (12, 18, 0)),
        ("v20.6.0.dev3", (20, 6, 0)),
        ("", None),
        ("<html>not phoenix</html>", None),
        (None, None),
    ],
)
def test_parse_version(text: str | None, version: tuple[int, int, int] | None) -> None:
    assert caps.parse_version(text) == version


@pytest.mark.parametrize(
    ("version", "feature", "supported"),
    [
        ((19, 5, 0), caps.SPAN_READ_BY_ID, False),
        ((19, 6, 0), caps.SPAN_READ_BY_ID, True),
        ((18, 1, 0), caps.SPAN_READ_BY_ID, False),
        ((20, 5, 0), caps.TRACE_WINDOW_DELETE, False),
        ((20, 6, 0), caps.TRACE_WINDOW_DELETE, True),
        ((12, 18, 0), caps.SPAN_DELETE, True),
        ((12, 18, 0), caps.CUSTOM_MODEL_PRICES, True),
        ((12, 18, 0), caps.RETENTION_POLICIES, True),
        ((12, 18, 0), caps.SPAN_ANNOTATIONS, True),
        ((12, 17, 0), caps.SPAN_ANNOTATIONS, False),  # older than the oldest tested
        ((21, 0, 0), caps.TRACE_WINDOW_DELETE, True),
    ],
)
def test_supports_by_version(
    version: tuple[int, int, int], feature: caps.Feature, supported: bool
) -> None:
    assert caps.ServerFeatures(version).supports(feature) is supported


def test_oldest_supported_matches_the_version_the_tests_install() -> None:
    from pathlib import Path

    oldest = Path(__file__).parent.parent / "phoenix_versions" / "oldest.txt"
    assert caps.parse_version(oldest.read_text()) == caps.OLDEST_SUPPORTED


def test_refusal_names_the_feature_the_version_needed_and_the_version_found() -> None:
    message = caps.refusal(caps.TRACE_WINDOW_DELETE, "18.1.0", "http://phoenix:6006")
    assert message == (
        "Deleting a project's traces by time window (DELETE /v1/projects/{id}/traces) needs "
        "Phoenix 20.6.0 or newer, but the Phoenix server at http://phoenix:6006 is version "
        "18.1.0. Upgrade Phoenix, or delete the traces in the Phoenix UI, then run the "
        "command again."
    )


def test_require_refuses_with_a_usage_error_and_passes_when_supported() -> None:
    old = caps.ServerFeatures((12, 18, 0), "12.18.0")
    with pytest.raises(ConfigError) as refused:
        caps.require(old, caps.TRACE_WINDOW_DELETE, "http://127.0.0.1:6006")
    assert refused.value.exit_code == EXIT_USAGE
    assert str(refused.value) == caps.refusal(
        caps.TRACE_WINDOW_DELETE, "12.18.0", "http://127.0.0.1:6006"
    )
    caps.require(caps.ServerFeatures((20, 6, 0)), caps.TRACE_WINDOW_DELETE, "http://x")


def test_refusal_of_an_unreadable_version_shows_what_the_server_said() -> None:
    features = caps.ServerFeatures(None, "dev-build", frozenset())
    with pytest.raises(ConfigError, match=r"is version unknown \('dev-build'\)\. Upgrade"):
        caps.require(features, caps.TRACE_WINDOW_DELETE, "http://x")


_OPENAPI = {
    "paths": {
        "/v1/projects/{project_identifier}/spans": {
            "get": {
                "parameters": [
                    {"name": "project_identifier", "in": "path"},
                    {"name": "start_time", "in": "query"},
                ]
            }
        },
        "/v1/spans/{span_identifier}": {"delete": {}},
    }
}


def _server(answers: dict[str, str | None]) -> Any:
    asked: list[str] = []

    def get_text(path: str) -> str | None:
        asked.append(path)
        return answers.get(path)

    get_text.asked = asked  # type: ignore[attr-defined]
    return get_text


def test_detect_reads_the_version_once_and_skips_the_openapi_document() -> None:
    get_text = _server({"/arize_phoenix_version": "18.1.0", "/openapi.json": "{}"})
    features = caps.detect(get_text)
    assert features.version == (18, 1, 0)
    assert features.found() == "18.1.0"
    assert get_text.asked == ["/arize_phoenix_version"]
    assert not features.supports(caps.SPAN_READ_BY_ID)
    assert features.supports(caps.SPAN_DELETE)


def test_detect_falls_back_to_the_openapi_routes_without_a_version() -> None:
    get_text = _server({"/arize_phoenix_version": None, "/openapi.json": json.dumps(_OPENAPI)})
    features = caps.detect(get_text)
    assert features.version is None
    assert get_text.asked == ["/arize_phoenix_version", "/openapi.json"]
    assert not features.supports(caps.SPAN_READ_BY_ID)  # no span_id query parameter
    assert not features.supports(caps.TRACE_WINDOW_DELETE)  # no such route
    assert features.supports(caps.SPAN_DELETE)
    assert features.supports(caps.CUSTOM_MODEL_PRICES)  # GraphQL: not in the document


def test_detect_without_version_or_openapi_behaves_as_with_the_newest_server() -> None:
    features = caps.detect(_server({"/openapi.json": "not json"}))
    assert features.routes is None
    assert all(supported for _, supported in features.summary())


def test_summary_lists_every_feature_in_order() -> None:
    summary = caps.ServerFeatures((18, 1, 0)).summary()
    assert [feature.key for feature, _ in summary] == [f.key for f in caps.FEATURES]
    assert dict((f.key, ok) for f, ok in summary) == {
        "span_read_by_id": False,
        "trace_window_delete": False,
        "span_delete": True,
        "trace_delete": True,
        "span_annotations": True,
        "span_query_dsl": True,
        "custom_model_prices": True,
        "retention_policies": True,
    }


# -- the window read for servers without the span_id filter ---------------------------------

WINDOW = (datetime(2025, 6, 1, 12, 0, tzinfo=UTC), datetime(2025, 6, 1, 12, 5, tzinfo=UTC))


def _span(span_id: str) -> dict[str, Any]:
    return {"context": {"span_id": span_id, "trace_id": "t" * 32}, "name": "x"}


def _pages(pages: list[dict[str, Any]] | None) -> Any:
    calls: list[tuple[str, list[tuple[str, str]]]] = []

    def get_json(path: str, params: Any) -> Any:
        calls.append((path, list(params)))
        return None if pages is None else pages[len(calls) - 1]

    get_json.calls = calls  # type: ignore[attr-defined]
    return get_json


def test_window_read_keeps_only_the_ids_asked_for_across_pages() -> None:
    get_json = _pages(
        [
            {"data": [_span("a"), _span("other1")], "next_cursor": "c1"},
            {"data": [_span("other2"), _span("b")], "next_cursor": "c2"},
            {"data": [_span("other3")], "next_cursor": None},
        ]
    )
    assert stored_in_window(get_json, "my project/x", ["a", "b", "missing"], WINDOW) == {"a", "b"}
    path, params = get_json.calls[0]
    assert path == "/v1/projects/my%20project%2Fx/spans"
    assert params == [
        ("start_time", "2025-06-01T11:59:59.999000+00:00"),
        ("end_time", "2025-06-01T12:05:00.001000+00:00"),
        ("limit", "1000"),
    ]
    assert [dict(p[1]).get("cursor") for p in get_json.calls] == [None, "c1", "c2"]


def test_window_read_stops_paging_once_every_id_is_found() -> None:
    get_json = _pages([{"data": [_span("a"), _span("b")], "next_cursor": "c1"}])
    spans = spans_in_window(get_json, "p", ["a", "b"], WINDOW)
    assert [span["context"]["span_id"] for span in spans] == ["a", "b"]
    assert len(get_json.calls) == 1


def test_window_read_of_a_missing_project_finds_nothing() -> None:
    assert stored_in_window(_pages(None), "p", ["a"], WINDOW) == set()


def test_window_read_without_ids_asks_nothing() -> None:
    get_json = _pages([])
    assert stored_in_window(get_json, "p", [], WINDOW) == set()
    assert get_json.calls == []


# -- the span query read (verification on servers without the span_id filter) ---------------


def _query_server(rows_by_call: list[list[dict[str, Any]]] | None) -> Any:
    calls: list[tuple[str, list[tuple[str, str]], dict[str, Any]]] = []

    def post_text(path: str, params: Any, body: Any) -> str | None:
        calls.append((path, list(params), body))
        if rows_by_call is None:
            return None
        table = {"schema": {"fields": []}, "data": rows_by_call[len(calls) - 1]}
        return f"--b\r\nContent-Type: application/json\r\n\r\n{json.dumps(table)}\r\n--b--\r\n"

    post_text.calls = calls  # type: ignore[attr-defined]
    return post_text


def test_query_read_asks_for_the_ids_in_the_window_and_keeps_only_those() -> None:
    post_text = _query_server([[{"0_span_id": "aa"}, {"0_span_id": "zz"}, {"0_span_id": 7}]])
    assert stored_by_query(post_text, "my project", ["bb", "aa"], WINDOW) == {"aa"}
    path, params, body = post_text.calls[0]
    assert (path, params) == ("/v1/spans", [("project_name", "my project")])
    assert body == {
        "queries": [
            {
                "select": {"span_id": {"key": "context.span_id"}},
                "filter": {"condition": "span_id in ['aa', 'bb']"},
            }
        ],
        "start_time": "2025-06-01T11:59:59.999000+00:00",
        "end_time": "2025-06-01T12:05:00.001000+00:00",
        "limit": 2,
    }


def test_query_read_chunks_long_id_lists() -> None:
    ids = [f"{n:016x}" for n in range(2500)]
    post_text = _query_server([[{"0_span_id": ids[0]}], [], [{"0_span_id": ids[-1]}]])
    assert stored_by_query(post_text, "p", ids, WINDOW) == {ids[0], ids[-1]}
    assert [body["limit"] for _, _, body in post_text.calls] == [1000, 1000, 500]


def test_query_read_of_a_missing_project_finds_nothing() -> None:
    assert stored_by_query(_query_server(None), "p", ["aa"], WINDOW) == set()
