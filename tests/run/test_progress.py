"""No single span or file stops a run (issue 21), against a real Phoenix: a span Phoenix
acknowledges and never stores is found by re-sending in parts and quarantined, the rest committed; a
damaged file (truncated or corrupt gzip, unreadable, gone) costs only itself, and a repaired
file is read again from where it was damaged.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

from ingest.convert.ids import span_hex, span_id_for
from ingest.convert.records import parse_record
from ingest.phoenix.admin.local_server import LocalPhoenix
from tests.conftest import REPO, read_spans
from tests.logs_factory import make_log

# The real CLI, with two test-only changes set before it starts: the token-count clamp is
# lifted (so counts whose trace sums overflow Phoenix's columns reach it: a genuine poison
# span), and one listed file is deleted right after the directory was listed.
_WRAPPED_CLI = """
import os, sys
import ingest.convert.bounds as bounds
import ingest.sources.files as files
if os.environ.get("TEST_UNCLAMPED"):
    bounds.MAX_TOKEN_COUNT = 2**63 - 1
listed = files.expand_paths

def expand_paths(paths):
    found = listed(paths)
    for path in found:
        if path.name == os.environ.get("TEST_VANISHES"):
            path.unlink()
    return found

files.expand_paths = expand_paths
from ingest.cli import main
sys.argv[0] = "portkey-phoenix-ingest"
main()
"""


def run_import(*args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any], str]:
    result = subprocess.run(
        [sys.executable, "-c", _WRAPPED_CLI, "import", *args, "--json"],
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})}, capture_output=True,
        text=True, timeout=300, cwd=REPO,
    )  # fmt: skip
    assert result.stdout.strip(), result.stderr
    return result.returncode, json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


def sound(index: int, **fields: Any) -> dict[str, Any]:
    return {**make_log(index, prefix="progress"), **fields}


def span_ids(project: str, records: list[dict[str, Any]]) -> set[str]:
    return {span_hex(span_id_for(project, parse_record(r).log_id)) for r in records}


def stored_ids(phoenix: LocalPhoenix, project: str) -> set[str]:
    return {span["context"]["span_id"] for span in read_spans(phoenix.url, project)}


def quarantine_entries(state_dir: Path) -> list[dict[str, Any]]:
    folder = state_dir / "quarantine"
    if not folder.exists():
        return []
    return [json.loads(line) for file in sorted(folder.iterdir())
            for line in file.read_text().splitlines()]  # fmt: skip


def jsonl(records: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(record).encode() + b"\n" for record in records)


def overflowing_pair(index: int) -> list[dict[str, Any]]:
    """A child and then its parent, each with 2**62 prompt tokens: each fits in 64 bits, but
    Phoenix adds the stored child's count into the parent's cumulative count when it inserts
    the parent, and that sum does not fit its 64-bit column (SQLite)."""
    usage = {"prompt_tokens": 2**62, "completion_tokens": 1, "total_tokens": 2**62 + 1}
    tokens = {"req_units": 2**62, "res_units": 1, "total_units": 2**62 + 1}
    trace = f"overflow-{index}"
    parent = sound(index, trace_id=trace, span_id=f"{trace}-a", **tokens)
    child = sound(index + 1, trace_id=trace, span_id=f"{trace}-b", parent_span_id=f"{trace}-a",
                  **tokens)  # fmt: skip
    for record in (parent, child):
        record["response"] = {**record["response"], "usage": usage}
    return [child, parent]


def test_a_span_phoenix_accepts_but_never_stores_is_quarantined_and_the_rest_committed(
    any_phoenix: LocalPhoenix, project: str, tmp_path: Path, isolated_env: Path
) -> None:
    """On the newest Phoenix and the oldest supported: both store spans in arrival order and
    insert each in its own savepoint, which is what tells a poison span apart."""
    phoenix = any_phoenix
    good = [sound(index) for index in range(6)]
    pair = overflowing_pair(50)
    records = [*good[:3], *pair, *good[3:]]
    path = tmp_path / "export.jsonl"
    path.write_bytes(jsonl(records))
    target = ("--endpoint", phoenix.url, "--project", project, "--verify-grace", "1")

    code, summary, stderr = run_import(str(path), *target, env={"TEST_UNCLAMPED": "1"})
    assert code == 3, stderr
    assert (summary["delivered"], summary["quarantined"]) == (7, 1), stderr
    stored = stored_ids(phoenix, project)
    assert span_ids(project, good) <= stored
    # Whichever of the pair Phoenix inserted second is the one whose sum overflows.
    (poison,) = [record for record in pair if span_ids(project, [record]) - stored]
    assert stored == span_ids(project, records) - span_ids(project, [poison])

    (entry,) = quarantine_entries(isolated_env)
    poison_hex = span_hex(span_id_for(project, poison["id"]))
    assert entry["reason"] == (
        "Phoenix accepted this span but did not store it after 2 attempts; its server log "
        f"says why (look for the insert error of span_id={poison_hex}, log id "
        f"{poison['id']})"
    )
    assert entry["line"] == records.index(poison) + 1
    assert json.loads(entry["record"]) == poison  # the line (masked): fix it and import it
    phoenix_log = phoenix.log_path.read_text(errors="replace")
    insert_errors = (f"Span insertion failed after savepoint rollback: span_id={poison_hex}",
                     f"Failed to insert span with span_id={poison_hex}")  # 20.x, 12.18  # fmt: skip
    assert any(error in phoenix_log for error in insert_errors), phoenix_log[-2000:]

    code, again, stderr = run_import(str(path), *target, env={"TEST_UNCLAMPED": "1"})
    assert code == 0, stderr
    assert (again["read"], again["delivered"], again["quarantined"]) == (0, 0, 0)


def test_with_the_clamp_the_overflowing_pair_is_stored_with_a_warning(
    phoenix: LocalPhoenix, project: str, tmp_path: Path
) -> None:
    pair = overflowing_pair(60)
    path = tmp_path / "export.jsonl"
    path.write_bytes(jsonl(pair))
    code, summary, stderr = run_import(str(path), "--endpoint", phoenix.url, "--project", project)
    assert code == 0, stderr
    assert summary["delivered"] == 2
    spans = read_spans(phoenix.url, project)
    for span in spans:
        assert span["attributes"]["llm.token_count.prompt"] == 10_000_000
        warnings = span["attributes"]["portkey.ingest.warnings"]
        expected = "llm.token_count.prompt: 4611686018427387904 tokens, over the 10,000,000"
        assert any(expected in warning for warning in warnings)


# ---- damaged files ----------------------------------------------------------------------


def whole_lines_of(damaged: bytes) -> bytes:
    """What zlib can decompress of a cut gzip, up to its last whole line (the oracle)."""
    out = zlib.decompressobj(wbits=31).decompress(damaged)
    return out[: out.rfind(b"\n") + 1]


def test_damaged_files_in_the_middle_of_a_directory_cost_only_themselves(
    phoenix: LocalPhoenix, project: str, tmp_path: Path, isolated_env: Path
) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    first = [sound(index) for index in range(0, 3)]
    cut = [sound(index) for index in range(100, 160)]
    corrupt = [sound(index) for index in range(200, 240)]
    middle = [sound(index) for index in range(300, 303)]
    gone = [sound(index) for index in range(400, 403)]
    last = [sound(index) for index in range(500, 503)]
    (folder / "a.jsonl").write_bytes(jsonl(first))
    packed = gzip.compress(jsonl(cut))
    damaged = packed[: len(packed) * 6 // 10]  # an interrupted download
    (folder / "b.jsonl.gz").write_bytes(damaged)
    kept = whole_lines_of(damaged)
    cut_delivered = cut[: kept.count(b"\n")]
    assert 0 < len(cut_delivered) < len(cut)
    # Two gzip members; the second one's header is damaged (not gzip any more).
    second = bytearray(gzip.compress(jsonl(corrupt[20:])))
    second[1] = 0
    (folder / "c.jsonl.gz").write_bytes(gzip.compress(jsonl(corrupt[:20])) + bytes(second))
    (folder / "d.jsonl").write_bytes(jsonl(middle))
    (folder / "e.jsonl").symlink_to("/proc/self/mem")  # listed as a file; every read fails
    (folder / "f.jsonl").write_bytes(jsonl(gone))  # deleted once listed
    (folder / "g.jsonl.gz").write_bytes(gzip.compress(jsonl(last)))
    target = ("--endpoint", phoenix.url, "--project", project)

    code, summary, stderr = run_import(str(folder), *target, env={"TEST_VANISHES": "f.jsonl"})
    assert code == 3, stderr
    delivered = [*first, *cut_delivered, *corrupt[:20], *middle, *last]
    assert summary["delivered"] == len(delivered), stderr
    assert summary["quarantined"] == 4
    assert stored_ids(phoenix, project) == span_ids(project, delivered)

    entries = {Path(entry["source"]).name: entry for entry in quarantine_entries(isolated_env)}
    assert sorted(entries) == ["b.jsonl.gz", "c.jsonl.gz", "e.jsonl", "f.jsonl"]
    b, c, e, f = (entries[name] for name in sorted(entries))
    assert (b["offset"], b["line"]) == (len(kept), len(cut_delivered) + 1)
    where = f"past byte {len(kept):,} (line {len(cut_delivered):,})"
    assert b["reason"].startswith(f"cannot read {folder / 'b.jsonl.gz'} {where}: Compressed file")
    assert "The rest of the file, from byte" in b["reason"]
    assert "a repaired file of the same name is read from there" in b["reason"]
    assert (c["offset"], c["line"]) == (len(jsonl(corrupt[:20])), 21)
    assert "Not a gzipped file" in c["reason"]
    assert (e["offset"], e["line"]) == (0, 1) and "Input/output error" in e["reason"]
    assert (f["offset"], f["line"]) == (0, 1) and "No such file or directory" in f["reason"]
    assert "Nothing of this file was imported" in f["reason"]

    # A re-run sends nothing: the damaged files are done; the unreadable one is still in the way.
    code, again, stderr = run_import(str(folder), *target)
    assert code == 3, stderr
    assert (again["read"], again["delivered"], again["quarantined"]) == (0, 0, 1)

    # The download is repaired (same name, whole content): it is read from the damage on.
    (folder / "b.jsonl.gz").write_bytes(packed)
    (folder / "e.jsonl").unlink()
    code, repaired, stderr = run_import(str(folder), *target)
    assert code == 0, stderr
    rest = len(cut) - len(cut_delivered)
    assert (repaired["read"], repaired["delivered"], repaired["already_present"]) == (rest, rest, 0)
    assert stored_ids(phoenix, project) == span_ids(project, [*delivered, *cut])
    assert f"{folder / 'b.jsonl.gz'}: repairs the file that was damaged after line" in stderr
