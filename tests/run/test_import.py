"""`import` against a real Phoenix: exactly once, resumable, and nothing lost under faults."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ingest.convert.ids import span_hex, span_id_for
from ingest.phoenix.admin.local_server import LocalPhoenix
from tests.conftest import REPO, read_spans, run_cli
from tests.logs_factory import MARKER, planted_sample_logs, write_jsonl, write_logs


def expected_ids(project: str, logs: list[dict]) -> set[str]:
    return {span_hex(span_id_for(project, log["id"])) for log in logs}


def stored_ids(url: str, project: str) -> list[str]:
    return [span["context"]["span_id"] for span in read_spans(url, project)]


def import_json(*args: str, env: dict[str, str] | None = None) -> tuple[int, dict]:
    result = run_cli("import", *args, "--json", env=env)
    assert result.stdout.strip(), result.stderr
    return result.returncode, json.loads(result.stdout.strip().splitlines()[-1])


def test_import_twice_stores_each_span_once_and_sends_nothing_new(
    any_phoenix: LocalPhoenix, project: str, tmp_path: Path
) -> None:
    phoenix = any_phoenix  # the newest and the oldest supported Phoenix
    logs = write_logs(tmp_path / "export.jsonl", 120)
    args = (str(tmp_path / "export.jsonl"), "--endpoint", phoenix.url, "--project", project)

    code, first = import_json(*args)
    assert code == 0
    assert (first["read"], first["delivered"], first["already_present"]) == (120, 120, 0)
    ids = stored_ids(phoenix.url, project)
    assert sorted(ids) == sorted(expected_ids(project, logs))

    code, second = import_json(*args)
    assert code == 0
    assert (second["files_already_done"], second["read"], second["delivered"]) == (1, 0, 0)

    # Even with the state file gone, Phoenix is asked first and nothing is sent twice.
    code, third = import_json(*args, "--state-dir", str(tmp_path / "other-state"))
    assert code == 0
    assert (third["delivered"], third["already_present"]) == (0, 120)
    assert sorted(stored_ids(phoenix.url, project)) == sorted(ids)


def test_same_logs_into_two_projects_get_separate_spans(
    phoenix: LocalPhoenix, project: str, tmp_path: Path
) -> None:
    logs = write_logs(tmp_path / "export.jsonl", 10)
    for name in (f"{project}-a", f"{project}-b"):
        code, summary = import_json(
            str(tmp_path / "export.jsonl"), "--endpoint", phoenix.url, "--project", name
        )
        assert code == 0 and summary["delivered"] == 10
        assert set(stored_ids(phoenix.url, name)) == expected_ids(name, logs)


def _wait_for_spans(url: str, project: str, minimum: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        count = len(read_spans(url, project))
        if count >= minimum:
            return count
        time.sleep(0.2)
    raise AssertionError(f"Phoenix never held {minimum} spans of {project}")


def test_spans_lost_by_a_phoenix_restart_are_found_and_sent_again(
    start_phoenix, project: str, tmp_path: Path
) -> None:
    """Phoenix acknowledges spans into memory; killed before storing them, they are lost.
    The import notices through verification and sends them again: nothing is lost."""
    server = start_phoenix()
    logs = write_logs(tmp_path / "export.jsonl", 1500)
    importer = subprocess.Popen(
        [sys.executable, "-m", "ingest", "import", str(tmp_path / "export.jsonl"),
         "--endpoint", server.url, "--project", project, "--json",
         "--verify-grace", "3", "--max-in-flight", "1500"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    _wait_for_spans(server.url, project, 1)
    server.stop(kill=True)  # its in-memory queue of acknowledged spans is gone
    server.start()  # same port, same database
    stdout, stderr = importer.communicate(timeout=400)
    assert importer.returncode == 0, stderr
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["resent"] > 0, "the lost spans were detected and sent again"
    assert sorted(stored_ids(server.url, project)) == sorted(expected_ids(project, logs))


def test_phoenix_with_a_full_queue_answers_503_and_nothing_is_lost(
    start_phoenix, project: str, tmp_path: Path
) -> None:
    server = start_phoenix(env={"PHOENIX_MAX_SPANS_QUEUE_SIZE": "50"})
    logs = write_logs(tmp_path / "export.jsonl", 600)
    code, summary = import_json(
        str(tmp_path / "export.jsonl"), "--endpoint", server.url, "--project", project,
        "--batch-size", "100", "--max-in-flight", "600",
    )  # fmt: skip
    assert code == 0
    assert summary["retried"] > 0, "Phoenix answered 503 and the sender retried"
    assert sorted(stored_ids(server.url, project)) == sorted(expected_ids(project, logs))


def test_importer_killed_repeatedly_then_rerun_holds_exactly_the_expected_spans(
    phoenix: LocalPhoenix, project: str, tmp_path: Path, isolated_env: Path
) -> None:
    logs = write_logs(tmp_path / "a.jsonl", 700, prefix="a")
    logs += write_logs(tmp_path / "b.jsonl", 500, prefix="b")
    command = [sys.executable, "-m", "ingest", "import", str(tmp_path / "a.jsonl"),
               str(tmp_path / "b.jsonl"), "--endpoint", phoenix.url, "--project", project,
               "--batch-size", "100", "--max-in-flight", "300"]  # fmt: skip
    # Killed during start-up, while sending, while verifying, and in the second file.
    for spans_before_kill in (0, 1, 500, 900):
        process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)  # fmt: skip
        if spans_before_kill:
            _wait_for_spans(phoenix.url, project, spans_before_kill, timeout=180)
        else:
            time.sleep(0.5)
        process.send_signal(signal.SIGKILL)
        process.wait()
    state = json.loads((isolated_env / "state.json").read_text())
    assert any(entry["offset"] for entry in state["files"].values()), "progress was committed"

    code, summary = import_json(*command[4:])
    assert code == 0
    stored = stored_ids(phoenix.url, project)
    assert len(stored) == len(set(stored)) == 1200
    assert set(stored) == expected_ids(project, logs)
    assert summary["delivered"] + summary["already_present"] <= 1200


@pytest.mark.parametrize("how", ["gzip"])
def test_gzip_files_import_like_plain_ones(
    phoenix: LocalPhoenix, project: str, tmp_path: Path, how: str
) -> None:
    import gzip

    logs = write_logs(tmp_path / "plain.jsonl", 30)
    with gzip.open(tmp_path / "export.jsonl.gz", "wb") as handle:
        handle.write((tmp_path / "plain.jsonl").read_bytes())
    code, summary = import_json(
        str(tmp_path / "export.jsonl.gz"), "--endpoint", phoenix.url, "--project", project
    )
    assert code == 0 and summary["delivered"] == 30
    assert set(stored_ids(phoenix.url, project)) == expected_ids(project, logs)


def _run_on_a_terminal(args: list[str]) -> tuple[int, str]:
    """Run the CLI with stderr on a pseudo-terminal; its exit code and what it drew there."""
    master, slave = os.openpty()
    command = [sys.executable, "-m", "ingest", *args]
    process = subprocess.Popen(
        command, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave
    )
    os.close(slave)
    drawn = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        drawn += chunk
    os.close(master)
    process.communicate(timeout=120)
    return process.returncode, drawn.decode(errors="replace")


def test_import_draws_a_progress_line_on_a_terminal(
    phoenix: LocalPhoenix, project: str, tmp_path: Path
) -> None:
    write_logs(tmp_path / "export.jsonl", 30)
    args = ["import", str(tmp_path / "export.jsonl"), "--endpoint", phoenix.url,
            "--project", project, "--batch-size", "10"]  # fmt: skip
    code, drawn = _run_on_a_terminal(args)
    assert code == 0, drawn
    assert "\rexport.jsonl: line 10 | verified " in drawn
    assert "export.jsonl: line 30 | verified 30 | already there 0" in drawn


def _ctrl_c_as_on_a_terminal() -> None:
    """Ctrl-C reaches the command, as in an interactive shell. A background job of a
    non-interactive shell (`sh -c 'pytest' &`) starts with SIGINT ignored, and a child
    inherits that: the import would never see the signal this test sends."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _committed(state_file: Path) -> int:
    """Spans committed so far according to a running import's state file."""
    try:
        state = json.loads(state_file.read_text())
    except (OSError, ValueError):  # not written yet
        return 0
    return sum(entry.get("delivered", 0) for entry in state.get("files", {}).values())


