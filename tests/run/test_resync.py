"""`resync` against a real Phoenix: exact replacement, nothing else touched, crash-safe."""

from __future__ import annotations

import copy
import json
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ingest.convert.common import MAPPING_VERSION
from ingest.convert.ids import span_hex, span_id_for
from ingest.phoenix.admin.deletes import KILL_AFTER_ENV
from ingest.phoenix.admin.local_server import LocalPhoenix
from ingest.phoenix.api import import_phoenix_client
from ingest.phoenix.reader import ANNOTATOR, NAMES
from tests.conftest import read_spans, run_cli
from tests.logs_factory import BASE_TIME, make_log, write_jsonl
from tests.portkey_double import PortkeyDouble
from tests.portkey_double import make_log as double_log


def spans_by_log(phoenix: LocalPhoenix, project: str) -> dict[str | None, list[dict]]:
    out: dict[str | None, list[dict]] = {}
    for span in read_spans(phoenix.url, project):
        out.setdefault(span["attributes"].get("portkey.log_id"), []).append(span)
    return out


def annotation_counts(phoenix: LocalPhoenix, project: str, span_ids: list[str]) -> Counter:
    client = import_phoenix_client()(base_url=phoenix.url)
    found = client.spans.get_span_annotations(
        span_ids=span_ids, project_identifier=project, include_annotation_names=list(NAMES),
        limit=10_000,
    )  # fmt: skip
    return Counter((a["span_id"], a["name"]) for a in found if a.get("identifier") == ANNOTATOR)


def metadata_of(attributes: dict) -> dict:
    """The metadata attribute as Phoenix returns it: a JSON string, or flattened keys."""
    value = attributes.get("metadata")
    if value is not None:
        return json.loads(value) if isinstance(value, str) else value
    return {k.removeprefix("metadata."): v for k, v in attributes.items()
            if k.startswith("metadata.")}  # fmt: skip


def changed(logs: list[dict], indexes: tuple[int, ...]) -> list[dict]:
    """The same logs, some of them changed in Portkey: model, metadata and cost."""
    out = copy.deepcopy(logs)
    for i in indexes:
        out[i]["ai_model"] = "gpt-4.1-mini"
        out[i]["response"]["model"] = "gpt-4.1-mini-2025-04-14"
        out[i]["metadata"] = {"_user": "user-x", "env": "resynced"}
        out[i]["cost"] = 1.25
    return out


