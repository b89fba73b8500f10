"""Probe a running Phoenix server for the endpoints this tool uses; print one JSON line.

    python tests/phoenix_versions/probe.py http://127.0.0.1:6006

Writes a few spans to a fresh project and then deletes some of them: point it only at a
throw-away server. The results feed docs/phoenix-versions.md.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from opentelemetry import trace as trace_api
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import SpanContext, Status, StatusCode, TraceFlags

TIMEOUT_S = 30


def _ids(key: str) -> tuple[int, int]:
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:16], "big") or 1, int.from_bytes(digest[16:24], "big") or 1


def _span(project: Resource, key: str, start: datetime) -> ReadableSpan:
    trace_id, span_id = _ids(key)
    context = SpanContext(trace_id, span_id, False, TraceFlags(TraceFlags.SAMPLED))
    start_ns = int(start.timestamp() * 1e9)
    return ReadableSpan(
        name="ChatCompletion",
        context=context,
        resource=project,
        attributes={
            "openinference.span.kind": "LLM",
            "llm.model_name": "gpt-4o-mini",
            "llm.token_count.prompt": 10,
            "llm.token_count.completion": 5,
        },
        kind=trace_api.SpanKind.CLIENT,
        status=Status(StatusCode.OK),
        start_time=start_ns,
        end_time=start_ns + 1_000_000_000,
    )


def _status(response: requests.Response) -> str:
    return str(response.status_code)


def probe(base: str) -> dict[str, Any]:
    session = requests.Session()
    result: dict[str, Any] = {"url": base}
    result["version"] = session.get(f"{base}/arize_phoenix_version", timeout=TIMEOUT_S).text
    project = f"probe-{secrets.token_hex(3)}"
    resource = Resource.create({"openinference.project.name": project})
    t0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    spans = [_span(resource, f"{project}-{n}", t0 + timedelta(hours=n)) for n in range(4)]
    ids = [format(span.context.span_id, "016x") for span in spans]
    trace_ids = [format(span.context.trace_id, "032x") for span in spans]
    exporter = OTLPSpanExporter(endpoint=f"{base}/v1/traces", timeout=TIMEOUT_S)
    result["otlp_http_protobuf"] = exporter.export(spans) is SpanExportResult.SUCCESS

    spans_url = f"{base}/v1/projects/{project}/spans"
    deadline = time.monotonic() + 30
    listed: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        answer = session.get(spans_url, params={"limit": 100}, timeout=TIMEOUT_S)
        listed = answer.json().get("data", []) if answer.status_code == 200 else []
        if len(listed) >= len(spans):
            break
        time.sleep(0.5)
    result["get_spans"] = f"{answer.status_code}, {len(listed)}/{len(spans)} spans"
    projects = session.get(f"{base}/v1/projects", timeout=TIMEOUT_S)
    names = [p["name"] for p in projects.json().get("data", [])] if projects.ok else []
    result["get_projects"] = f"{projects.status_code}, project listed: {project in names}"

    by_id = session.get(spans_url, params={"span_id": ids[0], "limit": 100}, timeout=TIMEOUT_S)
    got = [s["context"]["span_id"] for s in by_id.json().get("data", [])] if by_id.ok else []
    # An old server ignores an unknown query parameter and answers with every span.
    result["get_spans_span_id_filter"] = f"{by_id.status_code}, honoured: {got == ids[:1]}"

    dsl = session.post(
        f"{base}/v1/spans",
        params={"project_name": project},
        headers={"accept": "application/json"},
        json={
            "queries": [
                {
                    "select": {"context.span_id": {"key": "context.span_id"}},
                    "filter": {"condition": f"span_id in {ids[:2]!r}"},
                }
            ],
            "limit": 1000,
        },
        timeout=TIMEOUT_S,
    )
    dsl_rows = sum(span_id in dsl.text for span_id in ids) if dsl.ok else 0
    result["post_spans_dsl"] = f"{dsl.status_code}, rows: {dsl_rows} (want 2)"

    annotation = session.post(
        f"{base}/v1/span_annotations",
        params={"sync": "true"},
        json={
            "data": [
                {
                    "span_id": ids[0],
                    "name": "probe",
                    "annotator_kind": "CODE",
                    "result": {"label": "ok", "score": 1.0},
                }
            ]
        },
        timeout=TIMEOUT_S,
    )
    result["post_span_annotations"] = _status(annotation)

    result.update(_graphql_probes(session, base, project))

    result["delete_span"] = _status(session.delete(f"{base}/v1/spans/{ids[1]}", timeout=30))
    result["delete_trace"] = _status(
        session.delete(f"{base}/v1/traces/{trace_ids[2]}", timeout=TIMEOUT_S)
    )
    window = session.delete(
        f"{base}/v1/projects/{project}/traces",
        params={
            "start_time": (t0 + timedelta(hours=3)).isoformat(),
            "end_time": (t0 + timedelta(hours=3, minutes=30)).isoformat(),
        },
        timeout=TIMEOUT_S,
    )
    result["delete_traces_window"] = _status(window)
    time.sleep(1)
    left = session.get(spans_url, params={"limit": 100}, timeout=TIMEOUT_S)
    remaining = sorted(s["context"]["span_id"] for s in left.json().get("data", []))
    result["spans_left_after_deletes"] = f"{len(remaining)} (want 1: {ids[0] in remaining})"
    return result


def _gql(session: requests.Session, base: str, query: str, variables: Any = None) -> str:
    answer = session.post(
        f"{base}/graphql", json={"query": query, "variables": variables or {}}, timeout=TIMEOUT_S
    )
    body = (
        answer.json()
        if answer.headers.get("content-type", "").startswith("application/json")
        else {}
    )
    if body.get("errors"):
        return f"{answer.status_code}, error: {body['errors'][0].get('message', '')[:90]}"
    return f"{answer.status_code}, ok"


def _graphql_probes(session: requests.Session, base: str, project: str) -> dict[str, str]:
    node = (
        "query($name: String!) { projects(filter: {col: name, value: $name}) "
        "{ edges { node { %s } } } }"
    )
    results = {
        "gql_recordCount": _gql(session, base, node % "recordCount", {"name": project}),
        "gql_costSummary": _gql(
            session, base, node % "costSummary { total { cost } }", {"name": project}
        ),
        "gql_generativeModels": _gql(
            session, base, "{ generativeModels { edges { node { id name } } } }"
        ),
        "gql_retention_policies": _gql(
            session, base, "{ projectTraceRetentionPolicies { edges { node { id name } } } }"
        ),
        "gql_project_retention": _gql(
            session, base, node % "traceRetentionPolicy { name }", {"name": project}
        ),
    }
    create = (
        "mutation($in: CreateModelMutationInput!) { createModel(input: $in) { model { id name } } }"
    )
    results["gql_createModel"] = _gql(
        session,
        base,
        create,
        {
            "in": {
                "name": f"probe-model-{project}",
                "provider": "probe",
                "namePattern": f"probe-model-{project}",
                "startTime": "2025-01-01T00:00:00+00:00",
                "costs": [
                    {"tokenType": "input", "costPerMillionTokens": 1.0, "kind": "PROMPT"},
                    {"tokenType": "output", "costPerMillionTokens": 2.0, "kind": "COMPLETION"},
                ],
            }
        },
    )
    return results


if __name__ == "__main__":
    print(json.dumps(probe(sys.argv[1].rstrip("/"))))
