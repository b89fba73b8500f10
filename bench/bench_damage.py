"""Benchmark 10, damage costs only itself: the time of an `import` whose files carry damaged
records and files, next to the same import of only its sound records (issue 21: "each run's
time stays within a small factor of the same import without the damaged records").

Cases, each into its own fresh Phoenix, one after the other, default options (`--verify-grace`
30 s included):
- **sound only**: the sound records of the corpus, in as many files;
- **damaged**: the hostile corpus of the tests (tests/hostile_corpus.py: every kind of damaged
  line and file, shuffled between the sound records);
- **poison, overtaken**: the sound records plus a pair whose token sums overflow inside
  Phoenix (a span Phoenix accepts and never stores), in the middle of a file, with the
  token clamp lifted as in tests/run/test_progress.py;
- **poison, last**: the same pair as the very last lines sent (nothing can overtake it).

    python bench/bench_damage.py                       # seed 21, 2,000 more sound records
    python bench/bench_damage.py --sound 500 --rounds 2
    python bench/bench_damage.py --code /tmp/before --cases "sound only,poison, last"

`--code DIR` runs the CLI from another checkout (say, the commit before a change); `--cases`
picks cases by name, comma-separated (a case's own comma is kept: names are matched whole).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import common

from ingest.phoenix.admin.local_server import LocalPhoenix
from tests.hostile_corpus import MAX_LINE_BYTES, build
from tests.logs_factory import make_log

# The real CLI; BENCH_UNCLAMPED lifts the token clamp so an overflowing pair reaches Phoenix.
_CLI = """
import os, sys
import ingest.convert.bounds as bounds
if os.environ.get("BENCH_UNCLAMPED"):
    bounds.MAX_TOKEN_COUNT = 2**63 - 1
from ingest.cli import main
sys.argv[0] = "portkey-phoenix-ingest"
main()
"""


def overflowing_pair() -> list[dict[str, Any]]:
    """A child, then its parent, each with 2**62 prompt tokens: Phoenix's insert of the
    second overflows its 64-bit cumulative count after it answered 200."""
    usage = {"prompt_tokens": 2**62, "completion_tokens": 1, "total_tokens": 2**62 + 1}
    pair = []
    for index, (span_id, parent) in enumerate((("ovf-b", "ovf-a"), ("ovf-a", None))):
        record = make_log(900_000 + index, prefix="bench-poison")
        record.update(trace_id="ovf", span_id=span_id, parent_span_id=parent,
                      req_units=2**62, res_units=1, total_units=2**62 + 1)  # fmt: skip
        record["response"] = {**record["response"], "usage": usage}
        pair.append(record)
    return pair


def write(folder: Path, files: list[list[dict[str, Any]]]) -> Path:
    folder.mkdir(parents=True)
    for index, records in enumerate(files):
        lines = "".join(json.dumps(record) + "\n" for record in records)
        (folder / f"export-{index:02d}.jsonl").write_text(lines)
    return folder


def run_import(folder: Path, tmp: Path, unclamped: bool, code: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(code)}
    for name in ("PHOENIX_COLLECTOR_ENDPOINT", "PHOENIX_API_KEY", "PHOENIX_PROJECT_NAME"):
        env.pop(name, None)
    if unclamped:
        env["BENCH_UNCLAMPED"] = "1"
    with LocalPhoenix(tmp / "phoenix") as phoenix:
        args = ["import", str(folder), "--endpoint", phoenix.url, "--project", "bench",
                "--state-dir", str(tmp / "state"), "--max-line-bytes", str(MAX_LINE_BYTES),
                "--json"]  # fmt: skip
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-c", _CLI, *args], cwd=code, env=env,
                              capture_output=True, text=True, check=False)  # fmt: skip
        wall = time.monotonic() - started
        stored = common.record_count(phoenix.url, "bench")
    if done.returncode not in (0, 3):
        sys.exit(f"import failed ({done.returncode}):\n{done.stderr[-3000:]}")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    return {"seconds": wall, "exit": done.returncode, "stored": stored,
            "read": summary["read"], "quarantined": summary["quarantined"]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--sound", type=int, default=2000, help="sound records added")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--code", type=Path, default=common.REPO, help="checkout to run")
    parser.add_argument("--cases", default="", help="the cases to run (default: all)")
    args = parser.parse_args()

    common.print_machine()
    print(f"code: {args.code.resolve()}\n")
    with tempfile.TemporaryDirectory(prefix="bench-damage-") as name:
        tmp = Path(name)
        (tmp / "damaged").mkdir()
        corpus = build(args.seed, tmp / "damaged", sound=args.sound)
        sound_files = [corpus.sound_by_file.get(i, []) for i in range(8)]
        # With the clamp lifted, the corpus's own overflowing pairs would be poison too.
        clean = [[r for r in records if r.get("req_units") != 2**62] for records in sound_files]
        middle = [*clean[3][:5], *overflowing_pair(), *clean[3][5:]]
        cases = [
            ("sound only", write(tmp / "sound", sound_files), False),
            ("damaged", tmp / "damaged", False),
            ("poison, overtaken", write(tmp / "overtaken",
                                        [*clean[:3], middle, *clean[4:]]), True),
            ("poison, last", write(tmp / "last",
                                   [*clean[:-1], [*clean[-1], *overflowing_pair()]]),
             True),
        ]  # fmt: skip
        names = [label for label, _, _ in cases]
        wanted = [name for name in names if name in args.cases] if args.cases else names
        cases = [case for case in cases if case[0] in wanted]

        def run(round_no: int, case: tuple[str, Path, bool]) -> dict[str, Any]:
            label, folder, unclamped = case
            run_dir = tmp / f"r{round_no}-{label.replace(' ', '').replace(',', '-')}"
            run_dir.mkdir()
            return run_import(folder, run_dir, unclamped, args.code.resolve())

        runs = common.alternating_rounds(cases, args.rounds, lambda case: case[0], run)

    base = min((r["seconds"] for r in runs if r["case"] == "sound only"), default=float("nan"))
    common.print_table(
        f"seed {args.seed}, {len(corpus.must_store):,} sound records, fresh Phoenix each",
        ("round", "case", "lines read", "stored", "quarantined", "exit", "seconds",
         "x sound only"),
        [(r["round"], r["case"], r["read"], r["stored"], r["quarantined"], r["exit"],
          f"{r['seconds']:.1f}", f"{r['seconds'] / base:.2f}") for r in runs],
    )  # fmt: skip


if __name__ == "__main__":
    main()
