"""Benchmark 6b, what annotations cost Phoenix: its CPU per span for each part of the
annotator's work, next to the CPU of storing the span itself.

One Phoenix (SQLite, temp dir, loopback). Per round, a fresh project: N typical spans are
stored raw over OTLP, then, one part at a time, with Phoenix left to go idle between parts
so each part's CPU is its own (minus the idle ticks of the same time span):

- `span insert`: the spans themselves (the reference);
- `read, none stored`: the annotator's read of what Phoenix holds, before anything is posted;
- `post + insert (R per request)`: the gateway annotations, posted asynchronously in
  requests of R, until Phoenix's bulk inserter has stored them (one project per size);
- `same value again`: the same annotations posted again (an upsert that changes nothing);
- `read back`: one read of everything posted (the annotator's verification).

    python bench/bench_annotation_cost.py                        # 1,000 spans, 2 rounds
    python bench/bench_annotation_cost.py --per-request 100,1500,6000
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import common
import requests
from gen_logs import SIZES, write_logs

from ingest.convert.ids import span_hex
from ingest.convert.records import parse_record
from ingest.convert.spans import ConversionOptions, make_resource, to_span
from ingest.phoenix.admin.local_server import LocalPhoenix
from ingest.phoenix.api import PhoenixSettings, SpanSender
from ingest.phoenix.reader import NAMES, annotations_for
from ingest.sources.files import decode_line, read_lines

IDLE_DELTA_S = 0.03  # CPU seconds per second below which Phoenix counts as idle


class Meter:
    """Phoenix's CPU for one part of the work, measured from idle to idle."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.idle_rate = 0.0  # CPU s per wall s of an idle Phoenix (its 0.1 s ticks)
        start = self.settle()
        time.sleep(3.0)
        self.idle_rate = max(0.0, (self.settle() - start) / 3.0)

    def settle(self) -> float:
        """Phoenix's CPU seconds so far, once it has been idle for a second."""
        last = common.process_cpu_s(self.pid)
        while True:
            time.sleep(1.0)
            now = common.process_cpu_s(self.pid)
            if now - last < IDLE_DELTA_S + self.idle_rate:
                return now
            last = now

    def cost(self, work: Any) -> float:
        """CPU seconds Phoenix spent on `work()` (and what it queued), idle ticks excluded."""
        before, started = self.settle(), time.monotonic()
        work()
        after = self.settle()
        return max(0.0, after - before - self.idle_rate * (time.monotonic() - started))


def post(url: str, items: list[dict[str, Any]], per_request: int) -> None:
    for first in range(0, len(items), per_request):
        body = {"data": items[first : first + per_request]}
        response = requests.post(f"{url}/v1/span_annotations", json=body, timeout=600)
        response.raise_for_status()


def read(url: str, project: str, span_ids: list[str]) -> int:
    """What the annotator reads: our names for up to 1,000 span ids per request."""
    found = 0
    for first in range(0, len(span_ids), 1000):
        params = [("span_ids", i) for i in span_ids[first : first + 1000]]
        params += [("include_annotation_names", name) for name in NAMES]
        params.append(("limit", str(1000 * len(NAMES))))
        response = requests.get(f"{url}/v1/projects/{project}/span_annotations",
                                params=params, timeout=600)  # fmt: skip
        response.raise_for_status()
        found += len(response.json()["data"])
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--size", choices=SIZES, default="typical")
    parser.add_argument("--per-request", default="1500,6000", help="annotations per request")
    args = parser.parse_args()
    sizes = [int(x) for x in args.per_request.split(",")]

    common.print_machine()
    parts: dict[str, list[float]] = {}  # part -> Phoenix CPU ms per span, one per round
    with tempfile.TemporaryDirectory(prefix="bench-annotation-cost-") as name:
        tmp = Path(name)
        logs_path = tmp / "logs.jsonl"
        write_logs(logs_path, args.logs, args.size)
        with LocalPhoenix(tmp / "phoenix") as phoenix:
            assert phoenix.process is not None
            meter = Meter(phoenix.process.pid)
            print(f"idle Phoenix: {meter.idle_rate * 1000:.1f} ms CPU per second\n")
            for round_no in range(args.rounds):
                for size in sizes:
                    project = f"cost-{round_no}-{size}"
                    measure_project(phoenix.url, project, logs_path, args.logs, size, meter, parts)
                print(f"  round {round_no + 1} done", flush=True)
    spans = args.logs
    annotations_per_span = statistics.mean(parts.pop("_annotations_per_span"))
    reference = statistics.median(parts["span insert"])
    rows = []
    for part, values in parts.items():
        per_span = statistics.median(values)
        per_annotation = per_span / annotations_per_span if part != "span insert" else None
        rows.append((part, f"{per_span:.2f}", "-" if per_annotation is None
                     else f"{per_annotation:.2f}", f"{per_span / reference:.1%}",
                     " / ".join(f"{v:.2f}" for v in values)))  # fmt: skip
    common.print_table(
        f"Phoenix CPU per span, {spans:,} {args.size} spans per project, "
        f"{annotations_per_span:.1f} annotations per span (median of {args.rounds} rounds)",
        ("part", "ms per span", "ms per annotation", "of a span's insert", "each round"),
        rows,
    )


def measure_project(url: str, project: str, logs_path: Path, logs: int, per_request: int,
                    meter: Meter, parts: dict[str, list[float]]) -> None:  # fmt: skip
    # Span ids derive from the project (ids.span_id_for): each project holds its own spans.
    options, resource = ConversionOptions(project=project), make_resource(project)
    spans = [to_span(parse_record(decode_line(line)), options, resource)
             for line in read_lines(logs_path)]  # fmt: skip
    sender = SpanSender(PhoenixSettings(endpoint=url, project=project))
    items = [item for span in spans for item in annotations_for(span)]
    span_ids = sorted({span_hex(span.context.span_id) for span in spans})

    def store_spans() -> None:
        for first in range(0, len(spans), 500):
            sender.send(spans[first : first + 500])
        common.wait_stored([url], project, logs, stall_s=120)

    def add(part: str, cpu_s: float) -> None:
        parts.setdefault(part, []).append(cpu_s * 1000 / logs)

    add("span insert", meter.cost(store_spans))
    assert read(url, project, span_ids) == 0
    add("read, none stored", meter.cost(lambda: read(url, project, span_ids)))
    add(f"post + insert ({per_request:,} per request)",
        meter.cost(lambda: post(url, items, per_request)))  # fmt: skip
    stored = read(url, project, span_ids)
    if stored != len(items):
        raise SystemExit(f"{project}: {stored} of {len(items)} annotations stored")
    add("same value again", meter.cost(lambda: post(url, items, per_request)))
    add("read back", meter.cost(lambda: read(url, project, span_ids)))
    parts.setdefault("_annotations_per_span", []).append(len(items) / logs)


if __name__ == "__main__":
    main()
