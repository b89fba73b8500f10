"""What the CLI says and keeps about the URLs and keys it is given (issue 22, item 4): no
`user:pass@` is printed or stored, and a key sent in clear across the network is warned about.
Nothing here needs a server: the Phoenix port is closed, the private address never contacted."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from tests.conftest import invoke_cli
from tests.logs_factory import write_logs

WARNING = (
    "PHOENIX_API_KEY is sent over plain http:// to 10.1.2.3:6006 (PHOENIX_COLLECTOR_ENDPOINT): "
    "anyone on the network path can read it. Use https://, or reach Phoenix through a "
    "loopback address or a tunnel."
)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_userinfo_in_the_phoenix_endpoint_is_neither_printed_nor_stored(tmp_path: Path) -> None:
    write_logs(tmp_path / "export.jsonl", 2)
    port = closed_port()
    state = tmp_path / "state"
    result = invoke_cli(
        "import", str(tmp_path / "export.jsonl"), "--state-dir", str(state),
        "--endpoint", f"http://ops:s3cr3t@127.0.0.1:{port}", "--retry-deadline", "0.1",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert f"Error: Phoenix at http://127.0.0.1:{port} did not " in result.stderr
    assert "s3cr3t" not in result.stdout + result.stderr
    saved = (state / "state.json").read_text()
    assert "s3cr3t" not in saved and "ops:" not in saved
    assert json.loads(saved)["runs"]["import"]["endpoint"] == f"http://127.0.0.1:{port}"


def test_a_phoenix_key_over_plain_http_to_another_machine_is_warned_about(
    tmp_path: Path,
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    remote = invoke_cli("import", str(empty), "--endpoint", "http://10.1.2.3:6006",
                        "--api-key", "k-123", "--state-dir", str(tmp_path / "s"))  # fmt: skip
    assert remote.returncode == 2, remote.stderr
    assert f"WARNING {WARNING}\n" in remote.stderr
    assert "Error: no export files" in remote.stderr
    assert "k-123" not in remote.stderr
    for endpoint in ("http://127.0.0.1:6006", "https://10.1.2.3:6006"):
        local = invoke_cli("import", str(empty), "--endpoint", endpoint, "--api-key", "k-123",
                           "--state-dir", str(tmp_path / "s"))  # fmt: skip
        assert local.returncode == 2 and "plain http" not in local.stderr, local.stderr
    unkeyed = invoke_cli("import", str(empty), "--endpoint", "http://10.1.2.3:6006",
                         "--state-dir", str(tmp_path / "s"))  # fmt: skip
    assert unkeyed.returncode == 2 and "plain http" not in unkeyed.stderr


def test_config_show_says_a_url_holds_credentials_without_showing_them() -> None:
    env = {"PHOENIX_COLLECTOR_ENDPOINT": "http://ops:s3cr3t@127.0.0.1:6006",
           "PORTKEY_BASE_URL": "https://u:pw@pk.example/v1"}  # fmt: skip
    result = invoke_cli("config", "show", "sync", env=env)
    assert result.returncode == 0, result.stderr
    assert "http://(set)@127.0.0.1:6006" in result.stdout
    assert "https://(set)@pk.example/v1" in result.stdout
    assert "s3cr3t" not in result.stdout + result.stderr
    assert "u:pw" not in result.stdout + result.stderr


def test_strict_refuses_a_key_over_plain_http_to_another_machine(tmp_path: Path) -> None:
    """--strict (or INGEST_STRICT) turns the warning into a usage error before anything is
    sent; a loopback or https endpoint is accepted as before."""
    write_logs(tmp_path / "export.jsonl", 1)
    export, state = str(tmp_path / "export.jsonl"), str(tmp_path / "s")
    refused = invoke_cli("import", export, "--endpoint", "http://10.1.2.3:6006", "--api-key",
                         "k-123", "--strict", "--state-dir", state)  # fmt: skip
    assert refused.returncode == 2, refused.stderr
    assert (
        "Error: --strict refuses to send PHOENIX_API_KEY over plain http:// to 10.1.2.3:6006 "
        "(PHOENIX_COLLECTOR_ENDPOINT): anyone on the network path could read it. Use https://, "
        "or reach Phoenix through a loopback address or a tunnel. Nothing was sent."
    ) in refused.stderr
    assert "k-123" not in refused.stderr
    portkey = invoke_cli(
        "sync", "--endpoint", f"http://127.0.0.1:{closed_port()}", "--state-dir", state,
        env={"PORTKEY_API_KEY": "pk-123", "PORTKEY_BASE_URL": "http://10.1.2.3/v1",
             "INGEST_STRICT": "1"},
    )  # fmt: skip
    assert portkey.returncode == 2, portkey.stderr
    assert (
        "Error: --strict refuses to send PORTKEY_API_KEY over plain http:// to 10.1.2.3 "
        "(PORTKEY_BASE_URL): anyone on the network path could read it. Use https://. "
        "Nothing was sent."
    ) in portkey.stderr
    local = invoke_cli("import", str(tmp_path / "none"), "--endpoint", "http://127.0.0.1:6006",
                       "--api-key", "k-123", "--strict", "--state-dir", state)  # fmt: skip
    assert "--strict refuses" not in local.stderr and "plain http" not in local.stderr
