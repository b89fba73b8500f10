"""Routing (`--project-from`) and sampling (`--sample`) against a real Phoenix: each log in
its project exactly once, re-runs send nothing, kills are harmless, samples are stable."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from ingest.convert.ids import span_hex, span_id_for, trace_id_for
from ingest.phoenix.admin.local_server import LocalPhoenix
from tests.conftest import REPO, read_spans, run_cli
from tests.logs_factory import make_log, write_jsonl

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
    assert "(no project name)" in stderr
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

    code, second, _ = import_json(*args)
    assert code == 0 and (second["files_already_done"], second["delivered"]) == (1, 0)
    code, third, _ = import_json(*args, "--state-dir", str(tmp_path / "fresh-state"))
    assert code == 0 and (third["delivered"], third["already_present"]) == (0, 153)
    assert stored(phoenix.url, sorted(expected)) == held


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
