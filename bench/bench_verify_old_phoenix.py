"""Cost of answering "which of these span ids are stored" on the oldest supported Phoenix
and on the newest, with and without the `span_id` filter (issue 15).

    python bench/bench_verify_old_phoenix.py \
        --old-venv ~/.cache/portkey-phoenix-ingest/phoenix-12.18.0 --spans 10000

Loads the same generated logs (bench/gen_logs.py, converted as the tool converts them) into a
fresh server of each version, then asks, batch by batch (consecutive logs, as a delivery
batch holds them, plus a few ids that were never sent), which ids are stored:

- `span_id filter`  GET /v1/projects/{p}/spans?span_id=...&start_time&end_time (the read by id
                    before the switch; Phoenix >= 19.6 only)
- `query DSL`       POST /v1/spans with `span_id in [...]` and the batch's start-time window
- `REST window`     GET /v1/projects/{p}/spans over the batch's start-time window, every page,
                    filtered on our side (ingest/phoenix/reader.py)
- `GraphQL`         Project.spans(timeRange, filterCondition: "span_id in [...]") { spanId }

Reports wall time and Phoenix CPU seconds (user+system, psutil) per 1,000 ids asked, and
checks each way finds exactly the stored ids.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
import gen_logs

from ingest.convert.records import parse_record
from ingest.convert.spans import ConversionOptions, make_resource, to_span
from ingest.phoenix import reader
from ingest.phoenix.admin.local_server import LocalPhoenix

Batch = tuple[list[str], tuple[datetime, datetime]]
Way = Callable[[str, str, Batch], set[str]]
TIMEOUT_S = 120


def _load(url: str, project: str, count: int, prefix: str) -> list[tuple[str, datetime]]:
    """Send `count` generated logs as spans; return (span id, start) of each, in start order."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import SpanExportResult

    options, resource = ConversionOptions(project=project), make_resource(project)
    spans = [
        to_span(parse_record(json.loads(line)), options, resource)
        for line in gen_logs.Generator(7).lines(count, "typical", prefix)
    ]
    exporter = OTLPSpanExporter(endpoint=f"{url}/v1/traces", timeout=60)
    for start in range(0, len(spans), 250):
        while exporter.export(spans[start : start + 250]) is not SpanExportResult.SUCCESS:
            time.sleep(2)
        if start % 2000 == 0:  # stay under Phoenix's queue: wait for it to drain
            common.wait_stored([url], project, start, stall_s=120)
    stored, _ = common.wait_stored([url], project, len(spans), stall_s=120)
    if stored < len(spans):
        raise SystemExit(f"{url}: only {stored} of {len(spans)} spans stored")
    found = [(format(s.context.span_id, "016x"), _when(s.start_time or 0)) for s in spans]
    return sorted(found, key=lambda pair: pair[1])


