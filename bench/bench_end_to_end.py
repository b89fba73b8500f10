"""Benchmark 2, end to end: `import` into a fresh Phoenix next to Phoenix's own raw capacity.

Two runs, one after the other (never concurrently: the machine has two cores), each into its
own fresh Phoenix (SQLite, temp working dir, free loopback port):

- ingester: `python -m ingest import FILE --json` in a subprocess, timed from start until the
  command exits. That includes Python start-up, reading, converting, sending, and verification
  (every span read back). rate = logs / wall time.
- raw: the same logs converted to spans beforehand (untimed), then POSTed with `SpanSender`
  in batches of --raw-batch as fast as Phoenix accepts them, then GraphQL `recordCount` is
  polled until every span is stored. rate = logs / (time until all stored).

Both report the HTTP retries (503s from a full queue: `sender.retries` for the raw path, the
summary's `retried` for the ingester) and the spans missing at the end (lost). Phoenix's CPU
seconds per stored span show what verification costs the server.
Target: ingester rate >= 0.9 x raw rate, zero lost.

    python bench/bench_end_to_end.py                # 20,000 logs
    python bench/bench_end_to_end.py --logs 1000
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import common
from gen_logs import SIZES, write_logs

from ingest.convert.records import parse_record
from ingest.convert.spans import ConversionOptions, make_resource, to_span
from ingest.errors import PhoenixUnreachableError
from ingest.phoenix.admin.local_server import LocalPhoenix
from ingest.phoenix.api import PhoenixSettings, SpanSender
from ingest.sources.files import decode_line, read_lines

PROJECT = "bench"
TARGET_RATIO = 0.9


def run_ingester(path: Path, logs: int, tmp: Path, extra: list[str], stall_s: float) -> dict:
    with LocalPhoenix(tmp / "phoenix-ingester") as phoenix:
        assert phoenix.process is not None
        cpu_before = common.process_cpu_s(phoenix.process.pid)
        args = ["import", str(path), "--endpoint", phoenix.url, "--project", PROJECT]
        args += ["--state-dir", str(tmp / "state"), "--json", *extra]
        run = common.run_cli(args, tmp, name="import")
        server_cpu = common.process_cpu_s(phoenix.process.pid) - cpu_before
        common.check_cli(run, "import")
        stored, _ = common.wait_stored([phoenix.url], PROJECT, logs, stall_s=min(stall_s, 10))
        summary = run.summary()
    return {
        "path": "ingester (import CLI)",
        "seconds": run.wall_s,
        "stored": stored,
        "retries": summary.get("retried", "?"),
        "resent": summary.get("resent", "?"),
        "server_cpu": server_cpu,
        "client_cpu": run.cpu_s,
        "annotations": summary.get("annotations"),
        "note": f"import's own elapsed_s {summary.get('elapsed_s', '?')}",
    }


def build_spans(path: Path) -> list[Any]:
    options = ConversionOptions(project=PROJECT)
    resource = make_resource(PROJECT)
    records = (parse_record(decode_line(line)) for line in read_lines(path))
    return [to_span(record, options, resource) for record in records]


def run_raw(path: Path, logs: int, tmp: Path, batch: int, stall_s: float) -> dict:
    spans = build_spans(path)
    with LocalPhoenix(tmp / "phoenix-raw") as phoenix:
        assert phoenix.process is not None
        sender = SpanSender(PhoenixSettings(endpoint=phoenix.url, project=PROJECT))
        cpu_before = common.process_cpu_s(phoenix.process.pid)
        started = time.monotonic()
        unsent = 0
        for start in range(0, len(spans), batch):
            try:
                sender.send(spans[start : start + batch])
            except PhoenixUnreachableError:  # 503s for longer than the retry deadline
                unsent += len(spans[start : start + batch])
        sent_s = time.monotonic() - started
        stored, last_change = common.wait_stored([phoenix.url], PROJECT, logs, stall_s=stall_s)
        server_cpu = common.process_cpu_s(phoenix.process.pid) - cpu_before
    return {
        "path": f"raw OTLP (SpanSender, batch {batch})",
        "seconds": last_change - started,
        "stored": stored,
        "retries": sender.retries,
        "resent": 0,
        "server_cpu": server_cpu,
        "client_cpu": None,
        "note": f"all sent after {sent_s:.1f} s" + (f"; {unsent} never accepted" if unsent else ""),
    }


def import_phoenix_client_s() -> float:
    """Wall seconds of `import phoenix.client` in a fresh interpreter (a fixed CLI cost)."""
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", "import phoenix.client"], check=True)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logs", type=int, default=20_000)
    parser.add_argument("--size", choices=SIZES, default="typical")
    parser.add_argument("--raw-batch", type=int, default=1000, help="spans per raw POST")
    parser.add_argument(
        "--order", choices=("ingester-first", "raw-first"), default="ingester-first"
    )
    parser.add_argument(
        "--import-args",
        default="",
        help="extra options for `import`, e.g. '--batch-size 1000 --max-in-flight 8000'",
    )
    parser.add_argument(
        "--stall", type=float, default=120.0, help="give up when the count stalls this long"
    )
    args = parser.parse_args()

    common.print_machine()
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as name:
        tmp = Path(name)
        path = tmp / "logs.jsonl"
        size = write_logs(path, args.logs, args.size)
        print(f"{args.logs:,} {args.size} logs, {size / 1e6:.1f} MB; order: {args.order}\n")
        runs = [
            lambda: run_ingester(path, args.logs, tmp, shlex.split(args.import_args), args.stall),
            lambda: run_raw(path, args.logs, tmp, args.raw_batch, args.stall),
        ]
        if args.order == "raw-first":
            runs.reverse()
        for run in runs:
            results.append(run())
            print(f"  done: {json.dumps(results[-1], default=str)}", flush=True)
        client_import_s = import_phoenix_client_s()

    raw = next(r for r in results if r["path"].startswith("raw"))
    raw_rate = raw["stored"] / raw["seconds"] if raw["seconds"] else 0.0
    rows = []
    for r in results:
        rate = r["stored"] / r["seconds"] if r["seconds"] else 0.0
        rows.append(
            (
                r["path"],
                f"{args.logs:,}",
                f"{r['seconds']:.1f}",
                f"{rate:,.1f}",
                f"{rate / raw_rate:.2f}" if raw_rate else "-",
                f"{r['stored']:,}",
                f"{args.logs - r['stored']:,}",
                r["retries"],
                r["resent"],
                f"{r['server_cpu'] / max(r['stored'], 1) * 1000:.1f}",
                f"{r['client_cpu']:.1f}" if r["client_cpu"] is not None else "-",
                r["note"],
            )
        )
    print()
    common.print_table(
        f"End to end, {args.logs:,} {args.size} logs, fresh Phoenix (SQLite) each",
        (
            "path",
            "logs",
            "seconds",
            "spans/s",
            "x raw",
            "stored",
            "lost",
            "HTTP retries",
            "re-sent",
            "Phoenix CPU ms/span",
            "client CPU s",
            "note",
        ),
        rows,
    )
    print(f"`import phoenix.client` in a fresh interpreter: {client_import_s:.1f} s (in every run)")
    ingester = next(r for r in results if r["path"].startswith("ingester"))
    ratio = (ingester["stored"] / ingester["seconds"]) / raw_rate if raw_rate else 0.0
    lost = sum(args.logs - r["stored"] for r in results)
    verdict = "meets" if ratio >= TARGET_RATIO and lost == 0 else "MISSES"
    print(f"ingester / raw = {ratio:.2f}; lost = {lost}: {verdict} the target (>= 0.9, 0 lost)")


if __name__ == "__main__":
    main()
