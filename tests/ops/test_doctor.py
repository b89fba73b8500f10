"""`doctor` names each broken setting and its fix; a good set-up is all OK and exits 0.

One auth-enabled Phoenix serves the module (its admin secret is a valid API key); Portkey is
the local double, with one key that has every scope and one without `logs.export`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from ingest.cli import cli
from ingest.ops.doctor_local import OK, WARN, ServerTime, check_clock, exposed_state_dir
from ingest.phoenix.admin.local_server import LocalPhoenix, free_port
from ingest.run.state import StateStore
from tests.portkey_double import ALL_SCOPES, PortkeyDouble

ADMIN_SECRET = "admin-Secret-0123456789-abcdefghijkl"
WRONG_KEY = "wrong-key-that-must-never-be-printed-42"
PORTKEY_KEY = "pk-doctor-all-scopes-0123456789"
VIEW_ONLY_KEY = "pk-doctor-view-only-0123456789"
UNKNOWN_PORTKEY_KEY = "pk-doctor-unknown-0123456789"
SECRETS = (ADMIN_SECRET, WRONG_KEY, PORTKEY_KEY, VIEW_ONLY_KEY, UNKNOWN_PORTKEY_KEY)


@pytest.fixture(scope="module")
def auth_phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPhoenix]:
    server = LocalPhoenix(
        tmp_path_factory.mktemp("phoenix-auth"),
        env={
            "PHOENIX_ENABLE_AUTH": "true",
            "PHOENIX_SECRET": "jwt-Secret-0123456789-abcdefghijklmn",
            "PHOENIX_ADMIN_SECRET": ADMIN_SECRET,
        },
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def portkey() -> Iterator[PortkeyDouble]:
    keys = {PORTKEY_KEY: ALL_SCOPES, VIEW_ONLY_KEY: {"logs.view", "logs.list"}}
    with PortkeyDouble(keys=keys) as double:
        yield double
    assert not double.errors


@pytest.fixture(autouse=True)
def no_user_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("INGEST_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


@pytest.fixture
def app() -> click.Group:
    """The CLI, with --config, `config` and `doctor` wired in."""
    return cli


def doctor(app: click.Group, *args: str, env: dict[str, str] | None = None,
           config: Path | None = None) -> Result:  # fmt: skip
    group_args = ["--config", str(config)] if config else []
    result = CliRunner().invoke(app, [*group_args, "doctor", *args], env=env)
    assert "Traceback" not in result.output
    for secret in SECRETS:
        assert secret not in result.output, "a secret was printed"
    return result


def line(result: Result, name: str) -> str:
    """The status line of one check and its fix line when there is one, spaces collapsed."""
    lines = [" ".join(text.split()) for text in result.output.splitlines()]
    for index, text in enumerate(lines):
        if re.match(rf"^(OK|WARN|FAIL) {re.escape(name)} ", text):
            fix = lines[index + 1] if index + 1 < len(lines) else ""
            return text + ("\n" + fix if fix.startswith("fix:") else "")
    raise AssertionError(f"no check {name!r} in:\n{result.output}")


def good_env(phoenix: LocalPhoenix, portkey: PortkeyDouble) -> dict[str, str]:
    return {
        "PHOENIX_COLLECTOR_ENDPOINT": phoenix.url,
        "PHOENIX_API_KEY": ADMIN_SECRET,
        "PORTKEY_API_KEY": PORTKEY_KEY,
        "PORTKEY_BASE_URL": portkey.base_url,
    }


def test_a_good_setup_is_all_ok(
    app: click.Group, auth_phoenix: LocalPhoenix, portkey: PortkeyDouble, isolated_env: Path
) -> None:
    result = doctor(app, "--require-portkey", "--enrich", env=good_env(auth_phoenix, portkey))
    assert result.exit_code == 0, result.output
    statuses = [text.split()[0] for text in result.stdout.splitlines() if text.strip()][:-1]
    assert set(statuses) == {"OK"}, result.output
    for name in ("Phoenix reachable", "Phoenix version", "Phoenix API key", "Phoenix OTLP",
                 "Portkey API key", "Portkey logs.view scope", "State directory", "State lock",
                 "State file", "Clock vs Phoenix", "Clock vs Portkey"):  # fmt: skip
        assert line(result, name).startswith("OK")
    assert "adm…jkl accepted" in line(result, "Phoenix API key")
    assert "with the logs.export scope" in line(result, "Portkey API key")
    assert f"{isolated_env} is writable" in line(result, "State directory")
    assert result.stdout.rstrip().endswith("All checks passed (0 warning(s)).")

    as_json = json.loads(doctor(app, "--json", env=good_env(auth_phoenix, portkey)).stdout)
    assert {check["status"] for check in as_json} == {"OK"}


def test_wrong_or_missing_phoenix_key(
    app: click.Group, auth_phoenix: LocalPhoenix, portkey: PortkeyDouble
) -> None:
    env = {**good_env(auth_phoenix, portkey), "PHOENIX_API_KEY": WRONG_KEY}
    result = doctor(app, env=env)
    assert result.exit_code == 1
    assert line(result, "Phoenix API key") == (
        f"FAIL Phoenix API key PHOENIX_API_KEY rejected: Phoenix at {auth_phoenix.url} "
        "answered HTTP 401 for key wro…-42.\n"
        "fix: set PHOENIX_API_KEY (or --api-key) to a valid system or user key "
        "(Phoenix: Settings > API Keys)"
    )
    assert line(result, "Portkey API key").startswith("OK")
    assert result.stdout.rstrip().endswith("1 problem(s) to fix, 0 warning(s).")

    del env["PHOENIX_API_KEY"]
    result = doctor(app, "--api-key", "", env=env)
    assert result.exit_code == 1
    assert "PHOENIX_API_KEY is not set, and Phoenix at" in line(result, "Phoenix API key")
    assert "requires authentication (HTTP 401)" in line(result, "Phoenix API key")


def test_portkey_key_without_export_scope_or_unknown(
    app: click.Group, auth_phoenix: LocalPhoenix, portkey: PortkeyDouble
) -> None:
    env = {**good_env(auth_phoenix, portkey), "PORTKEY_API_KEY": VIEW_ONLY_KEY}
    result = doctor(app, env=env)
    assert result.exit_code == 1
    assert line(result, "Portkey API key") == (
        "FAIL Portkey API key PORTKEY_API_KEY lacks the logs.export scope "
        "(HTTP 403, AB03 on GET /logs/exports).\n"
        "fix: in Portkey, give the key the logs.export scope (a Workspace or Admin API key; "
        "log exports also need the Enterprise plan)"
    )
    assert line(result, "Phoenix API key").startswith("OK")

    result = doctor(app, "--portkey-api-key", UNKNOWN_PORTKEY_KEY, env=env)
    assert result.exit_code == 1
    assert (
        "PORTKEY_API_KEY (from --portkey-api-key) rejected: "
        f"{portkey.base_url} answered HTTP 401, AB05 for key pk-…789."
    ) in line(result, "Portkey API key")


def test_missing_portkey_key_warns_unless_required(
    app: click.Group, auth_phoenix: LocalPhoenix, portkey: PortkeyDouble
) -> None:
    env = {**good_env(auth_phoenix, portkey)}
    del env["PORTKEY_API_KEY"]
    result = doctor(app, env=env)
    assert result.exit_code == 0, result.output
    assert line(result, "Portkey API key").startswith(
        "WARN Portkey API key not configured: only needed for sync, backfill, reconcile, "
        "prices plan/apply from Portkey and resync"
    )
    result = doctor(app, "--require-portkey", env=env)
    assert result.exit_code == 1
    assert "FAIL Portkey API key PORTKEY_API_KEY is not set" in line(result, "Portkey API key")
    assert "fix: set PORTKEY_API_KEY (or --portkey-api-key)" in line(result, "Portkey API key")


def test_unreachable_phoenix_and_unwritable_state_dir(app: click.Group, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = doctor(
        app, "--state-dir", str(blocker / "state"), env={"PHOENIX_COLLECTOR_ENDPOINT": url}
    )
    assert result.exit_code == 1
    assert line(result, "Phoenix reachable") == (
        f"FAIL Phoenix reachable no Phoenix at {url} (connection refused); "
        "the URL is set by PHOENIX_COLLECTOR_ENDPOINT.\n"
        "fix: start Phoenix, or set PHOENIX_COLLECTOR_ENDPOINT (or --endpoint) to its URL"
    )
    assert line(result, "State directory") == (
        f"FAIL State directory {blocker / 'state'} (from --state-dir) is not writable "
        "(Not a directory).\n"
        "fix: set --state-dir (or INGEST_STATE_DIR) to a directory this user can write"
    )
    assert result.stdout.rstrip().endswith("2 problem(s) to fix, 1 warning(s).")


def test_settings_from_the_config_file_are_named_with_the_file(
    app: click.Group, tmp_path: Path
) -> None:
    config = tmp_path / "ingest.toml"
    config.write_text(
        'endpoint = "not-a-url"\n'
        "[doctor]\n"
        'workspace = "0b7c2f52-2b1e-4c3e-9b55-1f0a3d4e5f60"\n'
        'portkey_api_key = "pk-doctor-file-0123456789"\n'
    )
    config.chmod(0o644)
    result = doctor(app, config=config)
    assert result.exit_code == 1
    assert (
        f"PHOENIX_COLLECTOR_ENDPOINT (from endpoint in {config}) is not an http(s) URL"
    ) in line(result, "Phoenix endpoint")
    assert "PORTKEY_WORKSPACE must be the workspace slug" in line(result, "Portkey settings")
    assert "chmod 600" in line(result, "Config file")
    assert "pk-doctor-file-0123456789" not in result.output


def test_held_lock_and_corrupt_state_file(
    app: click.Group, tmp_path: Path, isolated_env: Path
) -> None:
    env = {"PHOENIX_COLLECTOR_ENDPOINT": f"http://127.0.0.1:{free_port()}"}
    with StateStore(isolated_env).locked():
        result = doctor(app, env=env)
    assert re.search(r"^WARN State lock another run holds .*state.lock \(pid \d+, started ",
                     line(result, "State lock"))  # fmt: skip
    (isolated_env / "state.json").write_text("{not json")
    result = doctor(app, env=env)
    assert "is corrupt: it is not valid JSON" in line(result, "State file")
    assert "fix: move the state file aside and rerun" in line(result, "State file")


def test_a_state_dir_others_can_read_is_reported(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    warning = exposed_state_dir(tmp_path)
    assert warning is not None
    assert f"the state directory {tmp_path} can be read by other users" in warning
    assert f"chmod 700 {tmp_path}" in warning
    assert exposed_state_dir(tmp_path / "missing") is None


def test_clock_skew_above_a_minute_is_a_warning() -> None:
    now = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    in_sync = ServerTime("Phoenix", format_datetime(now - timedelta(seconds=2), usegmt=True), now)
    assert check_clock(in_sync).status == OK
    behind = ServerTime("Portkey", format_datetime(now + timedelta(minutes=5), usegmt=True), now)
    check = check_clock(behind)
    assert check.status == WARN
    assert check.detail.startswith("this machine's clock is 300 s behind Portkey's")
    assert "NTP" in check.fix
    assert check_clock(ServerTime("Portkey", None, now)).status == WARN
