"""A hostile export, imported into a real Phoenix: the run finishes (exit 0 or 3), every sound
record is stored, no planted secret is stored, printed or quarantined, no record value forges
a log line, and a re-run sends nothing.

The corpus is generated here (one record per hostile category of issue 9), next to records
that are sound; a second, gzipped file carries a line far over `--max-line-bytes`.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from ingest.convert.ids import span_hex, span_id_for
from ingest.convert.records import parse_record
from ingest.phoenix.admin.local_server import LocalPhoenix
from tests.conftest import REPO, read_spans, run_cli
from tests.logs_factory import make_log

# Planted secrets: each must never appear in Phoenix, on stdout/stderr or in a quarantine file.
# Most have no recognisable shape, so only the rule for where they sit can find them.
SECRETS = {
    "portkey_key_in_metadata": "q9TzPortkeyLiveValue7714",
    "provider_key_in_metadata": "r2WvProviderValue5530",
    "virtual_key_in_metadata": "vkAnthropicProd-Value-3381",
    "cookie_in_metadata": "sess=Ck8eCookieValue2290",
    "cloud_secret_in_metadata": "gcpClientSecretValue9046",
    "header_pair_authorization": "hdrPairAuthValue6173",
    "header_pair_api_key": "hdrPairKeyValue4402",
    "aws_access_key_id": "AKIAQ7HJ2K5MZP3W8XLA",
    "amz_signature": "f00dbabe5ig9a7ure11c0ffee",
    "azure_sig": "AzSasSigValue0417",
    "basic_without_colon": "QmFzaWNOb0NvbG9uVmFsdWU4OA",
    "secret_in_quarantined_record": "quarantinedRecordSecret0663",
    "secret_in_bad_utf8_line": "badUtf8LineSecret5127",
    "secret_in_non_json_line": "nonJsonLineSecret8850",
}
FORGED = "FORGED 2026-01-01 00:00:00,000 ERROR forged"
CONTROL_ID = f"ctl-\x1b[2J\x1b]0;pwned\x07-\u0000\n{FORGED}\r\u2028end"
MAX_LINE_BYTES = 2_000_000
EMBEDDING_INPUTS = 40_000


def sound(index: int, **fields: Any) -> dict[str, Any]:
    return {**make_log(index, prefix="hostile"), **fields}


def _secret_records() -> list[dict[str, Any]]:
    s = SECRETS
    signed = (
        "https://bucket.s3.amazonaws.com/img.png?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        f"&X-Amz-Credential={s['aws_access_key_id']}%2F20260801&X-Amz-Signature={s['amz_signature']}"
    )
    return [
        sound(
            100,
            metadata={
                "_user": "u-1",
                "X_Portkey_Api_Key": s["portkey_key_in_metadata"],
                "openaiProviderKey": s["provider_key_in_metadata"],
                "portkey.virtual-key": s["virtual_key_in_metadata"],
                "SessionCookie": s["cookie_in_metadata"],
                "GCP_CLIENT_SECRET": s["cloud_secret_in_metadata"],
                "forwarded": [
                    ["Authorization", s["header_pair_authorization"]],
                    ["x-api-key", s["header_pair_api_key"]],
                    ["Accept", "json"],
                ],
            },
        ),
        sound(
            101,
            request={
                "model": "gpt-4o",
                "messages": [
                    {
                        "role": "user",
                        "content": f"my aws id is {s['aws_access_key_id']}, see {signed}",
                    },
                    {
                        "role": "user",
                        "content": "blob https://acct.blob.core.windows.net/c/b.txt"
                        f"?sv=2022-11-02&sig={s['azure_sig']}&se=2027",
                    },
                    {
                        "role": "user",
                        "content": f"curl -H 'Authorization: Basic {s['basic_without_colon']}'",
                    },
                ],
            },
        ),
    ]


def build_corpus(directory: Path) -> tuple[list[Path], list[dict[str, Any]]]:
    """Write the hostile files; return them and the records that must be stored."""
    stored: list[dict[str, Any]] = [sound(index) for index in range(5)]
    stored += _secret_records()
    stored += [
        sound(200, id=CONTROL_ID, metadata={"note": "nul\u0000 esc\x1b[31m red\nnew line"}),
        sound(201, created_at="2262-04-11T23:00:00Z", response_time=3_600_000),  # end > 2262
        sound(202, response_time=10**300),
        sound(
            203,
            response_status_code=10**20,
            req_units=10**30,
            res_units=-(2**70),
            total_units=2**64,
            retry_success_count=2**65,
            cost=10**25,
        ),
        sound(204, response={"usage": {"prompt_tokens": 2**64, "completion_tokens": 10**40}}),
        sound(
            205,
            request_url="https://api.openai.com/v1/embeddings",
            request={
                "model": "text-embedding-3-small",
                "input": [f"embedding input {i}" for i in range(EMBEDDING_INPUTS)],
            },
        ),
    ]
    quarantined_record = sound(300, created_at="1969-12-31T23:59:59Z")
    quarantined_record["metadata"] = {"api_key": SECRETS["secret_in_quarantined_record"]}
    lines: list[bytes] = [json.dumps(record).encode() for record in stored]
    lines += [
        json.dumps(stored[0]).encode(),  # a duplicate of a stored record
        json.dumps(quarantined_record).encode(),
        json.dumps(sound(301, created_at="9999-12-31T23:59:59.999Z")).encode(),
        json.dumps(sound(302, created_at=-5_000_000_000)).encode(),
        json.dumps(sound(303, created_at=10**30)).encode(),
        b"[1, 2, 3]",
        b'"just a string"',
        b"42",
        b"null",
        b'{"id": "bad-utf8", "metadata": {"password": "'
        + SECRETS["secret_in_bad_utf8_line"].encode()
        + b'"}, "x": "\xff\xfe"}',
        b"curl https://x.test/?api_key=" + SECRETS["secret_in_non_json_line"].encode() + b" {",
    ]
    # A file name with control characters reaches log lines (file_done, "already imported").
    plain = directory / f"export\n{FORGED}\x1b[1m.jsonl"
    plain.write_bytes(b"\n".join(lines) + b"\n")

    zipped_records = [sound(index) for index in range(400, 404)]
    stored += zipped_records
    compressed = directory / "more.jsonl.gz"
    with gzip.open(compressed, "wb") as stream:
        stream.write(json.dumps(zipped_records[0]).encode() + b"\n")
        stream.write(b'{"id": "huge", "created_at": "2026-08-01T09:00:00Z", "pad": "')
        stream.write(b"y" * (3 * MAX_LINE_BYTES))
        stream.write(b'"}\n')
        for record in zipped_records[1:]:
            stream.write(json.dumps(record).encode() + b"\n")
    return [plain, compressed], stored


def expected_span_ids(project: str, records: list[dict[str, Any]]) -> set[str]:
    return {span_hex(span_id_for(project, parse_record(r).log_id)) for r in records}


_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) ")


def assert_no_forged_log_lines(stderr: str) -> None:
    assert "\x1b" not in stderr and "\x07" not in stderr and "\r" not in stderr
    for line in stderr.splitlines():
        assert _LOG_LINE.match(line), f"not a log line of ours: {line!r}"
        assert not line.startswith("FORGED")


def assert_no_secret(where: str, text: str) -> None:
    leaked = [name for name, value in SECRETS.items() if value in text]
    assert not leaked, f"{where} holds planted secrets: {leaked}"


def import_json(files: list[Path], *args: str) -> tuple[int, dict[str, Any], str, str]:
    result = run_cli("import", *map(str, files), "--json", "--max-line-bytes",
                     str(MAX_LINE_BYTES), *args)  # fmt: skip
    assert result.stdout.strip(), result.stderr
    return (result.returncode, json.loads(result.stdout.strip().splitlines()[-1]),
            result.stdout, result.stderr)  # fmt: skip


def test_a_hostile_export_imports_without_leaks_or_forged_logs_and_reruns_send_nothing(
    phoenix: LocalPhoenix, project: str, tmp_path: Path, isolated_env: Path
) -> None:
    files, stored = build_corpus(tmp_path)
    target = ("--endpoint", phoenix.url, "--project", project)

    code, summary, stdout, stderr = import_json(files, *target)
    assert code == 3, stderr
    unsound_lines = 10 + 1  # the plain file's unsound lines, and the huge line
    assert summary["quarantined"] == unsound_lines, stderr
    assert summary["duplicates"] == 1
    assert summary["delivered"] == len(stored), stderr
    assert summary["redacted"]["spans"] > 0

    spans = read_spans(phoenix.url, project)
    ids = [span["context"]["span_id"] for span in spans]
    assert len(ids) == len(set(ids)) and set(ids) == expected_span_ids(project, stored)
    by_id = {span["attributes"]["portkey.log_id"]: span["attributes"] for span in spans}
    capped = by_id[make_log(205, prefix="hostile")["id"]]  # the embedding inputs
    assert len(capped) < 400
    assert (
        f"embedding.embeddings: kept 200 of {EMBEDDING_INPUTS}"
        in capped["portkey.ingest.truncated"]
    )
    for index in (201, 202, 203, 204):  # the fields OTLP cannot carry are dropped, and said
        assert "portkey.ingest.warnings" in by_id[make_log(index, prefix="hostile")["id"]]

    quarantine = "\n".join(path.read_text() for path in (isolated_env / "quarantine").iterdir())
    entries = [json.loads(line) for line in quarantine.splitlines()]
    assert len(entries) == unsound_lines
    reasons = "\n".join(entry["reason"] for entry in entries)
    for expected in ("before 1970-01-01", "after 2262-04-11", "not UTF-8 text", "not valid JSON",
                     "over the limit of 2,000,000 bytes"):  # fmt: skip
        assert expected in reasons, reasons
    assert_no_secret("Phoenix", json.dumps(spans, ensure_ascii=False))
    assert_no_secret("stdout", stdout)
    assert_no_secret("stderr", stderr)
    assert_no_secret("the quarantine file", quarantine)
    assert_no_forged_log_lines(stderr)

    code, again, _, stderr = import_json(files, *target)
    assert code == 0, stderr
    assert (again["files_already_done"], again["read"], again["delivered"]) == (2, 0, 0)
    assert_no_forged_log_lines(stderr)

    # Without the state file, Phoenix is asked first: nothing is sent twice.
    code, fresh, _, stderr = import_json(files, *target, "--state-dir", str(tmp_path / "s2"))
    assert code == 3, stderr
    assert (fresh["delivered"], fresh["already_present"]) == (0, len(stored))
    assert sorted(
        span["context"]["span_id"] for span in read_spans(phoenix.url, project)
    ) == sorted(ids)


def test_convert_of_the_hostile_export_prints_no_secret_and_forges_no_line(
    tmp_path: Path,
) -> None:
    files, stored = build_corpus(tmp_path)
    result = run_cli("convert", *map(str, files), "--max-line-bytes", str(MAX_LINE_BYTES))
    assert result.returncode == 3, result.stderr
    assert len(result.stdout.strip("\n").split("\n")) == len(stored)  # not splitlines: U+2028
    assert_no_secret("stdout", result.stdout)
    assert_no_secret("stderr", result.stderr)
    assert "\x1b" not in result.stderr
    assert not any(line.startswith("FORGED") for line in result.stderr.splitlines())
    assert (
        "export\\nFORGED 2026-01-01 00:00:00,000 ERROR forged\\u001b[1m.jsonl:23: rejected: "
        "not UTF-8 text" in result.stderr
    )


# ---- the safety net: a span the encoder refuses never fails its batch ---------------------

# The converter is wrapped (in the real CLI process) to simulate a converter bug: one record's
# span gets a start time OTLP cannot carry, another record's conversion raises.
_BUGGY_CONVERTER = """
import sys
import ingest.run.pipeline as pipeline
real_to_span = pipeline.to_span

