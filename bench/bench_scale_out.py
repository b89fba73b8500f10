"""Benchmark 4, scale-out: two Phoenix processes on one PostgreSQL fed by two sharded workers,
against one Phoenix with one worker.

The script starts its own PostgreSQL (Debian's `postgresql` package: a temp cluster on a free
loopback port, its unix socket in the temp dir, trust auth; installed with apt-get when
missing and running as root) and installs `asyncpg` with pip when missing (Phoenix needs it
for PostgreSQL). Then, each on a fresh database:

- 1 x 1: one Phoenix, one `import` worker given both shard files (all the logs).
- 2 x 2: two Phoenix processes on the same database (started one after the other, so only
  the first runs the migrations), two `import` workers started together, worker i sending
  shard i to Phoenix i and verifying through it.

The logs are split into two files by line (shard-0, shard-1): `import` has no `--shard`
option, so sharding is by file (`backfill --shard I/N` shards export windows, but needs a
Portkey API to export from). Both setups write into one project, created beforehand
through the REST API so the two replicas do not race to create it.
rate = logs / wall time from the workers' start until the last one exits (verification
included). Target: 2 x 2 close to twice 1 x 1.

    python bench/bench_scale_out.py                # 20,000 logs
    python bench/bench_scale_out.py --logs 1000
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import common
import requests
from gen_logs import SIZES, split_file, write_logs

from ingest.phoenix.admin.local_server import LocalPhoenix, free_port

PROJECT = "bench"
DB_USER = "bench"


def find_pg_bin() -> Path:
    """The directory holding initdb/pg_ctl/createdb; installs Debian's postgresql if needed."""
    for attempt in range(2):
        found = shutil.which("initdb")
        if found and shutil.which("pg_ctl"):
            return Path(found).resolve().parent
        versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if versions:
            return Path(versions[-1]).parent
        if attempt or os.geteuid() != 0:
            break
        print("PostgreSQL not found: apt-get install -y postgresql", flush=True)
        subprocess.run(["apt-get", "install", "-y", "postgresql"], check=True)
    sys.exit("PostgreSQL is not installed: run `apt-get install -y postgresql` (as root).")


def ensure_asyncpg() -> None:
    if importlib.util.find_spec("asyncpg") is None:
        print("asyncpg not installed (Phoenix needs it for PostgreSQL): pip install asyncpg")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "asyncpg"], check=True)


