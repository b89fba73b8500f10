"""`sync`, `backfill` and `doctor` against Portkey as it is in the field (the double's field
shapes: the export docs' vocabulary, a Bearer-only control plane, one without the export API),
and Phoenix's refusals (507, a retention policy by count), each against a real Phoenix."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ingest.phoenix.admin.local_server import LocalPhoenix
from ingest.phoenix.admin.models import post_graphql
from ingest.phoenix.api import PhoenixSettings
from tests.conftest import SAMPLE_LOGS, read_spans, run_cli
from tests.portkey_double import PortkeyDouble, make_log

DAY0 = datetime(2026, 7, 1, tzinfo=UTC)
NO_EXPORT_API = "offers no log export API"


def env_for(double: PortkeyDouble, **extra: str) -> dict[str, str]:
    return {"PORTKEY_API_KEY": double.api_key, "PORTKEY_BASE_URL": double.base_url, **extra}


def pull(command: str, double: PortkeyDouble, url: str, project: str, state: Path, *args: str,
         env: dict[str, str] | None = None) -> Any:  # fmt: skip
    return run_cli(
        command, "--endpoint", url, "--project", project, "--state-dir", str(state),
        "--poll-interval", "0.02", *args, env=env or env_for(double),
    )  # fmt: skip


def usage_free_log(at: datetime, index: int) -> dict[str, Any]:
    """A chat log whose response states no usage: the token counts come from the export's
    own fields (req_units / request_tokens ...), the status only from the status field."""
    log = make_log(at, req_units=21 + index, res_units=8, total_units=29 + index)
    del log["response"]["usage"]
    return log


def by_log_id(url: str, project: str) -> dict[str, dict[str, Any]]:
    spans = read_spans(url, project)
    return {span["attributes"]["portkey.log_id"]: span["attributes"] for span in spans}


def assert_field_values(spans: dict[str, dict[str, Any]], logs: list[dict[str, Any]]) -> None:
    assert set(spans) == {log["id"] for log in logs}
    for log in logs:
        attributes = spans[log["id"]]
        assert attributes["llm.provider"] == "openai"
        assert attributes["portkey.ai_org"] == "openai"
        assert attributes["portkey.status_code"] == 200
        assert attributes["llm.token_count.prompt"] == log["req_units"]
        assert attributes["llm.token_count.completion"] == 8
        assert attributes["llm.token_count.total"] == log["total_units"]


# ---- the export docs' vocabulary -------------------------------------------------------------


@pytest.mark.parametrize("vocabulary", ["spec", "docs"])
def test_sync_and_backfill_read_either_vocabulary(
    vocabulary: str, phoenix: LocalPhoenix, project: str, tmp_path: Path
) -> None:
    """The same logs exported under the spec's names or the docs' names become the same
    spans: provider, status and token counts (the responses state no usage)."""
    now = datetime.now(UTC).replace(microsecond=0)
    recent = [usage_free_log(now - timedelta(hours=2, minutes=i), i) for i in range(3)]
    old = [usage_free_log(DAY0 + timedelta(hours=i), 10 + i) for i in range(3)]
    with PortkeyDouble(vocabulary=vocabulary, export_cap=50) as double:
        double.add_logs(recent + old)
        synced = pull("sync", double, phoenix.url, project, tmp_path / "state")
        backfilled = pull("backfill", double, phoenix.url, project, tmp_path / "state",
                          "--since", "2026-07-01", "--until", "2026-07-02")  # fmt: skip
        assert double.errors == []
        if vocabulary == "docs":  # the double really spoke the docs' vocabulary
            line = json.loads(next(iter(double._exports.values())).lines[0])
            assert {"ai_provider", "request_tokens", "status_code"} <= set(line)
            assert not {"ai_org", "req_units", "response_status_code"} & set(line)
    assert synced.returncode == 0, synced.stderr
    assert backfilled.returncode == 0, backfilled.stderr
    assert_field_values(by_log_id(phoenix.url, project), recent + old)


# ---- Prisma AIRS AI Gateway: Bearer only, no export API --------------------------------------


@pytest.fixture
def airs() -> Iterator[PortkeyDouble]:
    """A control plane as the Prisma AIRS AI Gateway's spec describes it."""
    with PortkeyDouble(auth="bearer", export_api=False) as server:
        server.add_logs([make_log(DAY0 + timedelta(hours=1))])
        yield server
        assert server.errors == []


def watermarks(state: Path) -> list[Any]:
    path = state / "state.json"
    if not path.exists():
        return []
    return [entry.get("watermark") for entry in json.loads(path.read_text())["sync"].values()]


@pytest.mark.parametrize("auth", ["x-portkey-api-key", "bearer"])
def test_sync_and_backfill_name_a_deployment_without_exports(
    airs: PortkeyDouble, phoenix: LocalPhoenix, project: str, tmp_path: Path, auth: str
) -> None:
    state = tmp_path / "state"
    env = env_for(airs, PORTKEY_AUTH=auth)
    synced = pull("sync", airs, phoenix.url, project, state, env=env)
    backfilled = pull("backfill", airs, phoenix.url, project, state,
                      "--since", "2026-07-01", "--until", "2026-07-02", env=env)  # fmt: skip
    for result in (synced, backfilled):
        assert result.returncode == 1, result.stderr
        assert NO_EXPORT_API in result.stderr
        assert "POST /logs/exports: HTTP 404" in result.stderr
        assert "Logs > Export" in result.stderr and "portkey-phoenix-ingest import" in result.stderr
    assert watermarks(state) in ([], [None]), "nothing committed"
    assert read_spans(phoenix.url, project) == []


