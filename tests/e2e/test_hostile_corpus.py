"""A generated corpus of sound records and many kinds of damage, imported into a real Phoenix
(issue 21): every run ends with 0 or 3, every sound record is stored, every line read is
accounted for (stored, duplicate or quarantined), and a re-run sends nothing.

The corpus is built from a seed (HOSTILE_SEED, else the parametrized ones): each category of
damage appears at least once, the rest is drawn at random, and the order is shuffled, so a
damaged line or file sits anywhere between sound ones.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from ingest.convert.ids import span_hex, span_id_for
from ingest.convert.records import parse_record
from ingest.errors import RecordError
from ingest.phoenix.admin.local_server import LocalPhoenix
from tests.conftest import read_spans, run_cli
from tests.hostile_corpus import FILE_DAMAGE, LINE_DAMAGE, MAX_LINE_BYTES, build


def span_ids(project: str, records: list[dict[str, Any]]) -> set[str]:
    """The span ids of the records that parse (one that does not can never be stored)."""
    ids = set()
    for record in records:
        try:
            ids.add(span_hex(span_id_for(project, parse_record(record).log_id)))
        except RecordError:
            continue
    return ids


def import_json(folder: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    result = run_cli("import", str(folder), "--json", "--max-line-bytes", str(MAX_LINE_BYTES),
                     *args)  # fmt: skip
    assert result.stdout.strip(), result.stderr
    return result.returncode, json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


SEEDS = [int(os.environ["HOSTILE_SEED"])] if os.environ.get("HOSTILE_SEED") else [21, 2026]


@pytest.mark.parametrize("seed", SEEDS)
def test_a_generated_hostile_corpus_imports_every_sound_record_and_reruns_send_nothing(
    phoenix: LocalPhoenix, project: str, tmp_path: Path, seed: int
) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    corpus = build(seed, folder)
    assert len(LINE_DAMAGE) + len(FILE_DAMAGE) >= 20
    target = ("--endpoint", phoenix.url, "--project", project)

    started = time.monotonic()
    code, summary, stderr = import_json(folder, *target)
    first_s = time.monotonic() - started
    assert code == 3, f"seed {seed}: {stderr}"
    stored = {span["context"]["span_id"] for span in read_spans(phoenix.url, project)}
    missing = span_ids(project, corpus.must_store) - stored
    assert not missing, f"seed {seed}: {len(missing)} sound records not stored"
    assert stored <= span_ids(project, corpus.must_store + corpus.others)
    # Every line read is stored, a duplicate or quarantined; each damaged file adds one entry.
    accounted = summary["delivered"] + summary["duplicates"] + summary["quarantined"]
    assert accounted == summary["read"] + corpus.damaged_files, f"seed {seed}: {summary}"

    code, again, stderr = import_json(folder, *target)
    assert code == 3, f"seed {seed}: {stderr}"  # the unreadable file is still in the way
    assert (again["read"], again["delivered"], again["already_present"]) == (0, 0, 0)
    assert again["quarantined"] == 1
    assert first_s < 60, f"seed {seed}: the first import took {first_s:.0f} s"
