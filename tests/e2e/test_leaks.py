"""The leak corpus of issue 22: every bypass family, in records that become spans, in records
that are quarantined (and in their reasons), and values only the user's rules know, through
`convert` and `import` into a real Phoenix. No marker may reach Phoenix, stdout, stderr (the
log lines), the state directory (state file, quarantine files, indexes) or a quarantine
file; the summary counts what was masked per output; `--quarantine-raw` is what brings the
line as read back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ingest.phoenix.admin.local_server import LocalPhoenix
from tests.conftest import read_spans, run_cli
from tests.logs_factory import make_log

MARKERS: dict[str, str] = {}


def marker(family: str) -> str:
    """A secret of a family: no shape a rule could know it by, only where it sits."""
    value = f"LeakQ{len(MARKERS):02d}{family.replace(' ', '')[:10]}Zx9"
    MARKERS[family] = value
    return value


def families(tag: str) -> dict[str, Any]:
    """Every family once, as fields of a record; `tag` makes the markers of each place
    distinct."""
    tool_args = json.dumps({"city": "Paris", "api_key": marker(f"{tag} tool args")})
    nested = json.dumps({"inner": json.dumps({"password": marker(f"{tag} nested")})})
    prose = f"please use secret_value={marker(f'{tag} prose')} for this"
    return {
        "metadata": {
            "headers": {"Cookie": f"a=1; sessionid={marker(f'{tag} cookie')}"},
            "apiKey": marker(f"{tag} camel"),
            "db_password_old": marker(f"{tag} embedded"),
            "proxy": f"http://admin:{marker(f'{tag} userinfo')}@proxy:8080",
            "callback": f"https://h/cb?x=1%26api_key%3D{marker(f'{tag} percent')}",
            "pairs": [{"header": "Authorization", "value": marker(f"{tag} header obj")}],
            "blob": nested,
            "employee_email": marker(f"{tag} user key"),
            "note": f"badge EMP-{len(MARKERS):06d}",
        },
        "request": {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": prose}],
        },
        "response": {
            "choices": [{
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {"role": "assistant", "tool_calls": [{
                    "id": "c1", "type": "function",
                    "function": {"name": "weather", "arguments": tool_args},
                }]},
            }],
        },
    }  # fmt: skip


def build(directory: Path) -> Path:
    sound = [{**make_log(index, prefix="leaks"), **families(f"span{index}")} for index in (1, 2)]
    bad_date = {**make_log(3, prefix="leaks"), **families("quarantined"),
                "created_at": f"password={marker('reason')}"}  # fmt: skip
    user_reason = {**make_log(4, prefix="leaks"), "created_at": "EMP-654321"}
    MARKERS["user pattern in a reason"] = "EMP-654321"
    not_json = (  # cut short: masked as text
        f'{{"broken": "Cookie: a=1; sessionid={marker("line cookie")}", '
        f'"db_password_old": "{marker("line embedded")}", "x": \n'
    )
    lines = [json.dumps(record) + "\n" for record in (*sound, bad_date, user_reason)]
    path = directory / "export.jsonl"
    path.write_text("".join(lines) + not_json)
    return path


RULES = ("--redact-key", "employee_*", "--redact-pattern", r"EMP-\d{6}")


def leaked(text: str) -> list[str]:
    found = [family for family, value in MARKERS.items() if value in text]
    return found + (["user pattern"] if "EMP-0" in text else [])


def files_text(directory: Path) -> str:
    return "\n".join(
        path.read_bytes().decode("utf-8", "replace")
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    )


def test_no_marker_reaches_any_output_of_convert_or_import(
    phoenix: LocalPhoenix, project: str, tmp_path: Path, isolated_env: Path
) -> None:
    export = build(tmp_path)
    quarantine = tmp_path / "convert-quarantine.jsonl"
    converted = run_cli("convert", str(export), "--quarantine-file", str(quarantine), *RULES)
    assert converted.returncode == 3, converted.stderr
    assert len(converted.stdout.splitlines()) == 2
    for where, text in (("stdout", converted.stdout), ("stderr", converted.stderr),
                        ("quarantine", quarantine.read_text())):  # fmt: skip
        assert not leaked(text), f"convert's {where} holds {leaked(text)}"
    entries = [json.loads(line) for line in quarantine.read_text().splitlines()]
    assert len(entries) == 3 and all("raw" not in entry for entry in entries)
    fixable = json.loads(entries[0]["record"])  # decoded, masked, still the record
    assert fixable["metadata"]["apiKey"] == "[REDACTED]"
    assert fixable["request"]["model"] == "gpt-4o-mini"

    imported = run_cli("import", str(export), "--endpoint", phoenix.url, "--project", project,
                       "--json", "--log-format", "json", "-v", *RULES)  # fmt: skip
    assert imported.returncode == 3, imported.stderr
    summary = json.loads(imported.stdout.strip().splitlines()[-1])
    assert summary["delivered"] == 2 and summary["quarantined"] == 3
    assert summary["redacted"]["spans"] >= 2 * 11
    assert summary["redacted"]["quarantine"] >= 11
    spans = read_spans(phoenix.url, project)
    assert len(spans) == 2
    assert spans[0]["attributes"]["portkey.ingest.redacted"] >= 11
    outputs = {
        "Phoenix": json.dumps(spans, ensure_ascii=False),
        "stdout": imported.stdout,
        "stderr (log lines)": imported.stderr,
        "state directory": files_text(isolated_env),
    }
    for where, text in outputs.items():
        assert not leaked(text), f"{where} holds {leaked(text)}"
    assert "quarantine" in {path.parent.name for path in isolated_env.rglob("*.jsonl")}

    # resync replaces the same spans (the quarantined lines again), prices plans from the
    # file: neither lets a marker out either.
    resynced = run_cli("resync", str(export), "--endpoint", phoenix.url, "--project", project,
                       "--yes", "--json", "--log-format", "json", "-v", *RULES)  # fmt: skip
    assert resynced.returncode == 3, resynced.stderr
    planned = run_cli("prices", "plan", str(export), "--endpoint", phoenix.url)  # built-in rules
    assert planned.returncode in (0, 1), planned.stderr
    outputs = {
        "Phoenix after resync": json.dumps(read_spans(phoenix.url, project), ensure_ascii=False),
        "resync's stdout": resynced.stdout,
        "resync's stderr": resynced.stderr,
        "prices plan's output": planned.stdout + planned.stderr,
        "state directory after resync": files_text(isolated_env),
    }
    for where, text in outputs.items():
        assert not leaked(text), f"{where} holds {leaked(text)}"

    # Only --quarantine-raw writes the line as read (with its secrets), as README warns.
    raw_file = tmp_path / "raw.jsonl"
    again = run_cli("convert", str(export), "--quarantine-file", str(raw_file),
                    "--quarantine-raw", *RULES)  # fmt: skip
    assert again.returncode == 3
    assert MARKERS["reason"] in json.loads(raw_file.read_text().splitlines()[0])["raw"]
    assert not leaked(again.stdout + again.stderr)