def test_doctor_says_which_header_works_and_that_exports_are_missing(
    airs: PortkeyDouble, phoenix: LocalPhoenix
) -> None:
    result = run_cli("doctor", "--endpoint", phoenix.url, "--json", env=env_for(airs))
    assert result.returncode == 1, result.stderr
    checks = {check["name"]: check for check in json.loads(result.stdout)}
    auth = checks["Portkey auth"]
    assert auth["status"] == "FAIL"
    assert "rejected sent as x-portkey-api-key (HTTP 401" in auth["detail"]
    assert "accepted sent as bearer (HTTP 404)" in auth["detail"]
    assert auth["fix"].startswith("set PORTKEY_AUTH to bearer")
    exports = checks["Portkey export API"]
    assert exports["status"] == "FAIL"
    assert NO_EXPORT_API in exports["detail"] and "import" in exports["fix"]

    fixed = run_cli("doctor", "--endpoint", phoenix.url, "--json",
                    env=env_for(airs, PORTKEY_AUTH="bearer"))  # fmt: skip
    names = {check["name"] for check in json.loads(fixed.stdout)}
    assert "Portkey auth" not in names and "Portkey export API" in names


def test_bearer_auth_syncs_from_a_bearer_only_control_plane(
    phoenix: LocalPhoenix, project: str, tmp_path: Path
) -> None:
    logs = [make_log(datetime.now(UTC) - timedelta(hours=1, minutes=i)) for i in range(4)]
    with PortkeyDouble(auth="bearer") as double:
        double.add_logs(logs)
        refused = pull("sync", double, phoenix.url, project, tmp_path / "a")
        synced = pull("sync", double, phoenix.url, project, tmp_path / "b",
                      env=env_for(double, PORTKEY_AUTH="bearer"))  # fmt: skip
        assert double.errors == []
        api = [r for r in double.requests if r.server == "api"]
        sent = {r.headers.get("authorization", "")[:7] for r in api[-3:]}
        assert not any("x-portkey-api-key" in r.headers for r in api[-3:])
    assert refused.returncode == 1
    assert (
        "sent as x-portkey-api-key" in refused.stderr
        and "PORTKEY_AUTH set to bearer" in refused.stderr
    )
    assert synced.returncode == 0, synced.stderr
    assert sent == {"Bearer "}
    assert set(by_log_id(phoenix.url, project)) == {log["id"] for log in logs}


# ---- Phoenix's refusals ----------------------------------------------------------------------


def test_phoenix_out_of_storage_stops_the_run_at_once_with_its_text(
    start_phoenix: Any, project: str, tmp_path: Path
) -> None:
    server = start_phoenix(env={  # any database is over 1% of 10 KiB: writes are blocked
        "PHOENIX_DATABASE_ALLOCATED_STORAGE_CAPACITY_GIBIBYTES": "0.00001",
        "PHOENIX_DATABASE_USAGE_INSERTION_BLOCKING_THRESHOLD_PERCENTAGE": "1",
    })  # fmt: skip
    started = time.monotonic()
    result = run_cli("import", str(SAMPLE_LOGS / "openai-chat.jsonl"), "--endpoint", server.url,
                     "--project", project, "--state-dir", str(tmp_path / "state"))  # fmt: skip
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stderr
    assert f"Phoenix at {server.url} refused to store data (HTTP 507" in result.stderr
    assert "Database operations are disabled due to insufficient storage" in result.stderr
    assert "PHOENIX_DATABASE_USAGE_INSERTION_BLOCKING_THRESHOLD_PERCENTAGE" in result.stderr
    assert elapsed < 60, "not retried until the deadline"


def create_count_policy(url: str, project: str, count: int) -> None:
    settings = PhoenixSettings(endpoint=url)
    node = post_graphql(settings, "query($n: String!) { getProjectByName(name: $n) { id } }",
                        {"n": project})  # fmt: skip
    post_graphql(
        settings,
        "mutation($in: CreateProjectTraceRetentionPolicyInput!) { "
        "createProjectTraceRetentionPolicy(input: $in) { node { id } } }",
        {"in": {"name": f"keep-{count}", "cronExpression": "0 0 * * 0",
                "rule": {"maxCount": {"maxCount": count}},
                "addProjects": [node["getProjectByName"]["id"]]}},
    )  # fmt: skip


def test_backfill_that_a_count_policy_would_purge_is_refused_unless_forced(
    phoenix: LocalPhoenix, project: str, tmp_path: Path
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    recent = [make_log(now - timedelta(hours=3, minutes=i)) for i in range(5)]
    old = [make_log(DAY0 + timedelta(hours=i)) for i in range(3)]
    state = tmp_path / "state"
    args = ("--since", "2026-07-01", "--until", "2026-07-02")
    with PortkeyDouble(export_cap=50) as double:
        double.add_logs(recent + old)
        assert pull("sync", double, phoenix.url, project, state).returncode == 0
        create_count_policy(phoenix.url, project, 5)
        refused = pull("backfill", double, phoenix.url, project, state, *args)
        starts = len(double.requests_to("POST /logs/exports/{id}/start"))
        forced = pull("backfill", double, phoenix.url, project, state, *args, "--force")
        assert double.errors == []
    assert refused.returncode == 2, refused.stderr
    assert (
        f"Phoenix's retention policy 'keep-5' for project '{project}' keeps only the newest 5 "
        "traces (schedule '0 0 * * 0'): the project already holds 5 traces newer than this "
        "range, so up to 3 of the 3 logs of the backfill would be purged at its next run"
    ) in refused.stderr
    assert "pass --force to import them anyway" in refused.stderr
    assert starts == 1, "only the sync's export job ran: the refused backfill started none"
    assert forced.returncode == 0, forced.stderr
    assert "Going ahead because of --force" in forced.stderr
    assert len(read_spans(phoenix.url, project)) == 8