def to_span(record, *args, **kwargs):
    span = real_to_span(record, *args, **kwargs)
    if record.log_id == "unencodable":
        span._start_time = -1  # fixed64: the encoder raises ValueError
    if record.log_id.startswith("boom"):
        raise RuntimeError("simulated converter bug")
    return span

pipeline.to_span = to_span
from ingest.cli import main
sys.argv[0] = "portkey-phoenix-ingest"
main()
"""


def test_a_span_the_encoder_refuses_is_quarantined_with_its_reason_and_the_rest_delivered(
    phoenix: LocalPhoenix, project: str, tmp_path: Path, isolated_env: Path
) -> None:
    good = [sound(index) for index in range(6)]
    records = [*good[:3], sound(50, id="unencodable"), sound(51, id=f"boom{CONTROL_ID}"),
               *good[3:]]  # fmt: skip
    path = tmp_path / "export.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    result = subprocess.run(
        [sys.executable, "-c", _BUGGY_CONVERTER, "import", str(path), "--endpoint", phoenix.url,
         "--project", project, "--json", "--batch-size", "100"],
        env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=300,
        cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 3, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["delivered"], summary["quarantined"]) == (6, 2)
    stored = {span["context"]["span_id"] for span in read_spans(phoenix.url, project)}
    assert stored == expected_span_ids(project, good)

    entries = [
        json.loads(line)
        for file in (isolated_env / "quarantine").iterdir()
        for line in file.read_text().splitlines()
    ]
    assert [(entry["line"], entry["reason"].split(":")[0]) for entry in entries] == [
        (4, "the OTLP encoder refused the span"),
        (5, "conversion failed"),
    ]
    assert "ValueError" in entries[0]["reason"]
    assert "RuntimeError: simulated converter bug" in entries[1]["reason"]
    # The converter bug is logged with the log id, escaped: no forged line, no raw escape.
    assert "conversion failed for log boomctl-\\u001b[2J" in result.stderr
    assert "\x1b" not in result.stderr and "\n" + FORGED not in result.stderr