def _when(ns: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ns // 1000)


def _batches(stored: list[tuple[str, datetime]], size: int, count: int) -> list[Batch]:
    batches: list[Batch] = []
    step = max(size, len(stored) // max(count, 1))
    for first in range(0, len(stored) - size + 1, step)[:count]:
        chunk = stored[first : first + size]
        absent = [secrets.token_hex(8) for _ in range(max(1, size // 20))]
        window = (chunk[0][1], chunk[-1][1])
        batches.append(([span_id for span_id, _ in chunk] + absent, window))
    return batches


def _bounds(window: tuple[datetime, datetime]) -> tuple[str, str]:
    return (
        (window[0] - timedelta(milliseconds=1)).isoformat(),
        (window[1] + timedelta(milliseconds=1)).isoformat(),
    )


def span_id_filter(url: str, project: str, batch: Batch) -> set[str]:
    ids, window = batch
    start, end = _bounds(window)
    found: set[str] = set()
    for first in range(0, len(ids), 1000):
        chunk = ids[first : first + 1000]
        params: list[tuple[str, Any]] = [("span_id", span_id) for span_id in chunk]
        params += [("start_time", start), ("end_time", end), ("limit", len(chunk))]
        answer = requests.get(f"{url}/v1/projects/{project}/spans", params=params, timeout=60)
        answer.raise_for_status()
        found |= {span["context"]["span_id"] for span in answer.json()["data"]}
    return found


def _post_text(url: str) -> reader.PostText:
    def post(path: str, params: Sequence[tuple[str, str]], body: Any) -> str | None:
        answer = requests.post(
            f"{url}{path}",
            params=list(params),
            headers={"accept": "application/json"},
            json=body,
            timeout=TIMEOUT_S,
        )
        if answer.status_code == 404:
            return None
        answer.raise_for_status()
        return answer.text

    return post


def query_dsl(url: str, project: str, batch: Batch) -> set[str]:
    ids, window = batch
    return reader.stored_by_query(_post_text(url), project, ids, window)


def _get_json(url: str) -> reader.GetJson:
    def get(path: str, params: Sequence[tuple[str, str]]) -> Any:
        answer = requests.get(f"{url}{path}", params=list(params), timeout=TIMEOUT_S)
        if answer.status_code == 404:
            return None
        answer.raise_for_status()
        return answer.json()

    return get


def rest_window(url: str, project: str, batch: Batch) -> set[str]:
    ids, window = batch
    found = reader.spans_in_window(_get_json(url), project, ids, window)
    return {str(span.get("context", {}).get("span_id", "")) for span in found}


_PROJECT_ID = "query($name: String!) { projects(filter: {col: name, value: $name}) { edges { node { id name } } } }"  # noqa: E501
_SPANS = """query($id: ID!, $first: Int!, $range: TimeRange!, $condition: String!) {
  node(id: $id) { ... on Project {
    spans(first: $first, timeRange: $range, filterCondition: $condition) {
      edges { node { context { spanId } } } } } } }"""
_project_ids: dict[tuple[str, str], str] = {}


def graphql(url: str, project: str, batch: Batch) -> set[str]:
    ids, window = batch
    key = (url, project)
    if key not in _project_ids:
        answer = requests.post(
            f"{url}/graphql",
            json={"query": _PROJECT_ID, "variables": {"name": project}},
            timeout=60,
        ).json()
        nodes = [e["node"] for e in answer["data"]["projects"]["edges"]]
        _project_ids[key] = next(n["id"] for n in nodes if n["name"] == project)
    start, end = _bounds(window)
    variables = {
        "id": _project_ids[key],
        "first": len(ids),
        "range": {"start": start, "end": end},
        "condition": f"span_id in {ids!r}",
    }
    answer = requests.post(
        f"{url}/graphql", json={"query": _SPANS, "variables": variables}, timeout=TIMEOUT_S
    )
    answer.raise_for_status()
    body = answer.json()
    if body.get("errors"):
        raise RuntimeError(body["errors"][0]["message"])
    edges = body["data"]["node"]["spans"]["edges"]
    return {edge["node"]["context"]["spanId"] for edge in edges}


WAYS: dict[str, Way] = {
    "span_id filter": span_id_filter,
    "query DSL": query_dsl,
    "REST window": rest_window,
    "GraphQL": graphql,
}


def _measure(server: LocalPhoenix, project: str, way: Way, batches: list[Batch],
             stored: set[str]) -> tuple[float, float, str]:  # fmt: skip
    assert server.process is not None
    asked = sum(len(ids) for ids, _ in batches)
    cpu0, wall0 = common.process_cpu_s(server.process.pid), time.perf_counter()
    correct = True
    for batch in batches:
        found = way(server.url, project, batch)
        correct &= found == {span_id for span_id in batch[0] if span_id in stored}
    wall = time.perf_counter() - wall0
    cpu = common.process_cpu_s(server.process.pid) - cpu0
    # per 1,000 ids asked: wall in milliseconds, CPU in seconds
    return wall * 1e6 / asked, cpu * 1000 / asked, "yes" if correct else "NO"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old-venv", type=Path, required=True)
    parser.add_argument("--spans", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500, help="logs per delivery batch")
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    common.print_machine()
    rows: list[list[Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp:
        for label, command in (
            ("oldest", [str(args.old_venv / "bin" / "phoenix"), "serve"]),
            ("newest", None),
        ):
            server = LocalPhoenix(Path(tmp) / label, command=command).start()
            try:
                version = requests.get(f"{server.url}/arize_phoenix_version", timeout=10).text
                project = f"verify-{label}"
                loaded = time.perf_counter()
                stored_spans = _load(server.url, project, args.spans, label)
                print(f"{label} {version}: {len(stored_spans)} spans stored in "
                      f"{time.perf_counter() - loaded:.0f} s", flush=True)  # fmt: skip
                stored = {span_id for span_id, _ in stored_spans}
                batches = _batches(stored_spans, args.batch, args.batches)
                for name, way in WAYS.items():
                    if name == "span_id filter" and label == "oldest":
                        continue  # the server ignores the parameter (Phoenix < 19.6)
                    try:
                        results = [
                            _measure(server, project, way, batches, stored)
                            for _ in range(args.rounds)
                        ]
                    except Exception as exc:  # one broken way must not lose the others
                        rows.append([f"{label} {version}", name, "error", str(exc)[:80], ""])
                        continue
                    wall, cpu, correct = min(results)
                    rows.append([f"{label} {version}", name, f"{wall:.0f}", f"{cpu:.2f}",
                                 correct])  # fmt: skip
                    print(rows[-1], flush=True)
            finally:
                server.stop()
    common.print_table(
        f"Which of N span ids are stored: {args.batches} batches of {args.batch} logs "
        f"(+5 % never sent), {args.spans} spans stored, best of {args.rounds} rounds",
        ["server", "way", "wall ms / 1,000 ids", "Phoenix CPU s / 1,000 ids", "exact"],
        rows,
    )


if __name__ == "__main__":
    main()
