"""`sync` and `backfill` against the Portkey double and a real Phoenix."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ingest.convert.ids import span_hex, span_id_for
from ingest.phoenix.admin.local_server import LocalPhoenix, free_port
from tests.conftest import REPO, read_spans, run_cli
from tests.portkey_double import Fault, PortkeyDouble, make_log

DAY0 = datetime(2026, 7, 1, tzinfo=UTC)


@pytest.fixture
def double() -> Iterator[PortkeyDouble]:
    with PortkeyDouble(export_cap=50, job_polls=1) as server:
        yield server
        assert server.errors == []


def portkey_env(double: PortkeyDouble) -> dict[str, str]:
    return {"PORTKEY_API_KEY": double.api_key, "PORTKEY_BASE_URL": double.base_url}


def spread(start: datetime, count: int, step: timedelta) -> list[dict]:
    return [make_log(start + step * index) for index in range(count)]


def ids_of(project: str, logs: list[dict]) -> set[str]:
    return {span_hex(span_id_for(project, log["id"])) for log in logs}


def stored(phoenix: LocalPhoenix, project: str) -> list[str]:
    return [span["context"]["span_id"] for span in read_spans(phoenix.url, project)]


def pull(command: str, double: PortkeyDouble, phoenix: LocalPhoenix, project: str,
         *args: str) -> tuple[subprocess.CompletedProcess[str], dict]:  # fmt: skip
    result = run_cli(
        command, "--endpoint", phoenix.url, "--project", project, "--poll-interval", "0.02",
        "--export-limit", "50", "--json", *args, env=portkey_env(double),
    )  # fmt: skip
    lines = result.stdout.strip().splitlines()
    return result, (json.loads(lines[-1]) if lines else {})


def test_backfill_with_a_burst_under_every_fault_lands_each_log_exactly_once(
    double: PortkeyDouble, phoenix: LocalPhoenix, project: str
) -> None:
    logs = spread(DAY0, 90, timedelta(minutes=45))  # ~3 days of steady traffic
    logs += spread(DAY0 + timedelta(days=1, hours=5), 130, timedelta(seconds=7))  # a burst
    double.add_logs(logs)
    faults = double.faults
    faults.queue("POST /logs/exports", Fault.rate_limited(retry_after=1))
    faults.queue("POST /logs/exports", Fault.rate_limited())
    faults.queue("PUT /logs/exports/{id}", Fault.server_error())
    faults.queue("POST /logs/exports/{id}/start", Fault.job_failed())
    faults.queue("POST /logs/exports/{id}/start", Fault.job_stuck(3))
    faults.queue("GET /logs/exports/{id}", Fault.dropped_connection())
    faults.queue("GET /logs/exports/{id}", Fault.html_502())
    faults.queue("GET /logs/exports/{id}/download", Fault.expired_url())
    faults.queue("GET /exports/{file}", Fault.truncated_file())
    faults.queue("GET /exports/{file}", Fault.missing_lines(10))
    faults.queue("GET /exports/{file}", Fault.cut_body())

    result, summary = pull("backfill", double, phoenix, project,
                           "--since", "2026-07-01", "--until", "2026-07-04")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert summary["windows_done"] == 3
    ids = stored(phoenix, project)
    assert len(ids) == len(set(ids)) == len(logs)
    assert set(ids) == ids_of(project, logs)
    assert not double.faults.pending, "every fault was met"
    assert not double.storage_saw_api_key, "the Portkey key never reached object storage"
    assert double.api_key not in result.stdout + result.stderr
    starts = double.requests_to("POST /logs/exports/{id}/start")
    assert len(starts) >= 5, "the burst day was split into several export jobs"


def test_backfill_resumes_by_window_and_never_moves_the_sync_watermark(
    double: PortkeyDouble, phoenix: LocalPhoenix, project: str, isolated_env: Path
) -> None:
    logs = spread(DAY0, 36, timedelta(hours=2))  # exactly the three days
    double.add_logs(logs)
    args = ("--since", "2026-07-01", "--until", "2026-07-04")
    result, first = pull("backfill", double, phoenix, project, *args, "--max-duration", "0")
    assert result.returncode == 0, result.stderr
    assert (first["windows_done"], first["stopped_early"]) == (0, True)

    result, second = pull("backfill", double, phoenix, project, *args)
    assert result.returncode == 0, result.stderr
    assert (second["windows_done"], second["windows_skipped"]) == (3, 0)
    result, third = pull("backfill", double, phoenix, project, *args)
    assert (third["windows_done"], third["windows_skipped"], third["read"]) == (0, 3, 0)
    state = json.loads((isolated_env / "state.json").read_text())
    assert not any(entry.get("watermark") for entry in state.get("sync", {}).values())
    assert set(stored(phoenix, project)) == ids_of(project, logs)

    result, fourth = pull("backfill", double, phoenix, project, *args, "--advance-sync")
    assert fourth["watermark"] == "2026-07-04T00:00:00+00:00"


def test_backfill_dry_run_plans_without_starting_a_job(
    double: PortkeyDouble, phoenix: LocalPhoenix, project: str
) -> None:
    double.add_logs(spread(DAY0, 120, timedelta(minutes=30)))  # 48 per day: under the cap
    double.add_logs(spread(DAY0 + timedelta(days=1), 60, timedelta(minutes=1)))  # day 2: 108
    result = run_cli(
        "backfill", "--since", "2026-07-01", "--until", "2026-07-03", "--dry-run",
        "--export-limit", "50", "--endpoint", phoenix.url, "--project", project,
        env=portkey_env(double),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (  # the project does not exist yet, and a dry run does not create it
        f"The range in Phoenix (once imported): {phoenix.url}/redirects/projects/{project} "
        f"(project '{project}' is created by the first span; then choose "
        "2026-07-01T00:00:00.000Z .. 2026-07-03T00:00:00.000Z in its time range)"
    ) in result.stderr
    assert "2026-07-01T00:00:00Z/2026-07-02T00:00:00Z         48 logs    1 export job(s)" in (
        result.stdout
    )
    assert "2 windows, 156 logs" in result.stdout
    assert "dry run: no job was started" in result.stdout
    assert double.requests_to("POST /logs/exports/{id}/start") == []


def _recent(now: datetime, minutes_ago: list[float]) -> list[dict]:
    return [make_log(now - timedelta(minutes=m)) for m in minutes_ago]


def test_sync_repeatedly_with_new_and_late_logs_lands_every_log_once(
    double: PortkeyDouble, phoenix: LocalPhoenix, project: str, isolated_env: Path
) -> None:
    now = datetime.now(UTC)
    first = _recent(now, [600, 300, 120, 30, 18, 10])  # inside the first run's 24 h
    double.add_logs(first)
    result, one = pull("sync", double, phoenix, project)
    assert result.returncode == 0, result.stderr
    assert one["delivered"] == 6
    watermark = datetime.fromisoformat(one["watermark"])
    assert now - timedelta(minutes=6) < watermark <= datetime.now(UTC) - timedelta(minutes=5)

    late = [make_log(watermark - timedelta(minutes=3))]  # indexed late, inside the overlap
    new = [make_log(watermark + timedelta(seconds=1))]
    too_new = [make_log(datetime.now(UTC) - timedelta(minutes=1))]  # younger than --lag
    double.add_logs(late + new + too_new)
    # The next run's window ends at now - lag (5 min), exclusive, in whole seconds: wait until
    # it can include the new log, or a second run started within two seconds would miss it.
    _wait_until(lambda: datetime.now(UTC) - timedelta(minutes=5, seconds=2) > watermark)
    result, two = pull("sync", double, phoenix, project)
    assert result.returncode == 0, result.stderr
    assert two["delivered"] == 2, "the late and the new log; the overlap's others are present"
    assert two["already_present"] == 2, "the overlap re-read the logs of 10 and 18 minutes ago"
    assert set(stored(phoenix, project)) == ids_of(project, first + late + new)

    result, three = pull("sync", double, phoenix, project, "--lag", "0s")
    assert result.returncode == 0, result.stderr
    assert three["delivered"] == 1, "the log younger than the lag, now that --lag is 0"
    ids = stored(phoenix, project)
    assert len(ids) == len(set(ids)) == 9
    assert set(ids) == ids_of(project, first + late + new + too_new)


def test_sync_does_not_move_the_watermark_past_unverified_logs(
    double: PortkeyDouble, project: str, isolated_env: Path
) -> None:
    double.add_logs(_recent(datetime.now(UTC), [60, 30]))
    result = run_cli(
        "sync", "--endpoint", f"http://127.0.0.1:{free_port()}", "--project", project,
        "--poll-interval", "0.02", "--retry-deadline", "0.1", env=portkey_env(double),
    )  # fmt: skip
    assert result.returncode == 1
    assert "Error: Phoenix at" in result.stderr
    state = json.loads((isolated_env / "state.json").read_text())
    assert all(entry["watermark"] is None for entry in state["sync"].values())
    assert state["runs"]["sync"]["outcome"] == "failed"


def test_two_syncs_at_once_the_second_exits_75_and_changes_nothing(
    double: PortkeyDouble, phoenix: LocalPhoenix, project: str, isolated_env: Path
) -> None:
    double.add_logs(_recent(datetime.now(UTC), [60]))
    double.faults.always("GET /logs/exports/{id}", Fault.slow(0.5))
    command = [sys.executable, "-m", "ingest", "sync", "--endpoint", phoenix.url,
               "--project", project, "--poll-interval", "0.02"]  # fmt: skip
    first = subprocess.Popen(command, cwd=REPO, env={**_env(), **portkey_env(double)},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    _wait_until(lambda: double.requests_to("GET /logs/exports/{id}"))
    before = (
        (isolated_env / "state.json").read_bytes()
        if (isolated_env / "state.json").exists()
        else None
    )
    second = run_cli(*command[3:], env=portkey_env(double))
    assert second.returncode == 75
    assert "another portkey-phoenix-ingest run (pid" in second.stderr
    assert "this run changed nothing" in second.stderr
    after = (
        (isolated_env / "state.json").read_bytes()
        if (isolated_env / "state.json").exists()
        else None
    )
    assert before == after
    double.faults.clear()
    first.communicate(timeout=120)
    assert first.returncode == 0


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


def _wait_until(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition never became true")


def test_killed_during_download_delivery_and_between_windows_then_rerun_completes(
    double: PortkeyDouble, phoenix: LocalPhoenix, project: str
) -> None:
    logs = spread(DAY0, 240, timedelta(minutes=18))  # 80 logs a day over 3 days
    double.add_logs(logs)
    command = [sys.executable, "-m", "ingest", "backfill", "--since", "2026-07-01",
               "--until", "2026-07-04", "--endpoint", phoenix.url, "--project", project,
               "--poll-interval", "0.02", "--export-limit", "50", "--concurrency", "1",
               "--batch-size", "20", "--max-in-flight", "40"]  # fmt: skip
    env = {**_env(), **portkey_env(double)}

    def run_and_kill(when) -> None:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            _wait_until(when, timeout=120)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()

    double.faults.always("GET /exports/{file}", Fault.slow(30))  # hold the download
    run_and_kill(lambda: double.storage_requests)  # killed during a download
    double.faults.clear()
    run_and_kill(lambda: len(read_spans(phoenix.url, project)) >= 30)  # during delivery
    run_and_kill(lambda: len(read_spans(phoenix.url, project)) >= 100)  # after a window

    result = run_cli(*command[3:], "--json", env=portkey_env(double))
    assert result.returncode == 0, result.stderr
    ids = stored(phoenix, project)
    assert len(ids) == len(set(ids)) == 240
    assert set(ids) == ids_of(project, logs)


def test_bad_answers_from_portkey_are_clear_errors_or_quarantined_records(
    double: PortkeyDouble, phoenix: LocalPhoenix, project: str
) -> None:
    double.add_logs(spread(DAY0, 10, timedelta(minutes=30)))
    double.faults.queue("GET /exports/{file}", Fault.bad_line(3, '{"id": "cut-off'))
    result, summary = pull("backfill", double, phoenix, project,
                           "--since", "2026-07-01", "--until", "2026-07-02")  # fmt: skip
    assert result.returncode == 3, result.stderr
    assert summary["quarantined"] == 1
    quarantined = Path(summary["quarantine_file"]).read_text()
    assert '"line": 4' in quarantined and "not valid JSON" in quarantined

    double.faults.always("GET /logs/exports/{id}", Fault.unknown_status("queued"))
    result, _ = pull("backfill", double, phoenix, f"{project}-b",
                     "--since", "2026-07-01", "--until", "2026-07-02")  # fmt: skip
    assert result.returncode == 1
    assert "queued" in result.stderr and "Traceback" not in result.stderr
    double.faults.clear()

    double.faults.always("POST /logs/exports", Fault.html_502())
    result = run_cli(
        "backfill", "--since", "2026-07-01", "--until", "2026-07-02", "--endpoint", phoenix.url,
        "--portkey-retry-deadline", "1", env=portkey_env(double),
    )  # fmt: skip
    assert result.returncode == 1
    assert "/logs/exports" in result.stderr and "Traceback" not in result.stderr


def test_wrong_portkey_key_names_the_scope_and_never_prints_the_key(
    double: PortkeyDouble, phoenix: LocalPhoenix
) -> None:
    result = run_cli(
        "backfill", "--since", "2026-07-01", "--until", "2026-07-02", "--endpoint", phoenix.url,
        env={"PORTKEY_API_KEY": "pk-wrong-key-never-printed", "PORTKEY_BASE_URL": double.base_url},
    )  # fmt: skip
    assert result.returncode == 1
    assert "logs.export" in result.stderr and "PORTKEY_API_KEY" in result.stderr
    assert "pk-wrong-key-never-printed" not in result.stdout + result.stderr


def test_missing_portkey_key_is_a_usage_error(phoenix: LocalPhoenix) -> None:
    result = run_cli("sync", "--endpoint", phoenix.url)
    assert result.returncode == 2
    assert "no Portkey API key: set PORTKEY_API_KEY" in result.stderr


def test_enrichment_adds_gateway_facts_without_changing_ids_and_is_cached(
    double: PortkeyDouble, phoenix: LocalPhoenix, project: str, tmp_path: Path
) -> None:
    logs = [make_log(DAY0 + timedelta(minutes=i), cache_status="HIT", retry_success_count=2,
                     virtual_key="vk-openai-1", span_id="span-1") for i in range(5)]  # fmt: skip
    double.add_logs(logs)
    args = ("--since", "2026-07-01", "--until", "2026-07-02")
    result, plain = pull("backfill", double, phoenix, project, *args)
    assert result.returncode == 0 and plain["delivered"] == 5

    # The same logs enriched: the very same span ids, so Phoenix already holds every one.
    enriched_state = str(tmp_path / "enriched-state")
    result, again = pull("backfill", double, phoenix, project, *args, "--enrich",
                         "--state-dir", enriched_state)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (again["delivered"], again["already_present"]) == (0, 5)
    assert len(double.requests_to("GET /logs/{id}")) == 5

    result, other = pull("backfill", double, phoenix, f"{project}-q", *args, "--enrich",
                         "--state-dir", enriched_state)  # fmt: skip
    assert result.returncode == 0 and other["delivered"] == 5
    assert len(double.requests_to("GET /logs/{id}")) == 5, "the second run used the cache"
    for span in read_spans(phoenix.url, f"{project}-q"):
        assert span["attributes"]["portkey.cache_status"] == "HIT"
        assert span["attributes"]["portkey.retry_success_count"] == 2
        assert span["attributes"]["portkey.virtual_key"] == "vk-openai-1"


def test_two_shards_cover_the_range_exactly_once_one_after_the_other_and_at_once(
    double: PortkeyDouble, phoenix: LocalPhoenix, project: str
) -> None:
    logs = spread(DAY0, 96, timedelta(hours=1))  # 24 logs on each of 4 days
    double.add_logs(logs)
    args = ("--since", "2026-07-01", "--until", "2026-07-05")
    for shard in ("1/2", "2/2"):
        result, summary = pull("backfill", double, phoenix, project, *args, "--shard", shard)
        assert result.returncode == 0, result.stderr
        assert (summary["windows_done"], summary["shard"]) == (2, shard)
    ids = stored(phoenix, project)
    assert len(ids) == len(set(ids)) == 96 and set(ids) == ids_of(project, logs)

    together = f"{project}-together"
    command = [sys.executable, "-m", "ingest", "backfill", *args, "--endpoint", phoenix.url,
               "--project", together, "--poll-interval", "0.02",
               "--export-limit", "50"]  # fmt: skip
    env = {**_env(), **portkey_env(double)}
    workers = [
        subprocess.Popen([*command, "--shard", shard], cwd=REPO, env=env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for shard in ("1/2", "2/2")
    ]  # fmt: skip
    for worker in workers:
        _, stderr = worker.communicate(timeout=300)
        assert worker.returncode == 0, stderr
    ids = stored(phoenix, together)
    assert len(ids) == len(set(ids)) == 96 and set(ids) == ids_of(together, logs)


def test_shard_with_advance_sync_is_refused(double: PortkeyDouble, phoenix: LocalPhoenix) -> None:
    result = run_cli(
        "backfill", "--since", "2026-07-01", "--until", "2026-07-02", "--shard", "1/2",
        "--advance-sync", "--endpoint", phoenix.url, env=portkey_env(double),
    )  # fmt: skip
    assert result.returncode == 2
    assert "--advance-sync cannot be used with --shard" in result.stderr


def test_backfill_refuses_a_range_the_retention_policy_would_delete_unless_forced(
    double: PortkeyDouble, start_phoenix, project: str
) -> None:
    server = start_phoenix(env={"PHOENIX_DEFAULT_RETENTION_POLICY_DAYS": "30"})
    logs = spread(datetime.now(UTC) - timedelta(days=40), 3, timedelta(days=10))
    double.add_logs(logs)
    since = (datetime.now(UTC) - timedelta(days=41)).date().isoformat()
    until = (datetime.now(UTC) - timedelta(days=5)).date().isoformat()
    args = ("backfill", "--since", since, "--until", until, "--endpoint", server.url,
            "--project", project, "--poll-interval", "0.02", "--window", "40d")  # fmt: skip
    result = run_cli(*args, env=portkey_env(double))
    assert result.returncode == 2
    assert (
        f"Phoenix's retention policy 'Default' for project '{project}' deletes traces older "
        "than 30 days" in result.stderr
    )
    assert "pass --force to import them anyway" in result.stderr
    assert double.requests_to("POST /logs/exports") == [], "nothing was started"

    result = run_cli(*args, "--force", env=portkey_env(double))
    assert result.returncode == 0, result.stderr
    assert "Going ahead because of --force" in result.stderr
    assert "timeRangeStart=" in result.stderr, "a link whose range shows the backfill"
    assert set(stored(server, project)) == ids_of(project, logs)


def test_trace_trees_come_out_as_portkey_shows_them(
    double: PortkeyDouble, phoenix: LocalPhoenix, project: str
) -> None:
    """Portkey: agent-root -> (plan, act); act -> tool-call; plus a child of an application
    span that is not a logged request, which stays a root span of the same trace."""
    at = DAY0 + timedelta(hours=3)
    shape = [("root", None), ("plan", "root"), ("act", "root"), ("tool", "act"),
             ("orphan", "app-span-not-logged")]  # fmt: skip
    logs = [
        make_log(at + timedelta(seconds=i), trace_id="agent-run-7", span_id=f"s-{name}",
                 parent_span_id=f"s-{parent}" if parent and "app" not in parent else parent,
                 span_name=name)
        for i, (name, parent) in enumerate(shape)
    ]  # fmt: skip
    double.add_logs(logs)
    result, _ = pull("backfill", double, phoenix, project, "--since", "2026-07-01",
                     "--until", "2026-07-02", "--enrich")  # fmt: skip
    assert result.returncode == 0, result.stderr
    spans = {
        span["attributes"]["portkey.span_name"]: span for span in read_spans(phoenix.url, project)
    }
    assert len({span["context"]["trace_id"] for span in spans.values()}) == 1

    def parent(name: str) -> str | None:
        return spans[name]["parent_id"]

    def span_id(name: str) -> str:
        return spans[name]["context"]["span_id"]

    assert parent("root") is None
    assert parent("plan") == parent("act") == span_id("root")
    assert parent("tool") == span_id("act")
    assert parent("orphan") is None
    assert spans["orphan"]["attributes"]["portkey.parent_span_id"] == "app-span-not-logged"


def test_status_shows_the_watermark_and_backfill_progress(
    double: PortkeyDouble, phoenix: LocalPhoenix, project: str
) -> None:
    double.add_logs(spread(DAY0, 4, timedelta(hours=12)))
    result, _ = pull("backfill", double, phoenix, project, "--since", "2026-07-01",
                     "--until", "2026-07-03", "--advance-sync")  # fmt: skip
    assert result.returncode == 0, result.stderr
    status = run_cli("status")
    assert status.returncode == 0
    assert f"Sync into '{project}': watermark 2026-07-03T00:00:00+00:00" in status.stdout
    assert (
        f"Backfill 2026-07-01T00:00:00+00:00 .. 2026-07-03T00:00:00+00:00 into '{project}': "
        "complete" in status.stdout
    )
    assert "Last backfill:" in status.stdout


def test_a_delivery_error_stops_export_jobs_in_flight_at_once(project: str) -> None:
    """Phoenix is down: the first window fails to deliver while the next windows' export
    jobs are still running. The run reports at once (not when those jobs end) and frees
    the lock."""
    # Jobs never finish by themselves; the first window's job is finished by hand, so which
    # window's job runs first cannot depend on thread timing. A port held bound but not
    # listening refuses connections, and no other server can take it during the test.
    with PortkeyDouble(export_cap=50, job_polls=None) as slow_jobs, socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        slow_jobs.add_logs(spread(DAY0, 30, timedelta(hours=2, minutes=24)))  # 10 a day
        finisher = threading.Thread(target=_finish_first_window, args=(slow_jobs,), daemon=True)
        finisher.start()
        started = time.monotonic()
        result = run_cli(
            "backfill", "--since", "2026-07-01", "--until", "2026-07-04", "--concurrency", "3",
            "--endpoint", f"http://127.0.0.1:{closed.getsockname()[1]}", "--project", project,
            "--retry-deadline", "0.1", "--poll-interval", "0.1", "--log-format", "json",
            env=portkey_env(slow_jobs),
        )  # fmt: skip
        elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stderr
    assert "Error: Phoenix at" in result.stderr
    assert elapsed < 20, f"took {elapsed:.1f} s: jobs in flight were still polled"
    done = json.loads(result.stderr.splitlines()[-1])
    assert (done["event"], done["outcome"], done["exit_code"]) == ("run_done", "failed", 1)


def _finish_first_window(double: PortkeyDouble, timeout_s: float = 30.0) -> None:
    """Finish the export job of 2026-07-01 as soon as it is running."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for request in list(double.requests):
            if request.route != "POST /logs/exports/{id}/start":
                continue
            export_id = request.path.split("?")[0].rstrip("/").split("/")[-2]
            item = double.export_item(export_id)
            since = str(item["filters"].get("time_of_generation_min", ""))
            if since.startswith("2026-07-01") and item["status"] == "in_progress":
                double.finish_export(export_id)
                return
        time.sleep(0.05)


def test_sync_and_backfill_json_end_with_run_done(
    double: PortkeyDouble, phoenix: LocalPhoenix, project: str
) -> None:
    double.add_logs(spread(DAY0, 4, timedelta(hours=1)))
    result, summary = pull("backfill", double, phoenix, project, "--since", "2026-07-01",
                           "--until", "2026-07-02", "--log-format", "json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert summary["delivered"] == 4
    done = json.loads(result.stderr.splitlines()[-1])
    assert (done["event"], done["outcome"], done["delivered"]) == ("run_done", "ok", 4)
