"""A measured backfill: `backfill` over a date range from the Portkey test double (export
jobs, JSONL downloads from its object-storage port) into a fresh real Phoenix.

Reports the export jobs started (and windows split because they exceeded the export limit),
the wall time, the rate, and that Phoenix holds exactly one span per log.

    python bench/bench_backfill.py                          # 10,000 logs over 7 days
    python bench/bench_backfill.py --logs 2000 --export-limit 500
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import common

from ingest.phoenix.admin.local_server import LocalPhoenix
from tests.portkey_double import PortkeyDouble, make_log

START = datetime(2026, 7, 1, tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logs", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--export-limit", type=int, default=50_000)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    common.print_machine()
    step = timedelta(days=args.days) / args.logs
    logs = [make_log(START + step * index) for index in range(args.logs)]
    until = (START + timedelta(days=args.days)).date().isoformat()
    with (
        tempfile.TemporaryDirectory(prefix="bench-backfill-") as tmp_dir,
        PortkeyDouble(job_polls=2) as double,
        LocalPhoenix(Path(tmp_dir) / "phoenix") as phoenix,
    ):
        tmp = Path(tmp_dir)
        double.add_logs(logs)
        command = [
            "backfill", "--since", START.date().isoformat(), "--until", until,
            "--endpoint", phoenix.url, "--project", "bench-backfill", "--json",
            "--poll-interval", "0.5", "--export-limit", str(args.export_limit),
            "--concurrency", str(args.concurrency), "--state-dir", str(tmp / "state"),
            "--portkey-api-key", double.api_key, "--portkey-base-url", double.base_url,
        ]  # fmt: skip
        run = common.run_cli(command, tmp, name="backfill")
        common.check_cli(run, "backfill")
        summary = run.summary()
        stored = common.record_count(phoenix.url, "bench-backfill")
        jobs = len(double.requests_to("POST /logs/exports/{id}/start"))
        drafts = len(double.requests_to("POST /logs/exports"))
    common.print_table(
        "Backfill from the Portkey double into a fresh Phoenix",
        ["logs", "days", "export limit", "windows", "export jobs", "drafts", "wall s",
         "logs/s", "stored", "peak RSS MB"],
        [[args.logs, args.days, args.export_limit, summary["windows_done"], jobs, drafts,
          run.wall_s, args.logs / run.wall_s, stored, run.max_rss_mb]],
    )  # fmt: skip
    if stored != args.logs:
        raise SystemExit(f"Phoenix holds {stored} spans, expected {args.logs}")


if __name__ == "__main__":
    main()
