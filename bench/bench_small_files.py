"""Benchmark 7, many small files: N logs as one file next to the same N logs as F files
(issue 12 item 2: F files within 1.2x of one file).

Per round, one after the other (never concurrently), each into its own fresh Phoenix, the
default `import` (annotations on) start to exit, verification included. The order alternates
each round. `--code DIR` runs the CLI from another checkout (say, the commit before a change),
so before and after are measured by the same script.

    python bench/bench_small_files.py                          # 1,200 logs, 48 files, 2 rounds
    python bench/bench_small_files.py --code /tmp/before --rounds 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common
from gen_logs import SIZES, write_logs

from ingest.phoenix.admin.local_server import LocalPhoenix

TARGET_RATIO = 1.2


def run_import(code: Path, files: list[Path], tmp: Path, extra: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code)}
    for name in ("PHOENIX_COLLECTOR_ENDPOINT", "PHOENIX_API_KEY", "PHOENIX_PROJECT_NAME"):
        env.pop(name, None)
    with LocalPhoenix(tmp / "phoenix") as phoenix:
        args = ["import", *map(str, files), "--endpoint", phoenix.url, "--project", "bench",
                "--state-dir", str(tmp / "state"), "--json", *extra]  # fmt: skip
        assert phoenix.process is not None
        cpu_before = common.process_cpu_s(phoenix.process.pid)
        started, steal_before = time.monotonic(), common.steal_s()
        done = subprocess.run([sys.executable, "-m", "ingest", *args], cwd=code, env=env,
                              capture_output=True, text=True, check=False)  # fmt: skip
        wall = time.monotonic() - started
        steal = common.steal_share(steal_before, wall)
        server_cpu = common.process_cpu_s(phoenix.process.pid) - cpu_before
        stored = common.record_count(phoenix.url, "bench")
    if done.returncode not in (0, 3):
        sys.exit(f"import failed ({done.returncode}):\n{done.stderr[-3000:]}")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    return {"seconds": wall, "stored": stored, "annotations": summary.get("annotations"),
            "steal": steal, "server_cpu": server_cpu}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logs", type=int, default=1200)
    parser.add_argument("--files", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--size", choices=SIZES, default="typical")
    parser.add_argument("--code", type=Path, default=common.REPO, help="checkout to run")
    parser.add_argument("--import-args", default="", help="extra `import` options")
    args = parser.parse_args()

    common.print_machine()
    code = args.code.resolve()
    print(f"code: {code}\n")
    with tempfile.TemporaryDirectory(prefix="bench-small-") as name:
        tmp = Path(name)
        whole = tmp / "all.jsonl"
        write_logs(whole, args.logs, args.size)
        lines = whole.read_text().splitlines(keepends=True)
        per = -(-args.logs // args.files)
        parts = []
        for index in range(args.files):
            part = tmp / f"part{index:03d}.jsonl"
            part.write_text("".join(lines[index * per : (index + 1) * per]))
            parts.append(part)
        cases = [("1 file", [whole]), (f"{args.files} files", parts)]

        def run(round_no: int, case: tuple[str, list[Path]]) -> dict:
            run_dir = tmp / f"r{round_no}-{len(case[1])}"
            run_dir.mkdir()
            return run_import(code, case[1], run_dir, args.import_args.split())

        runs = common.alternating_rounds(cases, args.rounds, lambda case: case[0], run)

    common.print_table(
        f"{args.logs:,} {args.size} logs, `import {args.import_args}`, fresh Phoenix each",
        (
            "round",
            "case",
            "seconds",
            "logs/s",
            "stored",
            "annotations",
            "Phoenix CPU s",
            "host steal",
        ),
        [
            (
                r["round"],
                r["case"],
                f"{r['seconds']:.1f}",
                f"{args.logs / r['seconds']:.1f}",
                r["stored"],
                r["annotations"],
                f"{r['server_cpu']:.1f}",
                f"{r['steal']:.0%}",
            )
            for r in runs
        ],
    )
    best = {label: min(r["seconds"] for r in runs if r["case"] == label) for label, _ in cases}
    for label, _ in cases:
        times = [r["seconds"] for r in runs if r["case"] == label]
        print(f"{label}: best {best[label]:.1f} s, median {statistics.median(times):.1f} s, "
              f"spread {min(times):.1f}-{max(times):.1f} s")  # fmt: skip
    paired = [
        next(r for r in runs if r["round"] == n and r["case"] == cases[1][0])["seconds"]
        / next(r for r in runs if r["round"] == n and r["case"] == cases[0][0])["seconds"]
        for n in range(1, args.rounds + 1)
    ]
    print("per round (run back to back): " + ", ".join(f"{x:.2f}" for x in paired)
          + f"; median {statistics.median(paired):.2f}")  # fmt: skip
    ratio = best[cases[1][0]] / best[cases[0][0]]
    lost = sum(args.logs - r["stored"] for r in runs)
    verdict = "meets" if ratio <= TARGET_RATIO and lost == 0 else "MISSES"
    print(f"{cases[1][0]} / 1 file = {ratio:.2f} (best runs); lost = {lost}: {verdict} "
          f"the target (<= {TARGET_RATIO})")  # fmt: skip


if __name__ == "__main__":
    main()
