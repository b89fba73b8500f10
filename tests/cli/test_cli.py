"""What a user sees: help, the convert format, check, status, errors and exit codes."""

from __future__ import annotations

import gzip
import json
import logging
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from ingest.cli import cli
from ingest.cli.report import command_run, range_link
from ingest.convert.ids import span_hex, span_id_for
from ingest.convert.redact import Redactor, use_rules
from ingest.errors import IngestError
from ingest.phoenix.admin.local_server import LocalPhoenix, free_port
from ingest.phoenix.api import PhoenixSettings
from ingest.run.logs import JsonFormatter, TextFormatter
from ingest.run.state import StateStore, backfill_entry, shard_dir
from tests.conftest import REPO, SAMPLE_LOGS, invoke_cli, read_spans, run_cli
from tests.logs_factory import make_log, write_jsonl, write_logs

COMMANDS = [
    "import",
    "convert",
    "check",
    "status",
    "demo",
    "sync",
    "backfill",
    "reconcile",
    "doctor",
    "config",
]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_examples(command: str) -> None:
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output


def test_top_level_help_documents_exit_codes() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for code in ("0 all delivered", "3 finished, some records quarantined", "75 another run"):
        assert code in result.output


HEAVY = {
    "requests", "urllib3", "httpx", "tenacity", "google.protobuf", "phoenix.client",
    "opentelemetry.sdk.trace", "opentelemetry.exporter.otlp.proto.common.trace_encoder",
}  # fmt: skip


