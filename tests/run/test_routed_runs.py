"""Routing (`--project-from`) and sampling (`--sample`) against a real Phoenix: each log in
its project exactly once, re-runs send nothing, kills are harmless, samples are stable."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from ingest.convert.ids import route, sampled_in, span_hex, span_id_for, trace_id_for
from ingest.convert.records import parse_record
from ingest.phoenix.admin.local_server import LocalPhoenix
from tests.conftest import REPO, read_spans, run_cli
from tests.logs_factory import make_log, write_jsonl
from tests.portkey_double import PortkeyDouble
from tests.portkey_double import make_log as double_log

BAD_VALUES = ["", "tab\there", "x" * 300]


def routed_logs(project: str, count: int) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Logs whose `app` names one of two projects (so every 3-log trace is split), lacks
    one, or holds a value that is no project name; and each log's expected project."""
    logs, where = [], {}
    apps = [f"{project}-alpha", f"{project}-beta", None]
    for index in range(count):
        log = make_log(index)
        app = apps[index % 3]
        if index % 50 == 7:
            app = BAD_VALUES[(index // 50) % len(BAD_VALUES)]
        if app is not None:
            log["metadata"]["app"] = app
        valid = app is not None and app.strip() and "\t" not in app and len(app) <= 200
        where[log["id"]] = app if valid else project
        logs.append(log)
    return logs, where


def by_project(where: dict[str, str]) -> dict[str, set[str]]:
    expected: dict[str, set[str]] = defaultdict(set)
    for log_id, name in where.items():
        expected[name].add(span_hex(span_id_for(name, log_id)))
    return expected


def stored(url: str, projects: list[str]) -> dict[str, list[str]]:
    return {name: [span["context"]["span_id"] for span in read_spans(url, name)]
            for name in projects}  # fmt: skip


def import_json(*args: str) -> tuple[int, dict[str, Any], str]:
    result = run_cli("import", *args, "--json")
    assert result.stdout.strip(), result.stderr
    return result.returncode, json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


def test_a_routed_file_lands_each_log_in_its_project_once_and_reruns_send_nothing(
    phoenix: LocalPhoenix, project: str, tmp_path: Path
) -> None:
    logs, where = routed_logs(project, 150)
    # A parent and its children: one child in the parent's project, one in another.
    parent = make_log(500) | {"span_id": "p-1", "trace_id": "tree"}
    parent["metadata"]["app"] = f"{project}-alpha"
    near = make_log(501) | {"span_id": "c-1", "parent_span_id": "p-1", "trace_id": "tree"}
    near["metadata"]["app"] = f"{project}-alpha"
    far = make_log(502) | {"span_id": "c-2", "parent_span_id": "p-1", "trace_id": "tree"}
    far["metadata"]["app"] = f"{project}-beta"
    logs += [far, parent, near]  # the child before its parent: the link does not care
    where |= {parent["id"]: f"{project}-alpha", near["id"]: f"{project}-alpha",
              far["id"]: f"{project}-beta"}  # fmt: skip
    write_jsonl(tmp_path / "export.jsonl", logs)
    expected = by_project(where)
    args = (str(tmp_path / "export.jsonl"), "--endpoint", phoenix.url, "--project", project,
            "--project-from", "metadata.app")  # fmt: skip

    code, first, stderr = import_json(*args)
    assert code == 0, stderr
    assert (first["read"], first["delivered"], first["already_present"]) == (153, 153, 0)
    assert first["route_fallbacks"] == 3, "one of each bad value"
    assert "metadata.app is empty (no project name; the first 20 are logged)" in stderr
    assert first["projects"] == {name: len(ids) for name, ids in sorted(expected.items())}
    assert set(first["links"]) == set(expected)
    held = stored(phoenix.url, sorted(expected))
    for name, ids in expected.items():
        assert sorted(held[name]) == sorted(ids), name
    # billed cost, routing, outcome (no cache status here), read back in each project
    assert (first["annotations"], first["annotation_failures"]) == (3 * 153, 0)

    # A Portkey trace split over projects is a trace in each, of the logs routed there.
    spans = {s["context"]["span_id"]: s for s in read_spans(phoenix.url, f"{project}-beta")}
    trace_of = spans[span_hex(span_id_for(f"{project}-beta", logs[1]["id"]))]
    assert (
        trace_of["context"]["trace_id"]
        == f"{trace_id_for(f'{project}-beta', logs[1]['trace_id'], logs[1]['id']):032x}"
    )
    # The parent in another project stays an attribute; the one in the same project links.
    far_span = spans[span_hex(span_id_for(f"{project}-beta", far["id"]))]
    assert far_span["parent_id"] is None
    assert far_span["attributes"]["portkey.parent_span_id"] == "p-1"
    alpha = {s["context"]["span_id"]: s for s in read_spans(phoenix.url, f"{project}-alpha")}
    near_span = alpha[span_hex(span_id_for(f"{project}-alpha", near["id"]))]
    assert near_span["parent_id"] == span_hex(span_id_for(f"{project}-alpha", parent["id"]))

    status = run_cli("status").stdout
    assert f"[{project} [project from metadata.app]]  done" in status
    assert f"'{project}-alpha' {len(expected[f'{project}-alpha'])}" in status, status

    code, second, _ = import_json(*args)
    assert code == 0 and (second["files_already_done"], second["delivered"]) == (1, 0)
    code, third, _ = import_json(*args, "--state-dir", str(tmp_path / "fresh-state"))
    assert code == 0 and (third["delivered"], third["already_present"]) == (0, 153)
    assert stored(phoenix.url, sorted(expected)) == held


def test_route_only_creates_no_project_beyond_the_list(
    phoenix: LocalPhoenix, project: str, tmp_path: Path
) -> None:
    """A gateway user can put any value in the routing field; --route-only bounds the
    projects a run creates to the ones the operator listed."""
    logs = [make_log(index) for index in range(12)]
    for index, log in enumerate(logs):
        log["metadata"]["app"] = [f"{project}-kept", f"{project}-rogue-{index}", None][index % 3]
    write_jsonl(tmp_path / "export.jsonl", logs)
    code, summary, stderr = import_json(
        str(tmp_path / "export.jsonl"), "--endpoint", phoenix.url, "--project", project,
        "--project-from", "metadata.app", "--route-only", f"{project}-kept",
    )  # fmt: skip
    assert code == 0, stderr
    assert summary["projects"] == {project: 8, f"{project}-kept": 4}
    assert summary["route_fallbacks"] == 0
    names = {
        p["name"] for p in requests.get(f"{phoenix.url}/v1/projects", timeout=10).json()["data"]
    }
    assert f"{project}-kept" in names
    assert not [name for name in names if "-rogue-" in name]
    assert len(read_spans(phoenix.url, project)) == 8


def _count(url: str, projects: list[str]) -> int:
    return sum(len(read_spans(url, name)) for name in projects)


def test_a_routed_import_killed_mid_run_then_rerun_is_exact(
    phoenix: LocalPhoenix, project: str, tmp_path: Path, isolated_env: Path
) -> None:
    logs, where = routed_logs(project, 900)
    write_jsonl(tmp_path / "export.jsonl", logs)
    expected = by_project(where)
    command = [sys.executable, "-m", "ingest", "import", str(tmp_path / "export.jsonl"),
               "--endpoint", phoenix.url, "--project", project, "--project-from",
               "metadata.app", "--batch-size", "100", "--max-in-flight", "300"]  # fmt: skip
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 180
    while _count(phoenix.url, sorted(expected)) < 400 and time.monotonic() < deadline:
        time.sleep(0.3)
    process.send_signal(signal.SIGKILL)
    process.wait()
    state = json.loads((isolated_env / "state.json").read_text())
    (entry,) = state["files"].values()
    assert entry["project"] == f"{project} [project from metadata.app]"
    assert 0 < entry["line"] < 900, "killed with part of the file committed"

    code, summary, stderr = import_json(*command[4:])
    assert code == 0, stderr
    assert summary["delivered"] + summary["already_present"] == 900 - entry["line"]
    held = stored(phoenix.url, sorted(expected))
    for name, ids in expected.items():
        assert len(held[name]) == len(set(held[name])) == len(ids), name
        assert set(held[name]) == ids, name


def test_sample_half_keeps_the_same_whole_traces_in_two_runs_with_separate_state(
    phoenix: LocalPhoenix, project: str, tmp_path: Path
) -> None:
    logs = [make_log(index) for index in range(300)]  # traces of 3 logs
    write_jsonl(tmp_path / "export.jsonl", logs)
    kept: list[set[str]] = []
    for run in ("one", "two"):
        target = f"{project}-{run}"
        code, summary, stderr = import_json(
            str(tmp_path / "export.jsonl"), "--endpoint", phoenix.url, "--project", target,
            "--sample", "0.5", "--state-dir", str(tmp_path / f"state-{run}"),
        )  # fmt: skip
        assert code == 0, stderr
        spans = read_spans(phoenix.url, target)
        assert summary["delivered"] == len(spans)
        assert summary["sampled_out"] == 300 - len(spans)
        traces: dict[str, int] = defaultdict(int)
        for span in spans:
            traces[span["attributes"]["portkey.trace_id"]] += 1
        assert set(traces.values()) == {3}, "whole traces only"
        kept.append({span["attributes"]["portkey.log_id"] for span in spans})
        state = json.loads((tmp_path / f"state-{run}" / "state.json").read_text())
        (entry,) = state["files"].values()
        assert entry["complete"] and entry["sampled_out"] == summary["sampled_out"]
    assert kept[0] == kept[1]
    assert 90 <= len(kept[0]) <= 210, "about half"


# ---- sync and backfill (Portkey played by tests/portkey_double.py) ------------------------

DAY0 = datetime(2026, 7, 1, tzinfo=UTC)


def double_logs(project: str, count: int, start: datetime, step: timedelta) -> list[dict]:
    """Deterministic ids, traces of 3 logs, `app` naming one of two projects or missing."""
    apps = [f"{project}-alpha", f"{project}-beta", None]
    logs = []
    for index in range(count):
        metadata = {"_user": "u"} | ({"app": apps[index % 3]} if apps[index % 3] else {})
        logs.append(
            double_log(
                start + step * index,
                id=f"{project}-log-{index}",
                # Not from the project's random name: the same traces are sampled in on
                # every run, so reconcile's allowance meets the same sample each time.
                trace_id=f"routed-trace-{index // 3}",
                metadata=metadata,
            )
        )
    return logs


def expect(logs: list[dict], project: str, rate: float) -> tuple[dict[str, set[str]], int]:
    """Each project's span ids, and how many logs are sampled out: the pure functions."""
    expected: dict[str, set[str]] = defaultdict(set)
    out = 0
    for log in logs:
        record = parse_record({**log, "created_at": log["created_at"].isoformat()})
        if not sampled_in(record, rate):
            out += 1
            continue
        name = route(record, "metadata.app", project).project
        expected[name].add(span_hex(span_id_for(name, record.log_id)))
    return expected, out


def pull(double: PortkeyDouble, phoenix: LocalPhoenix, project: str, *args: str,
         ) -> tuple[int, dict[str, Any], str]:  # fmt: skip
    exports = ("--poll-interval", "0.02", "--export-limit", "50") if args[0] != "reconcile" else ()
    result = run_cli(
        *args, "--endpoint", phoenix.url, "--project", project, *exports, "--json",
        env={"PORTKEY_API_KEY": double.api_key, "PORTKEY_BASE_URL": double.base_url},
    )  # fmt: skip
    lines = result.stdout.strip().splitlines()
    return result.returncode, json.loads(lines[-1]) if lines else {}, result.stderr


ROUTED = ("--project-from", "metadata.app", "--sample", "0.5")


def test_backfill_routes_and_samples_as_import_does_and_resync_and_reconcile_follow(
    phoenix: LocalPhoenix, project: str, tmp_path: Path
) -> None:
    logs = double_logs(project, 90, DAY0, timedelta(minutes=48))  # three days
    expected, out = expect(logs, project, 0.5)
    kept = sum(len(ids) for ids in expected.values())
    assert 0 < out < 90
    with PortkeyDouble(export_cap=50, job_polls=1) as double:
        double.add_logs(logs)
        span = ("--since", "2026-07-01", "--until", "2026-07-04")
        code, first, stderr = pull(double, phoenix, project, "backfill", *span, *ROUTED)
        assert code == 0, stderr
        assert (first["windows_done"], first["delivered"], first["sampled_out"]) == (3, kept, out)
        held = stored(phoenix.url, sorted(expected))
        for name, ids in expected.items():
            assert sorted(held[name]) == sorted(ids), name
        code, again, _ = pull(double, phoenix, project, "backfill", *span, *ROUTED)
        assert (code, again["windows_skipped"], again["read"]) == (0, 3, 0)

        # The same logs as an export file, imported with its own state: nothing to send.
        write_jsonl(
            tmp_path / "export.jsonl",
            [{**log, "created_at": log["created_at"].isoformat()} for log in logs],
        )
        code, imported, _ = import_json(
            str(tmp_path / "export.jsonl"), "--endpoint", phoenix.url, "--project", project,
            *ROUTED, "--state-dir", str(tmp_path / "import-state"),
        )  # fmt: skip
        assert (code, imported["delivered"], imported["already_present"]) == (0, 0, kept)
        assert imported["sampled_out"] == out

        routed = ("--routed-project", f"{project}-alpha", "--routed-project", f"{project}-beta")
        code, report, stderr = pull(double, phoenix, project, "reconcile", *span, *routed,
                                    "--sample", "0.5")  # fmt: skip
        assert code == 0, stderr
        assert report["sample"] == 0.5 and set(report["projects"]) == set(expected)
        assert sum(p["portkey_spans"] for p in report["projects"].values()) == kept
        assert report["totals"]["portkey"]["requests"] == 90
        code, unscaled, _ = pull(double, phoenix, project, "reconcile", *span, *routed)
        assert code == 1 and unscaled["totals"]["missing"] == out, "unscaled: the sampled out"

        code, resynced, stderr = pull(
            double,
            phoenix,
            project,
            "resync",
            "--since",
            "2026-07-02",
            "--until",
            "2026-07-03",
            *ROUTED,
            "--yes",
        )
        assert code == 0, stderr
        day2 = [log for log in logs if log["created_at"].day == 2]
        kept2 = sum(len(ids) for ids in expect(day2, project, 0.5)[0].values())
        assert (resynced["deleted"], resynced["verified"]) == (kept2, kept2)
        after = stored(phoenix.url, sorted(expected))
        for name, ids in expected.items():
            assert sorted(after[name]) == sorted(ids), name
        assert double.errors == []


def test_sync_routes_and_samples_as_import_does(
    phoenix: LocalPhoenix, project: str, isolated_env: Path
) -> None:
    now = datetime.now(UTC)
    logs = double_logs(project, 30, now - timedelta(hours=3), timedelta(minutes=5))
    expected, out = expect(logs, project, 0.5)
    with PortkeyDouble(export_cap=50, job_polls=1) as double:
        double.add_logs(logs)
        code, summary, stderr = pull(double, phoenix, project, "sync", *ROUTED)
        assert code == 0, stderr
        assert summary["sampled_out"] == out
        held = stored(phoenix.url, sorted(expected))
        for name, ids in expected.items():
            assert sorted(held[name]) == sorted(ids), name
        state = json.loads((isolated_env / "state.json").read_text())
        (entry,) = state["sync"].values()
        assert entry["watermark"] and entry["project"].endswith("[project from metadata.app, "
                                                                "sample 0.5]")  # fmt: skip
        code, again, _ = pull(double, phoenix, project, "sync", *ROUTED)
        assert (code, again["delivered"]) == (0, 0)
        assert double.errors == []


def test_check_reads_routed_logs_back_from_their_projects_and_deletes_only_its_own(
    phoenix: LocalPhoenix,
) -> None:
    from ingest.phoenix.reader import import_phoenix_client

    client = import_phoenix_client()(base_url=phoenix.url)
    check = ("check", "--endpoint", phoenix.url, "--project-from", "metadata.agent")
    result = run_cli(*check)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "check passed" in result.stdout and "FAIL" not in result.stdout
    assert "Deleted the check's project 'research-assistant'" in result.stdout
    assert "research-assistant" not in {p["name"] for p in client.projects.list()}

    client.projects.create(name="research-assistant")  # now it exists before the check
    result = run_cli(*check)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "'research-assistant'" not in result.stdout.split("check passed")[1]
    assert len(read_spans(phoenix.url, "research-assistant")) == 4, "kept, with its spans"
    client.projects.delete(project_name="research-assistant")


def test_sync_and_backfill_drop_content_as_import_does(
    phoenix: LocalPhoenix, project: str, isolated_env: Path
) -> None:
    """--drop-content on the pulling commands: no message, body or tool text reaches Phoenix;
    the model, tokens and billed cost stay, and the span names what was dropped."""
    marker = "MARKER-7f3a"

    def planted(at: datetime, index: int) -> dict:
        return double_log(
            at,
            id=f"{project}-drop-{index}",
            request={"model": "gpt-4o", "messages": [
                {"role": "system", "content": f"system {marker}"},
                {"role": "user", "content": f"question {marker}"},
            ]},
            response={"model": "gpt-4o", "choices": [{"index": 0, "finish_reason": "stop",
                      "message": {"role": "assistant", "content": f"answer {marker}"}}],
                      "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}},
        )  # fmt: skip

    now = datetime.now(UTC)
    old = [planted(DAY0 + timedelta(hours=5 * n), n) for n in range(4)]
    recent = [planted(now - timedelta(hours=2, minutes=n), 10 + n) for n in range(3)]
    with PortkeyDouble(export_cap=50, job_polls=1) as double:
        double.add_logs(old + recent)
        span = ("--since", "2026-07-01", "--until", "2026-07-02")
        code, backfilled, stderr = pull(double, phoenix, project, "backfill", *span,
                                        "--drop-content")  # fmt: skip
        assert (code, backfilled["delivered"]) == (0, 4), stderr
        code, synced, stderr = pull(double, phoenix, project, "sync", "--drop-content")
        assert (code, synced["delivered"]) == (0, 3), stderr
        assert double.errors == []
    spans = read_spans(phoenix.url, project)
    assert len(spans) == 7
    assert marker not in json.dumps(spans)
    for stored_span in spans:
        attributes = stored_span["attributes"]
        assert attributes["llm.model_name"] == "gpt-4o"
        assert attributes["llm.token_count.total"] == 12
        assert attributes["llm.cost.total"] == 0.0105 / 100  # Portkey bills in cents
        assert "input.value" not in attributes and "output.value" not in attributes
        assert "llm.input_messages" in json.dumps(attributes["portkey.ingest.content_dropped"])
