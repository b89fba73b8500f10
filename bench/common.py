"""Helpers shared by the benchmark scripts: machine facts, tables, Phoenix counts, child RSS.

Importing this module puts the repository root on sys.path, so `python bench/<script>.py`
works from any directory without installing the package.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import requests

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

COUNT_QUERY = (
    "query($name:String!){ projects(filter:{col:name, value:$name})"
    "{ edges{ node{ name recordCount } } } }"
)


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine() -> dict[str, str]:
    cpu = "unknown"
    ram_kb = 0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "ram": f"{ram_kb / 1024 / 1024:.1f} GiB",
        "load average (1/5/15 min)": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "python": platform.python_version(),
        "arize-phoenix": _version("arize-phoenix"),
        "arize-phoenix-client": _version("arize-phoenix-client"),
        "opentelemetry-sdk": _version("opentelemetry-sdk"),
        "opentelemetry-exporter-otlp-proto-common": _version(
            "opentelemetry-exporter-otlp-proto-common"
        ),
        "protobuf": _version("protobuf"),
    }


def print_machine() -> None:
    print("Machine:")
    for key, value in machine().items():
        print(f"  {key}: {value}")
    print()


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A Markdown table, so it can be pasted into RESULTS.md as is."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    print(f"### {title}\n")
    for index, row in enumerate(cells):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
        if index == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    print()


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


# -- Phoenix -------------------------------------------------------------------------------


def record_count(base_url: str, project: str) -> int:
    """Spans stored in `project` (GraphQL recordCount); 0 when the project does not exist."""
    response = requests.post(
        f"{base_url}/graphql",
        json={"query": COUNT_QUERY, "variables": {"name": project}},
        timeout=30,
    )
    response.raise_for_status()
    body = response.json()
    if body.get("errors"):
        raise RuntimeError(f"GraphQL error: {body['errors']}")
    edges = body["data"]["projects"]["edges"]
    return sum(int(e["node"]["recordCount"]) for e in edges if e["node"]["name"] == project)


def wait_stored(
    base_urls: Sequence[str],
    project: str,
    expected: int,
    stall_s: float = 60.0,
    poll_s: float = 1.0,
) -> tuple[int, float]:
    """Poll until `expected` spans are stored or the count stops moving for `stall_s`.

    Returns (final count, monotonic time the last count was first seen). With several
    Phoenix processes on one database, any of them answers for all.
    """
    last, last_change = -1, time.monotonic()
    while True:
        count = record_count(base_urls[0], project)
        now = time.monotonic()
        if count != last:
            last, last_change = count, now
        if count >= expected or now - last_change > stall_s:
            return count, last_change
        time.sleep(poll_s)


def process_cpu_s(pid: int) -> float:
    """User+system CPU seconds of a process and its children so far (psutil)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        total = sum(proc.cpu_times()[:2])
        for child in proc.children(recursive=True):
            with contextlib.suppress(psutil.Error):  # a child may exit meanwhile
                total += sum(child.cpu_times()[:2])
        return total
    except psutil.Error:
        return 0.0


def steal_s() -> float:
    """CPU seconds the hypervisor gave to other guests so far, over all CPUs (/proc/stat's
    `steal`; 0 where the kernel does not report it). Neither process CPU times nor wall
    clocks show this: a run with a high steal share ran on a disturbed machine."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def steal_share(steal_before: float, wall_s: float) -> float:
    """Share of the machine's CPU time stolen since `steal_before` over `wall_s` seconds."""
    return (steal_s() - steal_before) / max(wall_s * (os.cpu_count() or 1), 1e-9)


# -- the CLI in a subprocess ---------------------------------------------------------------


@dataclass
class CliRun:
    returncode: int
    wall_s: float
    cpu_s: float  # user + system of the child
    max_rss_mb: float  # peak resident set size of the child (exact: wait4's ru_maxrss)
    stdout: str
    stderr: str

    def summary(self) -> dict[str, Any]:
        """The `--json` summary the command printed (last JSON line of stdout)."""
        for line in reversed(self.stdout.strip().splitlines()):
            if line.startswith("{"):
                return dict(json.loads(line))
        return {}


def _env() -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    for name in ("PHOENIX_COLLECTOR_ENDPOINT", "PHOENIX_API_KEY", "PHOENIX_PROJECT_NAME"):
        env.pop(name, None)  # the benchmark says where to send, not the caller's shell
    return env


def start_cli(
    args: Sequence[str], tmp: Path, name: str, stdout_to_devnull: bool = False
) -> subprocess.Popen[bytes]:
    """Start `python -m ingest ARGS`; its stdout/stderr go to files in `tmp`."""
    stdout = open(os.devnull, "wb") if stdout_to_devnull else (tmp / f"{name}.stdout").open("wb")  # noqa: SIM115
    with stdout, (tmp / f"{name}.stderr").open("wb") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "ingest", *args],
            cwd=REPO,
            env=_env(),
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
        )


def wait_cli(process: subprocess.Popen[bytes], tmp: Path, name: str, started: float) -> CliRun:
    """Wait for a started command; its peak RSS comes from wait4, exact for that child."""
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    out_path = tmp / f"{name}.stdout"
    return CliRun(
        returncode=process.returncode,
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        max_rss_mb=usage.ru_maxrss / 1024,  # kilobytes on Linux
        stdout=out_path.read_text(errors="replace") if out_path.exists() else "",
        stderr=(tmp / f"{name}.stderr").read_text(errors="replace"),
    )


def run_cli(
    args: Sequence[str], tmp: Path, name: str = "cli", stdout_to_devnull: bool = False
) -> CliRun:
    """Run `python -m ingest ARGS` to the end; wall time from start to exit."""
    started = time.monotonic()
    return wait_cli(start_cli(args, tmp, name, stdout_to_devnull), tmp, name, started)


def check_cli(run: CliRun, what: str) -> None:
    """Stop the benchmark with the command's stderr when it failed (3 = some quarantined)."""
    if run.returncode not in (0, 3):
        sys.exit(f"{what} failed with exit code {run.returncode}:\n{run.stderr[-3000:]}")


Case = TypeVar("Case")


def alternating_rounds(
    cases: Sequence[Case],
    rounds: int,
    label: Callable[[Case], str],
    run: Callable[[int, Case], dict[str, Any]],
) -> list[dict[str, Any]]:
    """Run every case once per round, one after the other, the order reversed every other
    round (so neither case always goes first); each result gets its case and round."""
    runs: list[dict[str, Any]] = []
    for round_no in range(rounds):
        for case in cases if round_no % 2 == 0 else cases[::-1]:
            result = run(round_no, case)
            result.update(case=label(case), round=round_no + 1)
            runs.append(result)
            print(f"  done: {json.dumps(result)}", flush=True)
    return runs
