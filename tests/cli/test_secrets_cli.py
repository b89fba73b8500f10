"""Keys in errors and in `config show`, as a user sees them: a key read with a trailing newline
works, one that is still not a header value stops with exit 2 naming the variable, and no
character of a key is printed at any verbosity."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner

from ingest.cli import cli
from ingest.phoenix.admin.local_server import LocalPhoenix
from tests.conftest import read_spans, run_cli
from tests.logs_factory import write_logs
from tests.portkey_double import PortkeyDouble, make_log

BROKEN = "Zq9sEcReT\nwXy7pArT"  # a key pasted with a line break in the middle
PARTS = ("Zq9sEcReT", "wXy7pArT", "Zq9", "pArT")

PHOENIX_BROKEN = (
    "Error: PHOENIX_API_KEY (or --api-key) holds a line break or another character a header "
    "cannot carry: set it to the key alone."
)
PORTKEY_BROKEN = (
    "Error: PORTKEY_API_KEY (or --portkey-api-key) holds a line break or another character a "
    "header cannot carry: set it to the key alone."
)
HEADERS_BROKEN = (
    "Error: PHOENIX_CLIENT_HEADERS (or --client-headers): the value of 'x-proxy' holds a line "
    "break or another character a header cannot carry: fix it."
)


def _no_part_of_the_key(text: str) -> None:
    for part in PARTS:
        assert part not in text


def test_phoenix_keys_with_a_trailing_newline_work_and_a_broken_one_is_exit_2(
    start_phoenix, project: str, tmp_path: Path
) -> None:
    admin_secret = "admin-Secret-0123456789-abcdefghijkl"
    server = start_phoenix(env={
        "PHOENIX_ENABLE_AUTH": "true",
        "PHOENIX_SECRET": "jwt-Secret-0123456789-abcdefghijklmn",
        "PHOENIX_ADMIN_SECRET": admin_secret,
    })  # fmt: skip
    write_logs(tmp_path / "export.jsonl", 3)
    args = ("import", str(tmp_path / "export.jsonl"), "--endpoint", server.url, "--project",
            project)  # fmt: skip
    result = run_cli(*args, env={"PHOENIX_API_KEY": admin_secret + "\n"})
    assert result.returncode == 0, result.stderr
    assert len(read_spans(server.url, project, api_key=admin_secret)) == 3

    for verbosity in ((), ("-vv",)):
        result = run_cli(*args, *verbosity, env={"PHOENIX_API_KEY": BROKEN})
        assert result.returncode == 2
        assert PHOENIX_BROKEN in result.stderr
        _no_part_of_the_key(result.stdout + result.stderr)

        headers = {"PHOENIX_CLIENT_HEADERS": "x-proxy=Zq9sEcReT%0AwXy7pArT"}
        result = run_cli(*args, *verbosity, env={"PHOENIX_API_KEY": admin_secret, **headers})
        assert result.returncode == 2
        assert HEADERS_BROKEN in result.stderr
        _no_part_of_the_key(result.stdout + result.stderr)


def test_portkey_keys_with_a_trailing_newline_work_and_a_broken_one_is_exit_2(
    phoenix: LocalPhoenix, project: str
) -> None:
    day = datetime(2026, 7, 1, tzinfo=UTC)
    with PortkeyDouble(export_cap=50, job_polls=1) as double:
        double.add_logs([make_log(day + timedelta(minutes=index)) for index in range(3)])
        args = ("backfill", "--since", "2026-07-01", "--until", "2026-07-02", "--endpoint",
                phoenix.url, "--project", project, "--poll-interval", "0.02")  # fmt: skip
        env = {"PORTKEY_BASE_URL": double.base_url, "PORTKEY_API_KEY": double.api_key + "\n"}
        result = run_cli(*args, env=env)
        assert result.returncode == 0, result.stderr
        assert len(read_spans(phoenix.url, project)) == 3

        for verbosity in ((), ("-vv",)):
            result = run_cli(*args, *verbosity, env={**env, "PORTKEY_API_KEY": BROKEN})
            assert result.returncode == 2
            assert PORTKEY_BROKEN in result.stderr
            _no_part_of_the_key(result.stdout + result.stderr)


def test_config_show_tells_only_whether_a_secret_is_set_and_where_from() -> None:
    env = {
        "PHOENIX_API_KEY": "Zq9sEcReT-phoenix-wXy7pArT",
        "PORTKEY_API_KEY": "Zq9sEcReT-portkey-wXy7pArT",
        "PHOENIX_CLIENT_HEADERS": "x-proxy=Zq9sEcReT-proxy-wXy7pArT",
    }
    result = CliRunner().invoke(cli, ["config", "show", "sync"], env=env)
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line.split()[1:] for line in result.output.splitlines()[1:]}
    assert lines["api_key"] == ["(set)", "env", "PHOENIX_API_KEY"]
    assert lines["portkey_api_key"] == ["(set)", "env", "PORTKEY_API_KEY"]
    assert lines["client_headers"] == ["x-proxy=(set)", "env", "PHOENIX_CLIENT_HEADERS"]
    _no_part_of_the_key(result.output)
    document = CliRunner().invoke(cli, ["config", "show", "sync", "--json"], env=env).stdout
    assert json.loads(document)["settings"]["api_key"]["value"] == "(set)"
    _no_part_of_the_key(document)