class Postgres:
    """A throw-away PostgreSQL cluster on 127.0.0.1 (run as `postgres` when we are root)."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.dir = Path(tempfile.mkdtemp(prefix="bench-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # initdb refuses to run as root
            shutil.chown(self.dir, "postgres", "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, tool: str, *args: str) -> None:
        command = [*self.as_user, str(self.bin / tool), *args]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode:
            sys.exit(f"{tool} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")

    def start(self) -> Postgres:
        self._run("initdb", "-D", str(self.data), "-U", DB_USER, "--auth=trust", "-E", "UTF8")
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "pg.log"), "-w",
                  "-o", options, "start")  # fmt: skip
        return self

    def create_database(self, name: str) -> str:
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", DB_USER, name)
        return f"postgresql://{DB_USER}@127.0.0.1:{self.port}/{name}"

    def cpu_s(self) -> float:
        """CPU seconds of the postmaster and its backends so far."""
        try:
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return 0.0
        return common.process_cpu_s(pid)

    def stop(self) -> None:
        if self.data.exists():
            command = [*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.data)]
            subprocess.run([*command, "-m", "fast", "-w", "stop"], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Postgres:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def create_project(base_url: str) -> None:
    response = requests.post(f"{base_url}/v1/projects", json={"name": PROJECT}, timeout=30)
    if not response.ok:
        print(f"  (could not create project {PROJECT!r} first: HTTP {response.status_code})")


def run_setup(
    label: str, replicas: int, shards: list[Path], logs: int, db_url: str, pg: Postgres, tmp: Path
) -> dict:
    phoenixes: list[LocalPhoenix] = []
    try:
        for index in range(replicas):  # one after the other: the first one migrates
            phoenix = LocalPhoenix(
                tmp / f"{label}-phoenix-{index}", env={"PHOENIX_SQL_DATABASE_URL": db_url}
            )
            phoenixes.append(phoenix.start())
        create_project(phoenixes[0].url)
        pids = [p.process.pid for p in phoenixes if p.process is not None]
        cpu_before = [common.process_cpu_s(pid) for pid in pids]
        pg_before = pg.cpu_s()
        plan = (
            [(phoenixes[0], shards)]
            if replicas == 1
            else [(phoenixes[i], [shards[i]]) for i in range(replicas)]
        )
        started = time.monotonic()
        workers = []
        for index, (phoenix, files) in enumerate(plan):
            name = f"{label}-worker-{index}"
            args = ["import", *map(str, files), "--endpoint", phoenix.url, "--project", PROJECT,
                    "--state-dir", str(tmp / f"{name}-state"), "--json"]  # fmt: skip
            workers.append((name, common.start_cli(args, tmp, name)))
        runs = [common.wait_cli(process, tmp, name, started) for name, process in workers]
        wall = max(run.wall_s for run in runs)
        server_cpu = sum(common.process_cpu_s(pid) for pid in pids) - sum(cpu_before)
        pg_cpu = pg.cpu_s() - pg_before
        for (name, _), run in zip(workers, runs, strict=True):
            common.check_cli(run, name)
        stored = common.record_count(phoenixes[0].url, PROJECT)
    finally:
        for phoenix in phoenixes:
            phoenix.stop()
    summaries = [run.summary() for run in runs]
    return {
        "setup": f"{replicas} Phoenix x {len(plan)} worker{'s' if len(plan) > 1 else ''}",
        "seconds": wall,
        "stored": stored,
        "lost": logs - stored,
        "retries": sum(int(s.get("retried", 0)) for s in summaries),
        "resent": sum(int(s.get("resent", 0)) for s in summaries),
        "phoenix_cpu": server_cpu,
        "pg_cpu": pg_cpu,
        "worker_s": ", ".join(f"{run.wall_s:.1f}" for run in runs),
        "worker_cpu": sum(run.cpu_s for run in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logs", type=int, default=20_000)
    parser.add_argument("--size", choices=SIZES, default="typical")
    args = parser.parse_args()

    bin_dir = find_pg_bin()
    ensure_asyncpg()
    common.print_machine()
    version = subprocess.run(
        [str(bin_dir / "postgres"), "--version"], capture_output=True, text=True
    ).stdout.strip()
    print(f"PostgreSQL: {version} ({bin_dir})\n")
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as name, Postgres(bin_dir) as pg:
        tmp = Path(name)
        path = tmp / "logs.jsonl"
        size = write_logs(path, args.logs, args.size)
        shards = split_file(path, 2, tmp)
        print(f"{args.logs:,} {args.size} logs ({size / 1e6:.1f} MB) in 2 shard files\n")
        for label, replicas in (("single", 1), ("double", 2)):
            db_url = pg.create_database(f"phoenix_{label}")
            results.append(run_setup(label, replicas, shards, args.logs, db_url, pg, tmp))
            print(f"  done: {results[-1]}", flush=True)

    base = results[0]["stored"] / results[0]["seconds"]
    rows = []
    for r in results:
        rate = r["stored"] / r["seconds"]
        rows.append(
            (
                r["setup"],
                f"{args.logs:,}",
                f"{r['seconds']:.1f}",
                r["worker_s"],
                f"{rate:,.1f}",
                f"{rate / base:.2f}x",
                f"{r['stored']:,}",
                f"{r['lost']:,}",
                r["retries"],
                r["resent"],
                f"{r['phoenix_cpu']:.0f}",
                f"{r['pg_cpu']:.0f}",
                f"{r['worker_cpu']:.0f}",
            )
        )
    print()
    common.print_table(
        f"Scale-out on PostgreSQL, {args.logs:,} {args.size} logs",
        (
            "setup",
            "logs",
            "wall s",
            "each worker s",
            "spans/s",
            "vs 1x1",
            "stored",
            "lost",
            "HTTP retries",
            "re-sent",
            "Phoenix CPU s",
            "PostgreSQL CPU s",
            "workers CPU s",
        ),
        rows,
    )
    ratio = (results[1]["stored"] / results[1]["seconds"]) / base
    print(f"2 x 2 / 1 x 1 = {ratio:.2f} (target: close to 2)")


if __name__ == "__main__":
    main()