@pytest.mark.parametrize("args", [["--help"], ["sync", "--no-such-option"], ["status"]])
def test_help_usage_errors_and_status_start_without_the_network_and_otlp_libraries(
    args: list[str],
) -> None:
    """`--help`, a usage error or `status` (cron runs the tool too) answer at once: the HTTP
    clients, the retry library and the OpenTelemetry SDK and encoder load only in a command
    that sends or converts (they were about half of every start-up)."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "ingest", *args],
                            capture_output=True, text=True, cwd=REPO, timeout=60)  # fmt: skip
    assert result.returncode in (0, 2), result.stderr
    loaded = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()
              if line.startswith("import time:")}  # fmt: skip
    assert "ingest.cli.main" in loaded
    assert not HEAVY & loaded, sorted(HEAVY & loaded)


def test_an_in_process_run_leaves_logging_as_it_found_it(caplog: pytest.LogCaptureFixture) -> None:
    """`invoke_cli` (tests that need no process of their own) puts back what a run sets up:
    the next test in the same worker logs and captures as usual."""
    before = list(logging.getLogger().handlers)
    result = invoke_cli("convert", "-q", "--log-format", "json", str(SAMPLE_LOGS))
    assert json.loads(result.stderr.splitlines()[-1])["event"] == "run_done", result.stderr
    assert logging.getLogger().handlers == before
    logging.getLogger("ingest.tests").warning("logged after the run")  # -q set ERROR on `ingest`
    assert "logged after the run" in caplog.text


def test_convert_writes_one_documented_span_per_distinct_log() -> None:
    result = CliRunner().invoke(cli, ["convert", str(SAMPLE_LOGS), "--project", "p"])
    assert result.exit_code == 0, result.output
    expected = json.loads((SAMPLE_LOGS / "EXPECTED.json").read_text())
    spans = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(spans) == expected["spans"]
    rfc3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
    for span in spans:
        assert set(span) == {
            "trace_id", "span_id", "parent_span_id", "name", "start_time", "end_time",
            "status", "attributes", "resource",
        }  # fmt: skip
        assert re.fullmatch(r"[0-9a-f]{32}", span["trace_id"])
        assert re.fullmatch(r"[0-9a-f]{16}", span["span_id"])
        assert rfc3339.match(span["start_time"]) and rfc3339.match(span["end_time"])
        assert span["status"]["code"] in {"OK", "ERROR", "UNSET"}
        assert span["resource"]["openinference.project.name"] == "p"
    by_id = {span["attributes"]["portkey.log_id"]: span for span in spans}
    assert set(by_id) == set(expected["logs"])
    for log_id, span in by_id.items():
        assert span["span_id"] == span_hex(span_id_for("p", log_id))


def test_convert_of_many_files_writes_every_file(tmp_path: Path) -> None:
    """No file of a run is taken for one already in its stream: once, a finished file's
    progress entry was freed and its id, reused by the next file's, skipped that file as
    "already imported" (spans missing, exit 0)."""
    for index in range(40):
        write_logs(tmp_path / f"export-{index:02d}.jsonl", 2, prefix=f"file{index}")
    for _ in range(3):
        result = invoke_cli("convert", str(tmp_path))
        assert result.returncode == 0, result.stderr
        assert len(result.stdout.splitlines()) == 80, result.stderr
        assert "already imported" not in result.stderr


def test_convert_is_deterministic_and_project_scoped() -> None:
    runner = CliRunner()
    first = runner.invoke(cli, ["convert", str(SAMPLE_LOGS), "--project", "p"]).stdout
    again = runner.invoke(cli, ["convert", str(SAMPLE_LOGS), "--project", "p"]).stdout
    other = runner.invoke(cli, ["convert", str(SAMPLE_LOGS), "--project", "q"]).stdout
    assert first == again
    ids = {json.loads(line)["span_id"] for line in first.splitlines()}
    assert ids.isdisjoint(json.loads(line)["span_id"] for line in other.splitlines())


def test_convert_reports_rejected_lines_and_exits_3(tmp_path: Path) -> None:
    quarantine = tmp_path / "q.jsonl"
    result = CliRunner().invoke(
        cli, ["convert", str(SAMPLE_LOGS / "malformed"), "--quarantine-file", str(quarantine)]
    )
    assert result.exit_code == 3
    assert len(result.stdout.splitlines()) == 1
    assert "bad-lines.jsonl:6: rejected: no log id: field 'id' is missing or empty" in result.stderr
    assert len(quarantine.read_text().splitlines()) == 11


def test_import_quarantines_bad_lines_with_file_line_and_reason(
    phoenix: LocalPhoenix, project: str, tmp_path: Path
) -> None:
    quarantine = tmp_path / "rejected.jsonl"
    result = run_cli(
        "import", str(SAMPLE_LOGS / "malformed"), "--endpoint", phoenix.url,
        "--project", project, "--quarantine-file", str(quarantine),
    )  # fmt: skip
    assert result.returncode == 3, result.stderr
    assert re.search(r"quarantined\s+11", result.stdout)
    assert f"Quarantined records (with reasons): {quarantine}" in result.stdout
    entries = [json.loads(line) for line in quarantine.read_text().splitlines()]
    expected = json.loads((SAMPLE_LOGS / "malformed" / "EXPECTED.json").read_text())
    assert [entry["line"] for entry in entries] == [e["line"] for e in expected["quarantine"]]
    for entry, want in zip(entries, expected["quarantine"], strict=True):
        assert entry["source"].endswith("bad-lines.jsonl")
        assert want["reason_contains"] in entry["reason"]
    (good,) = read_spans(phoenix.url, project)
    assert "\x00" not in json.dumps(good), "NUL characters are stripped before sending"


def test_check_passes_on_the_sample_logs_and_spans_hold_no_secret(
    any_phoenix: LocalPhoenix, project: str
) -> None:
    phoenix = any_phoenix  # the newest and the oldest supported Phoenix
    result = run_cli("check", "--endpoint", phoenix.url, "--project", project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "check passed" in result.stdout
    assert "FAIL" not in result.stdout
    last = result.stderr.strip().splitlines()[-1]  # check ends with run_done like every run
    assert " run_done command=check outcome=ok exit_code=0" in last, result.stderr
    stored = json.dumps(read_spans(phoenix.url, project))
    assert "sk-test-FAKE" not in stored


def test_check_fails_on_a_wrong_or_missing_span(phoenix: LocalPhoenix, tmp_path: Path) -> None:
    logs = shutil.copytree(
        SAMPLE_LOGS, tmp_path / "logs", ignore=shutil.ignore_patterns("malformed")
    )
    expected = json.loads((logs / "EXPECTED.json").read_text())
    wrong_id = next(iter(expected["logs"]))
    expected["logs"][wrong_id]["model"] = "not-the-model"
    expected["logs"]["00000000-0000-4000-8000-000000000000"] = {"model": "gpt-4o"}
    (logs / "EXPECTED.json").write_text(json.dumps(expected))
    result = run_cli("check", "--endpoint", phoenix.url, "--logs", str(logs))
    assert result.returncode == 1
    assert re.search(r"spans stored\s+70\s+69\s+FAIL", result.stdout)
    assert f"FAIL model: {wrong_id}: model expected 'not-the-model'" in result.stdout
    assert "00000000-0000-4000-8000-000000000000: span" in result.stdout
    assert "not found in Phoenix" in result.stdout
    assert "check FAILED" in result.stdout
    last = result.stderr.strip().splitlines()[-1]
    assert " run_done command=check outcome=failed exit_code=1" in last, result.stderr


def test_status_shows_files_and_last_run(phoenix: LocalPhoenix, project: str,
                                         tmp_path: Path) -> None:  # fmt: skip
    write_logs(tmp_path / "export.jsonl", 5)
    run_cli("import", str(tmp_path / "export.jsonl"), "--endpoint", phoenix.url,
            "--project", project)  # fmt: skip
    result = CliRunner().invoke(cli, ["status"])
    assert result.exit_code == 0
    assert f"{tmp_path / 'export.jsonl'}  [{project}]  done  delivered 5" in result.output
    assert f"into '{project}' (ok): read 5, delivered 5" in result.output
    as_json = json.loads(CliRunner().invoke(cli, ["status", "--json"]).stdout)
    assert as_json["version"] == 1


def test_unreachable_phoenix_fails_with_exit_1_and_says_what_to_do(tmp_path: Path) -> None:
    write_logs(tmp_path / "export.jsonl", 3)
    url = f"http://127.0.0.1:{free_port()}"
    result = run_cli("import", str(tmp_path / "export.jsonl"), "--endpoint", url,
                     "--retry-deadline", "0.1")  # fmt: skip
    assert result.returncode == 1
    assert f"Error: Phoenix at {url} did not" in result.stderr
    assert "(last error: connection refused)" in result.stderr
    assert (
        "Check that Phoenix is running and reachable (PHOENIX_COLLECTOR_ENDPOINT)" in result.stderr
    )
    assert "Traceback" not in result.stderr


def test_phoenix_keys_wrong_missing_and_right(start_phoenix, project: str, tmp_path: Path) -> None:
    admin_secret = "admin-Secret-0123456789-abcdefghijkl"
    server = start_phoenix(env={
        "PHOENIX_ENABLE_AUTH": "true",
        "PHOENIX_SECRET": "jwt-Secret-0123456789-abcdefghijklmn",
        "PHOENIX_ADMIN_SECRET": admin_secret,
    })  # fmt: skip
    write_logs(tmp_path / "export.jsonl", 4)
    args = (
        "import",
        str(tmp_path / "export.jsonl"),
        "--endpoint",
        server.url,
        "--project",
        project,
    )
    wrong_key = "wrong-key-that-must-never-be-printed-42"
    result = run_cli(*args, env={"PHOENIX_API_KEY": wrong_key})
    assert result.returncode == 1
    assert (
        f"Error: Phoenix at {server.url} rejected the API key (HTTP 401): "
        "set PHOENIX_API_KEY (or --api-key) to a valid Phoenix API key." in result.stderr
    )
    assert wrong_key not in result.stdout + result.stderr

    result = run_cli(*args)
    assert result.returncode == 1
    assert "requires authentication (HTTP 401)" in result.stderr

    result = run_cli(*args, env={"PHOENIX_API_KEY": admin_secret})
    assert result.returncode == 0, result.stderr
    assert admin_secret not in result.stdout + result.stderr
    assert len(read_spans(server.url, project, api_key=admin_secret)) == 4


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["import", str(tmp_path / "nope.jsonl")])
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_corrupt_gzip_is_quarantined_from_the_damage_naming_the_file(
    phoenix: LocalPhoenix, tmp_path: Path, isolated_env: Path
) -> None:
    broken = tmp_path / "broken.jsonl.gz"
    data = gzip.compress(b'{"id": "x"}\n' * 1000)
    broken.write_bytes(data[: len(data) // 2])
    result = run_cli("import", str(broken), "--endpoint", phoenix.url)
    assert result.returncode == 3, result.stderr
    (quarantine,) = (isolated_env / "quarantine").iterdir()
    (entry,) = map(json.loads, quarantine.read_text().splitlines())
    assert entry["reason"].startswith(f"cannot read {broken} past byte ")
    assert "download it again" in entry["reason"]


def test_corrupt_state_file_stops_with_advice(tmp_path: Path, isolated_env: Path) -> None:
    isolated_env.mkdir(parents=True)
    (isolated_env / "state.json").write_text("{not json")
    write_jsonl(tmp_path / "export.jsonl", [])
    result = run_cli("import", str(tmp_path / "export.jsonl"))
    assert result.returncode == 1
    assert f"Error: the state file {isolated_env / 'state.json'} is corrupt" in result.stderr
    assert "Move it aside and rerun" in result.stderr


def test_empty_project_name_is_a_usage_error(tmp_path: Path) -> None:
    write_logs(tmp_path / "export.jsonl", 1)
    result = CliRunner().invoke(cli, ["import", str(tmp_path / "export.jsonl"), "--project", " "])
    assert result.exit_code == 2
    assert "the Phoenix project name (--project / PHOENIX_PROJECT_NAME) is empty" in result.output


def test_json_log_lines_are_objects_with_the_documented_keys(
    phoenix: LocalPhoenix, project: str, tmp_path: Path
) -> None:
    write_logs(tmp_path / "export.jsonl", 5)
    result = run_cli("import", str(tmp_path / "export.jsonl"), "--endpoint", phoenix.url,
                     "--project", project, "--log-format", "json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert lines, "off a terminal, progress is logged"
    for line in lines:
        assert {"time", "level", "logger", "event"} <= set(line)
    events = {line["event"]: line for line in lines}
    assert events["file_done"]["delivered"] == 5
    assert {"file", "project", "lines", "duration_s"} <= set(events["file_done"])
    done = lines[-1]
    assert done["event"] == "run_done", "every run ends with one summary object"
    assert (done["outcome"], done["exit_code"], done["delivered"]) == ("ok", 0, 5)


def test_a_failed_run_also_ends_with_a_run_done_line(tmp_path: Path) -> None:
    write_logs(tmp_path / "export.jsonl", 1)
    result = run_cli("import", str(tmp_path / "export.jsonl"), "--endpoint",
                     f"http://127.0.0.1:{free_port()}", "--retry-deadline", "0.1",
                     "--log-format", "json")  # fmt: skip
    assert result.returncode == 1
    done = json.loads(result.stderr.splitlines()[-1])
    assert (done["event"], done["outcome"], done["exit_code"]) == ("run_done", "failed", 1)
    assert "did not" in done["error"]


def test_an_endpoint_that_is_not_phoenix_is_refused_with_the_setting_to_fix(
    phoenix: LocalPhoenix, tmp_path: Path
) -> None:
    write_logs(tmp_path / "export.jsonl", 1)
    wrong = f"{phoenix.url}/not-phoenix"
    result = run_cli("import", str(tmp_path / "export.jsonl"), "--endpoint", wrong)
    assert result.returncode == 1
    assert f"Error: Phoenix at {wrong} did not answer a span read as Phoenix does" in result.stderr
    assert "Check PHOENIX_COLLECTOR_ENDPOINT points at a Phoenix server." in result.stderr


@pytest.mark.phoenix  # the demo starts its own Phoenix
def test_demo_starts_phoenix_imports_the_samples_and_links_to_them(tmp_path: Path) -> None:
    result = run_cli("demo", "--no-serve", "--state-dir", str(tmp_path / "demo"))
    assert result.returncode == 0, result.stderr
    assert "Phoenix is up at http://127.0.0.1:" in result.stdout
    assert re.search(r"delivered\s+69", result.stdout)
    assert re.search(r"duplicates skipped\s+1", result.stdout)
    assert "timeRangeStart=2026-07-" in result.stdout, "the link shows the backfilled range"
    again = run_cli("demo", "--no-serve", "--state-dir", str(tmp_path / "demo"))
    assert again.returncode == 0, again.stderr
    assert "(6 already imported, skipped)" in again.stdout


# --------------------------------------------------------------------------- one run path


def test_convert_quarantines_spans_the_encoder_refuses_and_prints_import_counts(
    tmp_path: Path,
) -> None:
    logs = [make_log(0), make_log(1), make_log(2), make_log(1)]
    logs[0]["created_at"] = "1960-01-01T00:00:00Z"  # before 1970: OTLP cannot carry it
    # Conversion refuses it first (the encoder is the safety net behind it, tested in
    # tests/run/test_delivery.py): either way the record is quarantined with its reason.
    write_jsonl(tmp_path / "export.jsonl", logs)
    quarantine = tmp_path / "q.jsonl"
    result = CliRunner().invoke(
        cli, ["convert", str(tmp_path / "export.jsonl"), "--quarantine-file", str(quarantine)]
    )
    assert result.exit_code == 3
    assert len(result.stdout.splitlines()) == 2, "the sound records are still converted"
    assert "export.jsonl:1: rejected: no usable timestamp: " in result.stderr
    (entry,) = [json.loads(line) for line in quarantine.read_text().splitlines()]
    assert entry["line"] == 1 and "1970" in entry["reason"]
    assert re.search(r"records read\s+4", result.stderr)
    assert re.search(r"spans written\s+2", result.stderr)
    assert re.search(r"duplicates skipped\s+1", result.stderr), "dedup by span id, counted"
    assert re.search(r"quarantined\s+1", result.stderr)


def test_a_fixed_quarantine_file_can_be_imported_as_it_is(tmp_path: Path) -> None:
    bad = make_log(7)
    bad["id"] = ""
    write_jsonl(tmp_path / "export.jsonl", [bad, make_log(8)])
    quarantine = tmp_path / "q.jsonl"
    first = CliRunner().invoke(
        cli, ["convert", str(tmp_path / "export.jsonl"), "--quarantine-file", str(quarantine)]
    )
    assert first.exit_code == 3
    (entry,) = [json.loads(line) for line in quarantine.read_text().splitlines()]
    assert set(entry) == {"time", "source", "line", "reason", "record"}
    fixed = json.loads(entry["record"])
    fixed["id"] = "fixed-7"  # the user fixes the line inside the entry
    (tmp_path / "fixed.jsonl").write_text(json.dumps({**entry, "record": json.dumps(fixed)}) + "\n")
    again = CliRunner().invoke(cli, ["convert", str(tmp_path / "fixed.jsonl")])
    assert again.exit_code == 0, again.stderr
    (span,) = [json.loads(line) for line in again.stdout.splitlines()]
    assert span["attributes"]["portkey.log_id"] == "fixed-7"
    unfixed = CliRunner().invoke(cli, ["convert", str(quarantine)])
    assert unfixed.exit_code == 3
    assert "rejected: no log id" in unfixed.stderr, "the original reason, not the wrapper's"


# --------------------------------------------------------------------------- run_done


def test_run_done_is_the_last_line_with_stdout_and_stderr_in_one_file(tmp_path: Path) -> None:
    log = tmp_path / "cron.log"
    with log.open("w") as out:
        subprocess.run([sys.executable, "-m", "ingest", "convert", str(SAMPLE_LOGS)],
                       stdout=out, stderr=out, check=False, cwd=REPO)  # fmt: skip
    lines = log.read_text().splitlines()
    assert " INFO run_done command=convert outcome=ok exit_code=0 " in lines[-1]
    assert any(line.startswith("  spans written") for line in lines[:-1])


@pytest.mark.parametrize(
    ("args", "outcome", "code"),
    [
        (["sync", "--bogus"], "usage_error", 2),
        (["import", "--batch-size", "x", "f"], "usage_error", 2),
        (["status", "--state-dir", "{bad}"], "failed", 1),
        (["--config", "{missing}", "status"], "usage_error", 2),
    ],
)
def test_errors_before_and_in_a_command_end_with_run_done(
    tmp_path: Path, args: list[str], outcome: str, code: int
) -> None:
    (tmp_path / "state.json").write_text("{")
    args = [a.format(bad=tmp_path, missing=tmp_path / "nope.toml") for a in args]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == code
    last = result.stderr.splitlines()[-1]
    assert " INFO run_done " in last and f" outcome={outcome} exit_code={code}" in last
    assert "Error: " in result.stderr


def test_ctrl_c_ends_with_run_done_interrupted_130() -> None:
    @click.command("probe")
    def probe() -> None:
        def action() -> None:
            raise KeyboardInterrupt

        with command_run() as run:
            run.done = action()

    result = CliRunner().invoke(probe, [])
    assert result.exit_code == 130
    assert "Interrupted: progress up to the last verified batch is saved." in result.stderr
    assert "run_done command=probe outcome=interrupted exit_code=130" in result.stderr


def test_on_a_terminal_run_done_is_short_and_off_it_complete() -> None:
    fields = {"command": "import", "outcome": "failed", "exit_code": 1, "delivered": 3,
              "error": "Phoenix at http://x did not answer", "elapsed_s": 1.5}  # fmt: skip
    record = logging.LogRecord("ingest.events", logging.INFO, "", 0, "run_done", (), None)
    record.event, record.fields = "run_done", fields
    short = TextFormatter(terminal=True).format(record)
    assert short.endswith("run_done command=import outcome=failed exit_code=1 delivered=3")
    record.msg = "run_done"
    full = TextFormatter(terminal=False).format(record)
    assert 'error="Phoenix at http://x did not answer"' in full


def test_record_values_in_log_lines_cannot_forge_lines_or_drive_the_terminal() -> None:
    hostile = "id-1\n2026-01-01 00:00:00,000 INFO run_done outcome=ok\x1b[2J"
    record = logging.LogRecord("ingest", logging.WARNING, "", 0, "conversion failed for log %s",
                               (hostile,), None)  # fmt: skip
    line = TextFormatter().format(record)
    assert "\n" not in line and "\x1b" not in line
    assert "id-1\\n2026-01-01" in line and "\\u001b[2J" in line
    event_record = logging.LogRecord("ingest.events", logging.INFO, "", 0, "file_done", (), None)
    event_record.event, event_record.fields = "file_done", {"file": hostile}
    line = TextFormatter().format(event_record)
    assert "\n" not in line and "\x1b" not in line


# --------------------------------------------------------------------------- status, links


def test_status_shows_each_runs_outcome_and_the_shards(tmp_path: Path) -> None:
    with StateStore(tmp_path).locked() as store:
        store.record_run("import", "quarantined", 3,
                         {"project": "p", "read": 5, "delivered": 4, "already_present": 0,
                          "quarantined": 1})  # fmt: skip
        failed = {"project": "p", "read": 0, "delivered": 0, "already_present": 0,
                  "quarantined": 0, "error": "Phoenix at http://x did not answer"}  # fmt: skip
        store.record_run("sync", "failed", 1, failed)
    for index in (1, 2):
        with StateStore(shard_dir(tmp_path, (index, 2))).locked() as shard:
            entry = backfill_entry(shard.doc, "k", "p", datetime(2026, 7, 1, tzinfo=UTC),
                                   datetime(2026, 7, 5, tzinfo=UTC), 86400)  # fmt: skip
            shard.commit_backfill_window(entry, f"w{index}")
            shard.record_run("backfill", "interrupted", 130,
                             {"project": "p", "read": 9, "delivered": 7, "already_present": 0,
                              "quarantined": 0})  # fmt: skip
    result = CliRunner().invoke(cli, ["status", "--state-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "into 'p' (quarantined, exit 3): read 5, delivered 4" in result.output
    assert "into 'p' (failed, exit 1: Phoenix at http://x did not answer)" in result.output
    for index in (1, 2):
        assert f"Shard {index}/2 ({tmp_path / 'shards' / f'{index}-of-2' / 'state.json'}):" in (
            result.output
        )
    assert (
        "  Backfill 2026-07-01T00:00:00+00:00 .. 2026-07-05T00:00:00+00:00 into 'p': "
        "1 windows done" in result.output
    )
    assert "(interrupted, exit 130): read 9, delivered 7" in result.output
    as_json = json.loads(CliRunner().invoke(cli, ["status", "--state-dir", str(tmp_path),
                                                  "--json"]).stdout)  # fmt: skip
    assert set(as_json["shards"]) == {"1-of-2", "2-of-2"}


def test_a_link_to_a_project_that_does_not_exist_yet_carries_the_range() -> None:
    settings = PhoenixSettings(endpoint=f"http://127.0.0.1:{free_port()}", project="new proj")
    link = range_link(settings, datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 6, 2, tzinfo=UTC))
    assert link.startswith(f"{settings.base_url}/redirects/projects/new%20proj ")
    assert "then choose 2026-06-01T00:00:00.000Z .. 2026-06-02T00:00:00.000Z" in link


def test_error_lines_escape_values_and_mask_secrets_by_the_runs_rules(tmp_path: Path) -> None:
    forged = "2026-01-01 00:00:00,000 INFO run_done outcome=ok"
    log_id = f"id-7\n{forged}\x1b[2J"

    @click.command("probe")
    @click.option("--redact-pattern", multiple=True)
    def probe(redact_pattern: tuple[str, ...]) -> None:
        def action() -> None:
            use_rules(Redactor(patterns=redact_pattern))
            raise IngestError(
                f"Portkey has no log {log_id} (it said: password=hunter2-Zq EMP-123456)"
            )

        with command_run() as run:
            run.done = action()

    result = CliRunner().invoke(probe, ["--redact-pattern", r"EMP-\d{6}"])
    assert result.exit_code == 1
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert error == (
        "Error: Portkey has no log id-7\\n2026-01-01 00:00:00,000 INFO run_done outcome=ok"
        "\\u001b[2J (it said: password=[REDACTED] [REDACTED])"
    )
    assert not any(line.startswith(forged) for line in result.stderr.splitlines())
    assert "hunter2" not in result.stderr and "EMP-123456" not in result.stderr


def test_log_lines_mask_secrets_by_the_runs_rules_and_count_them() -> None:
    redactor = Redactor(keys=["employee_*"], patterns=[r"EMP-\d{6}"])
    use_rules(redactor)
    try:
        fields = {"file": "/data/EMP-123456.jsonl", "error": "refused: api_key=Zq9-secret"}
        record = logging.LogRecord("ingest.events", logging.INFO, "", 0, "file_done", (), None)
        record.event, record.fields = "file_done", fields
        text = TextFormatter().format(record)
        payload = json.loads(JsonFormatter().format(record))
        plain = logging.LogRecord("ingest", logging.WARNING, "", 0, "Bearer tok-77 for %s",
                                  ("EMP-654321",), None)  # fmt: skip
        message = TextFormatter().format(plain)
    finally:
        use_rules(None)
    for line in (text, json.dumps(payload), message):
        assert "EMP-" not in line and "Zq9-secret" not in line and "tok-77" not in line, line
    assert payload["file"] == "/data/[REDACTED].jsonl"
    assert redactor.counts["logs"] == 6  # 2 fields in each format, 2 in the message


# --------------------------------------------------------------------------- progress line


def test_the_cli_draws_the_runs_progress_events_on_a_terminal_only() -> None:
    """run/ only says where it is; the cli draws it, one line redrawn in place and cleared
    when the run ends, and nothing at all when stderr is not a terminal."""
    import io

    from ingest.cli.report import draw_progress
    from ingest.run.logs import progress_end, progress_event

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal, pipe = Terminal(), io.StringIO()
    try:
        draw_progress(pipe)
        progress_event("a.jsonl: line 10", 10, 0, 0.5, 2.0)
        progress_end()
        assert pipe.getvalue() == ""
        draw_progress(terminal)
        progress_event("a.jsonl: line 10", 10, 2, 0.25, 2.0)
        first = "a.jsonl: line 10 | verified 10 | already there 2 | 5/s | ETA 6s"
        assert terminal.getvalue() == "\r" + first
        progress_event("b.jsonl.gz: line 40", 40, 2, None, 4.0)  # gzip: no size, no ETA
        second = "b.jsonl.gz: line 40 | verified 40 | already there 2 | 10/s"
        assert terminal.getvalue() == f"\r{first}\r{second.ljust(len(first))}"
        progress_end()
        assert terminal.getvalue().endswith(f"\r{' ' * len(second)}\r")
        # A file name is the user's, but it is drawn on their terminal: escaped, as log lines
        drawn = Terminal()
        draw_progress(drawn)
        progress_event("x\x1b[2J\r.jsonl: line 1", 1, 0, None, 1.0)
        assert (
            drawn.getvalue()
            == "\rx\\u001b[2J\\r.jsonl: line 1 | verified 1 | already there 0 | 1/s"
        )
    finally:
        draw_progress(pipe)