def test_runs_record_failed_and_interrupted_outcomes_and_status_shows_them(
    phoenix: LocalPhoenix, project: str, tmp_path: Path, isolated_env: Path
) -> None:
    write_logs(tmp_path / "export.jsonl", 1200)
    process = subprocess.Popen(
        [sys.executable, "-m", "ingest", "import", str(tmp_path / "export.jsonl"), "--endpoint",
         phoenix.url, "--project", project, "--batch-size", "20", "--max-in-flight", "40",
         "--log-format", "json"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_ctrl_c_as_on_a_terminal,
    )  # fmt: skip
    # Watch the run's own state file (saved at each commit), not Phoenix: a read of every
    # span of the project can take longer than the whole run on a busy server.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and _committed(isolated_env / "state.json") < 60:
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be interrupted"
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    done = json.loads(stderr.splitlines()[-1])
    assert (done["event"], done["outcome"], done["exit_code"]) == ("run_done", "interrupted", 130)
    state = json.loads((isolated_env / "state.json").read_text())
    run = state["runs"]["import"]
    (entry,) = state["files"].values()
    assert (run["outcome"], run["exit_code"]) == ("interrupted", 130)
    assert run["delivered"] == entry["delivered"], "delivered counts only committed spans"
    assert entry["delivered"] < 1200
    status = run_cli("status")
    assert f"into '{project}' (interrupted, exit 130): read " in status.stdout

    result = run_cli("import", str(tmp_path / "export.jsonl"), "--endpoint", "http://127.0.0.1:9",
                     "--project", project, "--retry-deadline", "0.5")  # fmt: skip
    assert result.returncode == 1
    status = run_cli("status")
    assert f"into '{project}' (failed, exit 1: Phoenix at http://127.0.0.1:9 did not" in (
        status.stdout
    )


def test_drop_content_stores_no_content_and_keeps_tokens_and_cost(
    phoenix: LocalPhoenix, project: str, tmp_path: Path
) -> None:
    """Markers planted in every content field of every call type of sample_logs/ (issue 25)."""
    records = planted_sample_logs(REPO / "sample_logs")
    export = write_jsonl(tmp_path / "planted.jsonl", records)
    code, summary = import_json(str(export), "--endpoint", phoenix.url, "--project", project,
                                "--drop-content")  # fmt: skip
    assert code in (0, 3), summary
    stored = read_spans(phoenix.url, project)
    assert len(stored) == summary["delivered"] > 40
    assert not [span["name"] for span in stored if MARKER in json.dumps(span, default=str)]
    converted = run_cli("convert", str(export), "--project", project)  # without --drop-content
    expected = {
        json.loads(line)["span_id"]: json.loads(line)["attributes"]
        for line in converted.stdout.splitlines()
    }
    assert sum(MARKER in json.dumps(attrs) for attrs in expected.values()) > 40
    for span in stored:
        got, want = span["attributes"], expected[span["context"]["span_id"]]
        for key in [k for k in want if k.startswith("llm.token_count.")] + ["llm.cost.total"]:
            if key in want:
                assert got[key] == want[key], key
        assert got["portkey.ingest.content_dropped"]


def test_a_file_in_the_docs_vocabulary_stores_the_same_spans_as_in_the_spec_one(
    phoenix: LocalPhoenix, project: str, tmp_path: Path
) -> None:
    """Issue 23, item 1: `ai_provider`, `request_tokens`, ... are read as the spec's names."""
    from ingest.convert.records import DOCS_NAMES

    spec = [json.loads(line) for line in (REPO / "sample_logs" / "errors.jsonl").open()]
    docs = [{DOCS_NAMES.get(key, key): value for key, value in log.items()} for log in spec]
    assert all(set(log) & set(DOCS_NAMES) == set() for log in docs)
    stored = {}
    for name, logs in (("spec", spec), ("docs", docs)):
        path = write_jsonl(tmp_path / f"{name}.jsonl", logs)
        code, summary = import_json(str(path), "--endpoint", phoenix.url,
                                    "--project", f"{project}-{name}")  # fmt: skip
        assert code == 0 and summary["delivered"] == len(logs)
        spans = read_spans(phoenix.url, f"{project}-{name}")
        stored[name] = {s["attributes"]["portkey.log_id"]: (s["name"], s["status_code"],
                        s["status_message"], s["attributes"]) for s in spans}  # fmt: skip
    assert stored["docs"] == stored["spec"]
    assert {facts[3].get("portkey.status_code") for facts in stored["docs"].values()} > {429}
