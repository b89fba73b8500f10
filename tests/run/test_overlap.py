"""Many small files in one delivery stream, against a real Phoenix: killed while several
files are in flight (file k's tail unverified, file k+1 already sent), a rerun lands every
log exactly once."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from ingest.convert.ids import span_hex, span_id_for
from ingest.phoenix.admin.local_server import LocalPhoenix
from tests.conftest import REPO, read_spans, run_cli
from tests.logs_factory import write_logs


def stored_ids(url: str, project: str) -> list[str]:
    return [span["context"]["span_id"] for span in read_spans(url, project)]


def wait_for_spans(url: str, project: str, minimum: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(read_spans(url, project)) >= minimum:
            return
        time.sleep(0.1)
    raise AssertionError(f"Phoenix never held {minimum} spans of {project}")


def test_killed_with_several_files_in_flight_then_rerun_is_exact(
    phoenix: LocalPhoenix, project: str, tmp_path: Path, isolated_env: Path
) -> None:
    # 24 files of 25 logs, batches of 25 and a budget of 400 spans: about 16 files are sent
    # before the first is verified, so every kill lands with several files in flight.
    files, ids_of = [], {}
    for number in range(24):
        path = tmp_path / f"part{number:02d}.jsonl"
        logs = write_logs(path, 25, prefix=f"p{number}")
        files.append(path)
        ids_of[str(path)] = {span_hex(span_id_for(project, log["id"])) for log in logs}
    expected = set().union(*ids_of.values())
    command = [sys.executable, "-m", "ingest", "import", *map(str, files), "--endpoint",
               phoenix.url, "--project", project, "--batch-size", "25", "--max-in-flight",
               "400"]  # fmt: skip
    uncommitted_seen = 0
    for spans_before_kill in (30, 260, 480):
        process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)  # fmt: skip
        wait_for_spans(phoenix.url, project, spans_before_kill)
        process.send_signal(signal.SIGKILL)
        process.wait()
        state_file = isolated_env / "state.json"  # none yet if killed before a commit
        state = json.loads(state_file.read_text()) if state_file.exists() else {"files": {}}
        complete = {e["path"] for e in state["files"].values() if e["complete"]}
        stored = set(stored_ids(phoenix.url, project))
        # Stored in Phoenix, not committed: files that were in flight when it was killed.
        uncommitted_seen += sum(1 for path, ids in ids_of.items()
                                if ids & stored and path not in complete)  # fmt: skip
        assert complete <= set(ids_of), "only whole files are complete"
        for entry in state["files"].values():  # nothing past what Phoenix holds is committed
            committed_lines = entry["line"]
            assert len(ids_of[entry["path"]] & stored) >= committed_lines
    assert uncommitted_seen >= 1, "some kill landed while a file's spans were in flight"

    result = run_cli("import", *command[4:], "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    stored_list = stored_ids(phoenix.url, project)
    assert len(stored_list) == len(set(stored_list)) == 600, "no loss, no duplicate"
    assert set(stored_list) == expected
    assert summary["delivered"] + summary["already_present"] <= 600
    state = json.loads((isolated_env / "state.json").read_text())
    assert all(entry["complete"] for entry in state["files"].values())
    assert len(state["files"]) == 24