def send_foreign_span(phoenix: LocalPhoenix, project: str, at: datetime) -> str:
    """A live-instrumented (non-Portkey) span in the same project and time range."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(resource=Resource({"openinference.project.name": project}))
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{phoenix.url}/v1/traces"))
    )
    start = int(at.timestamp() * 1e9)
    span = provider.get_tracer("live").start_span("live-call", start_time=start)
    span.set_attribute("app.kind", "live")
    span.end(end_time=start + 5_000_000)
    provider.shutdown()
    span_id = f"{span.get_span_context().span_id:016x}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if any(s["context"]["span_id"] == span_id for s in read_spans(phoenix.url, project)):
            return span_id
        time.sleep(0.3)
    raise AssertionError("the foreign span was not stored")


def cli(phoenix: LocalPhoenix, project: str, *args: str, env: dict | None = None) -> Any:
    return run_cli(*args, "--endpoint", phoenix.url, "--project", project, env=env)


def last_json(result: Any) -> dict:
    return json.loads(result.stdout.strip().splitlines()[-1])


def assert_exact(phoenix: LocalPhoenix, project: str, logs: list[dict], foreign: int = 0) -> None:
    """Every log stored once with the current mapping, its annotations once per name."""
    stored = spans_by_log(phoenix, project)
    assert len(stored.pop(None, [])) == foreign
    assert set(stored) == {log["id"] for log in logs}
    assert all(len(spans) == 1 for spans in stored.values())
    for log in logs:
        attributes = stored[log["id"]][0]["attributes"]
        assert attributes["llm.model_name"] == log["response"]["model"]
        assert metadata_of(attributes) == log["metadata"]
        assert attributes["portkey.ingest.mapping_version"] == MAPPING_VERSION
    ids = [span["context"]["span_id"] for spans in stored.values() for span in spans]
    counts = annotation_counts(phoenix, project, ids)
    assert counts and max(counts.values()) == 1
    assert {span_id for span_id, _ in counts} == set(ids)


def test_resync_replaces_changed_logs_and_touches_nothing_else(
    phoenix: LocalPhoenix, project: str, tmp_path: Path
) -> None:
    logs = [make_log(i) for i in range(12)]
    original = write_jsonl(tmp_path / "export.jsonl", logs)
    assert cli(phoenix, project, "import", str(original)).returncode == 0
    foreign = send_foreign_span(phoenix, project, BASE_TIME + timedelta(seconds=5))

    new = changed(logs, (1, 4, 7))
    updated = write_jsonl(tmp_path / "export-updated.jsonl", new)
    assert cli(phoenix, project, "import", str(updated)).returncode == 0
    before = spans_by_log(phoenix, project)  # a plain import changes nothing: write-once
    assert before[logs[4]["id"]][0]["attributes"]["llm.model_name"] == "gpt-4o-mini-2024-07-18"

    dry = cli(phoenix, project, "resync", str(updated), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would delete 12 spans in 4 traces" in dry.stdout and "re-send 12" in dry.stdout
    assert spans_by_log(phoenix, project)[logs[4]["id"]] == before[logs[4]["id"]]

    refused = cli(phoenix, project, "resync", str(updated))  # no terminal, no --yes
    assert refused.returncode == 2
    assert "rerun with --yes" in refused.stderr

    result = cli(phoenix, project, "resync", str(updated), "--yes", "--json")
    assert result.returncode == 0, result.stderr
    summary = last_json(result)
    assert (summary["deleted"], summary["resent"], summary["verified"]) == (12, 12, 12)
    assert summary["other_spans_before"] == summary["other_spans_after"] == 1
    assert_exact(phoenix, project, new, foreign=1)
    assert foreign in {s["context"]["span_id"] for s in read_spans(phoenix.url, project)}

    again = cli(phoenix, project, "resync", str(updated), "--yes", "--json")  # always safe
    assert again.returncode == 0, again.stderr
    assert_exact(phoenix, project, new, foreign=1)


def test_resync_of_some_logs_of_shared_traces_leaves_every_other_log(
    phoenix: LocalPhoenix, project: str, tmp_path: Path
) -> None:
    logs = [make_log(i) for i in range(12)]  # traces of three logs each, interleaved in time
    assert cli(phoenix, project, "import", str(write_jsonl(tmp_path / "a.jsonl", logs))
               ).returncode == 0  # fmt: skip
    some = changed(logs, (0, 4, 8))
    part = write_jsonl(tmp_path / "part.jsonl", [some[i] for i in (0, 4, 8)])
    result = cli(phoenix, project, "resync", str(part), "--yes", "--json")
    assert result.returncode == 0, result.stderr
    summary = last_json(result)
    assert (summary["deleted"], summary["resent"], summary["verified"]) == (3, 3, 3)
    assert summary["other_spans_before"] == summary["other_spans_after"] == 6  # logs 1-7 but 4
    assert_exact(phoenix, project, some)


def test_killed_after_the_first_delete_the_next_resync_is_exact(
    phoenix: LocalPhoenix, project: str, tmp_path: Path
) -> None:
    logs = [make_log(i) for i in range(10)]
    assert cli(phoenix, project, "import", str(write_jsonl(tmp_path / "a.jsonl", logs))
               ).returncode == 0  # fmt: skip
    new = changed(logs, (2, 3))
    updated = write_jsonl(tmp_path / "b.jsonl", new)
    killed = cli(phoenix, project, "resync", str(updated), "--yes", env={KILL_AFTER_ENV: "1"})
    assert killed.returncode == -9
    assert len(read_spans(phoenix.url, project)) == 9  # the hole

    status = run_cli("status")
    assert "Resync in progress" in status.stdout and "b.jsonl" in status.stdout
    # The next resync (here of nothing but what is pending: any file) finishes it first.
    other = write_jsonl(tmp_path / "c.jsonl", [])
    result = cli(phoenix, project, "resync", str(other), "--yes", "--json")
    assert result.returncode == 0, result.stderr
    assert last_json(result)["verified"] == 10
    assert_exact(phoenix, project, new)
    assert "Resync in progress" not in run_cli("status").stdout


# ---- windows, against the Portkey double ------------------------------------------------

DAY0 = datetime(2026, 7, 1, tzinfo=UTC)


@pytest.fixture
def double() -> Iterator[PortkeyDouble]:
    with PortkeyDouble(export_cap=50, job_polls=1) as server:
        yield server
        assert server.errors == []


def test_resync_of_one_window_of_a_backfilled_range(
    double: PortkeyDouble, phoenix: LocalPhoenix, project: str
) -> None:
    logs = [double_log(DAY0 + timedelta(minutes=50 * i), trace_id=f"t-{i // 4}")
            for i in range(3 * 24 * 60 // 50)]  # fmt: skip
    double.add_logs(logs)
    env = {"PORTKEY_API_KEY": double.api_key, "PORTKEY_BASE_URL": double.base_url}
    pull = ("--poll-interval", "0.02", "--export-limit", "50")
    done = cli(phoenix, project, "backfill", "--since", "2026-07-01", "--until", "2026-07-04",
               *pull, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    before = {s["attributes"]["portkey.log_id"]: s for s in read_spans(phoenix.url, project)}
    day2 = [log for log in logs if log["created_at"].day == 2]
    with double._lock:  # Portkey changed the logs of day 2 after the backfill
        for log in day2:
            double._logs[log["id"]]["ai_model"] = "gpt-4.1"
            double._logs[log["id"]]["metadata"] = {"_user": "user-123", "fixed": True}

    result = cli(
        phoenix,
        project,
        "resync",
        "--since",
        "2026-07-02",
        "--until",
        "2026-07-03",
        "--window",
        "6h",
        "--concurrency",
        "2",
        *pull,
        "--yes",
        "--json",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    summary = last_json(result)
    print("resync of one day:", {k: summary[k] for k in ("units", "logs", "deleted", "resent",
          "verified", "other_spans_before", "other_spans_after", "elapsed_s")})  # fmt: skip
    n = len(day2)
    assert (summary["deleted"], summary["resent"], summary["verified"]) == (n, n, n)
    after = {s["attributes"]["portkey.log_id"]: s for s in read_spans(phoenix.url, project)}
    assert set(after) == set(before) and len(after) == len(logs)
    for log in logs:
        span, old = after[log["id"]], before[log["id"]]
        assert span["context"] == old["context"] and span["parent_id"] == old["parent_id"]
        fixed = log["created_at"].day == 2
        assert ("fixed" in metadata_of(span["attributes"])) is fixed
        if not fixed:
            assert span["attributes"] == old["attributes"]
    ids = [span_hex(span_id_for(project, log["id"])) for log in logs]
    counts = annotation_counts(phoenix, project, ids)
    assert max(counts.values()) == 1 and {i for i, _ in counts} == set(ids)
    status = run_cli("status").stdout
    assert "Resync in progress" not in status and "Last resync" in status
