"""The conversion options a user sets (flags and config file) reach the spans `convert`
prints: user redaction rules, the line cap. Offline: `convert` needs no Phoenix."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.conftest import invoke_cli

LOG = {
    "id": "log-1",
    "created_at": "2026-07-25T11:14:18Z",
    "metadata": {"customer_email": "ann@example.com", "note": "account ACCT-4411", "env": "prod"},
}


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`convert` in this process (what it prints is the point, not the process)."""
    env = {"XDG_CONFIG_HOME": str(tmp_path / "cfg"), "XDG_STATE_HOME": str(tmp_path / "state")}
    return invoke_cli(*args, env=env)  # INGEST_CONFIG is unset by the isolated_env fixture


def export(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "export.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    return path


def metadata_of(stdout: str) -> dict[str, str]:
    return json.loads(json.loads(stdout)["attributes"]["metadata"])


def test_redact_flags_mask_keys_and_patterns(tmp_path: Path) -> None:
    path = export(tmp_path, json.dumps(LOG))
    result = run(tmp_path, "convert", str(path), "--redact-key", "*email*",
                 "--redact-pattern", r"ACCT-\d+")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert metadata_of(result.stdout) == {
        "customer_email": "[REDACTED]", "note": "account [REDACTED]", "env": "prod",
    }  # fmt: skip
    assert json.loads(result.stdout)["attributes"]["portkey.ingest.redacted"] == 2


def test_redact_rules_from_the_config_file_as_lists_or_single_values(tmp_path: Path) -> None:
    path = export(tmp_path, json.dumps(LOG))
    config = tmp_path / "config.toml"
    config.write_text(
        'redact_key = ["customer_email", "env"]\n[convert]\nredact_pattern = "ACCT"\n'
    )
    result = run(tmp_path, "--config", str(config), "convert", str(path))
    assert result.returncode == 0, result.stderr
    assert metadata_of(result.stdout) == {
        "customer_email": "[REDACTED]", "note": "account [REDACTED]-4411", "env": "[REDACTED]",
    }  # fmt: skip


def test_an_invalid_redact_pattern_is_a_usage_error(tmp_path: Path) -> None:
    result = run(tmp_path, "convert", str(export(tmp_path, "{}")), "--redact-pattern", "(")
    assert result.returncode == 2
    assert "'(' is not a regular expression" in result.stderr


def test_max_line_bytes_quarantines_a_longer_line_by_number_and_size(tmp_path: Path) -> None:
    long = json.dumps({**LOG, "id": "long", "pad": "x" * 5_000})
    path = export(tmp_path, json.dumps(LOG), long)
    result = run(tmp_path, "convert", str(path), "--max-line-bytes", "2000")
    assert result.returncode == 3
    assert len(result.stdout.splitlines()) == 1
    assert f"{path}:2: rejected: line 2 is {len(long) + 1:,} bytes, over the limit of 2,000" in (
        result.stderr
    )


def test_drop_content_from_a_flag_or_the_config_file(tmp_path: Path) -> None:
    chat = {**LOG, "request": {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
            "response": {"choices": [{"message": {"role": "assistant", "content": "yo"}}]},
            "request_url": "https://api.openai.com/v1/chat/completions", "cost": 0.5}  # fmt: skip
    path = export(tmp_path, json.dumps(chat))
    config = tmp_path / "config.toml"
    config.write_text("drop_content = true\n")
    for args in (("convert", str(path), "--drop-content"),
                 ("--config", str(config), "convert", str(path))):  # fmt: skip
        result = run(tmp_path, *args)
        assert result.returncode == 0, result.stderr
        attributes = json.loads(result.stdout)["attributes"]
        assert attributes["portkey.ingest.content_dropped"] == (
            "input.value, output.value, llm.input_messages, llm.output_messages"
        )
        assert "hi" not in json.dumps(attributes) and attributes["llm.cost.total"] == 0.005
        assert attributes["llm.model_name"] == "gpt-4o" and "metadata" in attributes
    plain = json.loads(run(tmp_path, "convert", str(path)).stdout)["attributes"]
    assert "portkey.ingest.content_dropped" not in plain and "input.value" in plain
