"""Benchmark 3, memory: peak RSS of `convert` and `import` as the input grows.

Each command runs as `python -m ingest ...` in a subprocess streaming one generated JSONL file;
its peak resident set size is `ru_maxrss` from `os.wait4` on that child: exact, and of that
process alone (a Phoenix server started by this script is not counted). `convert` writes its
spans to /dev/null. `import` goes to one fresh local Phoenix (SQLite), a new project and state
directory per size, and every span is read back before the command exits.

Two baselines show the fixed part: the interpreter with the CLI loaded (`--version`), and
`import phoenix.client`, which `import` needs to read spans back.
Target: flat as the input grows, under 150 MB; the growth per extra log is extrapolated to
1,000,000 logs to judge "flat".

    python bench/bench_memory.py          # convert 10,000 and 200,000; import 5,000 and 20,000
    python bench/bench_memory.py --convert 2000,10000 --import 2000,10000
    python bench/bench_memory.py --import ''         # convert only: no Phoenix needed
    python bench/bench_memory.py --convert '' --import '' --hostile   # issue 9's inputs only

`--hostile` also imports hostile inputs: a .jsonl.gz expanding to one ~1 GB line between
sound records (the line is quarantined unread), 20 records of 200,000 embedding inputs, and
issue 21's: two 32 MiB lines of `{}` in a 65 KB gzip (quarantined undecoded), 2,000 records
with 200 KB ids, and 2,000 records with 200 KB metadata keys. Target for these: < 256 MB.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import common
from gen_logs import SIZES, write_logs

from ingest.phoenix.admin.local_server import LocalPhoenix

TARGET_MB = 150.0
PROJECT_TO = 1_000_000  # "flat": the growth seen, extrapolated to a million-log run


def sizes(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text.split(",") if part.strip()]


def baseline(code: str) -> float:
    """Peak RSS (MB) of `python -c CODE` with the repository importable."""
    env = {**os.environ, "PYTHONPATH": str(common.REPO)}
    process = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL)
    _, _, usage = os.wait4(process.pid, 0)
    return usage.ru_maxrss / 1024


def write_hostile(tmp: Path) -> dict[str, tuple[Path, int]]:
    """The hostile inputs of issue 9, and how many of their records should be stored."""
    big = tmp / "one-huge-line.jsonl.gz"
    block = b"x" * (1 << 20)
    with gzip.open(big, "wb", compresslevel=1) as stream:
        for index in range(3):
            stream.write(json.dumps({"id": f"ok-{index}", "created_at": "2026-07-25T11:14:18Z"})
                         .encode() + b"\n")  # fmt: skip
            if index == 1:
                stream.write(b'{"id": "huge", "created_at": "2026-07-25T11:14:18Z", "pad": "')
                for _ in range(1024):
                    stream.write(block)
                stream.write(b'"}\n')
    inputs = tmp / "embedding-inputs.jsonl"
    with inputs.open("w") as handle:
        for index in range(20):
            texts = [f"input {index}-{i}" for i in range(200_000)]
            record = {"id": f"emb-{index}", "created_at": "2026-07-25T11:14:18Z",
                      "request_url": "https://api.openai.com/v1/embeddings",
                      "request": {"model": "text-embedding-3-small", "input": texts}}  # fmt: skip
            handle.write(json.dumps(record) + "\n")
    braces = tmp / "braces.jsonl.gz"
    with gzip.open(braces, "wb") as stream:
        head = b'{"id": "b%d", "created_at": "2026-07-25T11:14:18Z", "pad": ['
        items = ((32 << 20) - 200) // 3
        for index in range(2):
            stream.write(head % index + b"{}," * (items - 1) + b"{}]}\n")
        stream.write(b'{"id": "ok", "created_at": "2026-07-25T11:14:19Z"}\n')
    cases = {"1 GB line (.gz)": (big, 3), "20 x 200,000 inputs": (inputs, 20),
             "2 x 32 MiB of {} (.gz)": (braces, 1)}  # fmt: skip
    for what in ("ids", "keys"):
        path = tmp / f"huge-{what}.jsonl"
        with path.open("w") as handle:
            for index in range(2_000):
                big_text = f"{index:06d}" + "i" * 200_000
                record: dict[str, object] = {"id": f"{what}-{index}",
                                             "created_at": "2026-07-25T11:14:18Z"}  # fmt: skip
                if what == "ids":
                    record |= {"id": big_text, "trace_id": "t" + big_text, "span_id": big_text}
                else:
                    record["metadata"] = {big_text: 1, "k" + big_text: 2}
                handle.write(json.dumps(record) + "\n")
        cases[f"2,000 x 200 KB {what}"] = (path, 2_000)
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--convert", type=sizes, default=[10_000, 200_000], help="log counts")
    parser.add_argument("--import", dest="imports", type=sizes, default=[5_000, 20_000])
    parser.add_argument("--size", choices=SIZES, default="typical")
    parser.add_argument("--hostile", action="store_true", help="also import issue 9's inputs")
    args = parser.parse_args()

    common.print_machine()
    rows = []
    peaks: dict[str, list[float]] = {"convert": [], "import": []}
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as name:
        tmp = Path(name)
        cli = "import sys; sys.argv[1:] = ['--version']; from ingest.cli import main; main()"
        version = baseline(cli)
        rows.append(("baseline: python -m ingest --version", "-", "-", "-", "-", f"{version:.0f}"))
        if args.imports:
            client = baseline("from ingest.phoenix.api import import_phoenix_client as i; i()")
            rows.append(("baseline: phoenix.client as import loads it", "-", "-", "-", "-",
                         f"{client:.0f}"))  # fmt: skip
        for count in args.convert:
            path = tmp / f"convert-{count}.jsonl"
            size = write_logs(path, count, args.size)
            run = common.run_cli(
                ["convert", str(path), "--project", "bench", "-q"],
                tmp,
                name=f"convert-{count}",
                stdout_to_devnull=True,
            )
            common.check_cli(run, "convert")
            path.unlink()
            peaks["convert"].append(run.max_rss_mb)
            rows.append(
                (
                    "convert",
                    f"{count:,}",
                    f"{size / 1e6:,.0f}",
                    f"{run.wall_s:.1f}",
                    f"{count / run.wall_s:,.0f}",
                    f"{run.max_rss_mb:.0f}",
                )
            )
            print(f"  convert {count:,}: {run.max_rss_mb:.0f} MB", flush=True)
        if args.imports or args.hostile:
            with LocalPhoenix(tmp / "phoenix") as phoenix:
                cases = write_hostile(tmp).items() if args.hostile else ()
                for number, (case, (path, sound)) in enumerate(cases):
                    project = f"memory-hostile-{number}"
                    run = common.run_cli(
                        ["import", str(path), "--endpoint", phoenix.url, "--project", project,
                         "--state-dir", str(tmp / f"state-{project}"), "--json"],
                        tmp,
                        name=project,
                    )  # fmt: skip
                    common.check_cli(run, "import")
                    if (stored := common.record_count(phoenix.url, project)) != sound:
                        sys.exit(f"import of {case} left {stored} spans in Phoenix, not {sound}")
                    rows.append((f"import {case}", f"{sound}", f"{path.stat().st_size / 1e6:,.0f}",
                                 f"{run.wall_s:.1f}", "-", f"{run.max_rss_mb:.0f}"))  # fmt: skip
                    print(f"  import {case}: {run.max_rss_mb:.0f} MB", flush=True)
                for count in args.imports:
                    path = tmp / f"import-{count}.jsonl"
                    size = write_logs(path, count, args.size, prefix=f"mem{count}")
                    project = f"memory-{count}"
                    run = common.run_cli(
                        ["import", str(path), "--endpoint", phoenix.url, "--project", project,
                         "--state-dir", str(tmp / f"state-{count}"), "--json"],
                        tmp,
                        name=f"import-{count}",
                    )  # fmt: skip
                    common.check_cli(run, "import")
                    stored = common.record_count(phoenix.url, project)
                    if stored != count:
                        sys.exit(f"import of {count} logs left {stored} spans in Phoenix")
                    peaks["import"].append(run.max_rss_mb)
                    rows.append(
                        (
                            "import",
                            f"{count:,}",
                            f"{size / 1e6:,.0f}",
                            f"{run.wall_s:.1f}",
                            f"{count / run.wall_s:,.0f}",
                            f"{run.max_rss_mb:.0f}",
                        )
                    )
                    print(f"  import {count:,}: {run.max_rss_mb:.0f} MB", flush=True)

    print()
    common.print_table(
        f"Peak RSS, {args.size} logs streamed from one file",
        ("command", "logs", "file MB", "wall s", "logs/s", "peak RSS MB"),
        rows,
    )
    counts = {"convert": args.convert, "import": args.imports}
    for command, values in peaks.items():
        if len(values) < 2:
            continue
        growth = values[-1] - values[0]
        per_log = growth / max(counts[command][-1] - counts[command][0], 1)  # MB per extra log
        projected = values[-1] + per_log * max(PROJECT_TO - counts[command][-1], 0)
        ok = max(values) < TARGET_MB and projected < TARGET_MB
        print(
            f"{command}: {values[0]:.0f} -> {values[-1]:.0f} MB ({growth:+.1f} MB, "
            f"{per_log * 1e6:,.0f} B per extra log; {projected:.0f} MB projected at "
            f"{PROJECT_TO:,} logs): {'meets' if ok else 'MISSES'} the target "
            f"(flat, < {TARGET_MB:.0f} MB)"
        )


if __name__ == "__main__":
    main()
