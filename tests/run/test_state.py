"""The state file: atomic versioned JSON, one run at a time, clear errors when damaged."""

from __future__ import annotations

import ast
import json
import multiprocessing
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ingest.cli import cli
from ingest.errors import FutureWatermarkError, StateError, StateLockedError
from ingest.ops.doctor_local import exposed_state_dir
from ingest.run.pull import sync_start
from ingest.run.quarantine import Quarantine
from ingest.run.state import (
    STATE_VERSION,
    StateStore,
    advance_file,
    advance_watermark,
    backfill_entry,
    empty_state,
    file_progress,
    finish_backfill,
    mark_window_done,
    new_file_entry,
    shard_dir,
    shard_dirs,
    sync_entry,
)
from tests.conftest import REPO


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s")
    with store.locked():
        entry = store.file_progress("proj", "abc", Path("/data/x.jsonl"))
        store.commit_file(entry, offset=120, line=3, final=False)
    reloaded = StateStore(tmp_path / "s")
    doc = reloaded.load()
    assert doc["version"] == STATE_VERSION
    assert doc["files"]["proj:abc"]["offset"] == 120
    assert doc["files"]["proj:abc"]["path"] == "/data/x.jsonl"
    assert not list((tmp_path / "s").glob(".state-*.tmp")), "no temporary file left behind"


def test_missing_state_file_is_an_empty_state(tmp_path: Path) -> None:
    assert StateStore(tmp_path).load() == {"version": STATE_VERSION, "files": {}, "runs": {}}


def test_corrupt_state_file_is_left_alone_with_advice(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text('{"version": 1, "files": {"trunc')
    with pytest.raises(StateError) as caught:
        StateStore(tmp_path).load()
    message = str(caught.value)
    assert f"the state file {path} is corrupt: it is not valid JSON" in message
    assert "Move it aside and rerun" in message
    assert path.read_text() == '{"version": 1, "files": {"trunc', "the file is not touched"


def test_state_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text(json.dumps({"version": STATE_VERSION + 1}))
    with pytest.raises(StateError, match="written by a newer version"):
        StateStore(tmp_path).load()


def test_wrong_section_type_is_corrupt(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text(json.dumps({"version": 1, "files": []}))
    with pytest.raises(StateError, match="its 'files' section is not an object"):
        StateStore(tmp_path).load()


def _hold_lock(state_dir: str, ready: Any, release: Any) -> None:
    with StateStore(Path(state_dir)).locked():
        ready.set()
        release.wait(30)


def test_second_run_is_refused_while_the_first_holds_the_lock(tmp_path: Path) -> None:
    ready, release = multiprocessing.Event(), multiprocessing.Event()
    holder = multiprocessing.Process(target=_hold_lock, args=(str(tmp_path), ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        with pytest.raises(StateLockedError) as caught, StateStore(tmp_path).locked():
            pass
        assert f"is using the state directory {tmp_path}" in str(caught.value)
        assert f"pid {holder.pid}" in str(caught.value)
        assert caught.value.exit_code == 75
    finally:
        release.set()
        holder.join(30)
    with StateStore(tmp_path).locked():  # free again once the holder is done
        pass


def test_unwritable_state_dir_names_the_setting(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StateError, match="Set --state-dir"), StateStore(blocker / "sub").locked():
        pass


# --------------------------------------------------------------------------- damaged state


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        (b'{"version": 1, "files": {}}\xff', "it is not UTF-8 text (byte 27)"),
        (json.dumps({"version": 1, "files": {"p:x": {"offset": "12"}}}).encode(),
         "its file entry 'p:x' has offset='12', not a count"),
        (json.dumps({"version": 1, "files": {"p:x": []}}).encode(),
         "its file entry 'p:x' is not an object"),
        (json.dumps({"version": 1, "files": {"p:x": {"complete": "yes"}}}).encode(),
         "has complete='yes', not true/false"),
        (json.dumps({"version": 1, "sync": {"k": {"watermark": "soon"}}}).encode(),
         "its sync entry 'k' has watermark 'soon', not an ISO-8601 time"),
        (json.dumps({"version": 1, "sync": {"k": {"watermark": "2026-07-01T00:00:00"}}}).encode(),
         "without a time zone (add +00:00)"),
        (json.dumps({"version": 1, "sync": {"k": {"watermark": 1780000000}}}).encode(),
         "watermark 1780000000, not an ISO-8601 time in quotes"),
        (json.dumps({"version": 1, "backfills": {"k": {"done": "all"}}}).encode(),
         "'done' that is not a list of windows"),
    ],
)  # fmt: skip
def test_every_malformed_shape_is_a_clear_error_naming_the_file(
    tmp_path: Path, content: bytes, complaint: str
) -> None:
    (tmp_path / "state.json").write_bytes(content)
    with pytest.raises(StateError) as caught:
        StateStore(tmp_path).load()
    message = str(caught.value)
    assert f"the state file {tmp_path / 'state.json'} is corrupt: " in message
    assert complaint in message
    assert "Move it aside and rerun" in message
    assert caught.value.exit_code == 1


def test_status_on_a_damaged_state_file_exits_1_with_the_advice(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text('{"version": 1, "sync": {"k": {"watermark": 5}}}')
    result = CliRunner().invoke(cli, ["status", "--state-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "Error: the state file" in result.output and "Move it aside" in result.output
    assert "Traceback" not in result.output


# --------------------------------------------------------------------------- transitions

NOW = datetime(2026, 7, 1, 12, tzinfo=UTC)


def test_file_progress_advances_over_committed_batches_only() -> None:
    doc = empty_state()
    entry = file_progress(doc, "p", "abc", Path("/x.jsonl"))
    assert (entry["offset"], entry["line"], entry["complete"]) == (0, 0, False)
    counts = {"duplicates": 1, "quarantined": 2}
    advance_file(entry, offset=100, line=4, final=False, delivered=3, already_present=1,
                 counts=counts, starts_ns=[2 * 10**18, 10**18])  # fmt: skip
    advance_file(entry, offset=180, line=7, final=True, delivered=2, starts_ns=[3 * 10**18])
    assert doc["files"]["p:abc"] is entry
    assert (entry["offset"], entry["line"], entry["complete"]) == (180, 7, True)
    assert (entry["delivered"], entry["already_present"]) == (5, 1)
    assert (entry["duplicates"], entry["quarantined"]) == (1, 2)
    assert entry["earliest"].startswith("2001-09-09T01:46:40")
    assert entry["latest"].startswith("2065-01-24T05:20:00")


def test_the_watermark_only_moves_forward() -> None:
    entry = sync_entry(empty_state(), "k", "p")
    assert advance_watermark(entry, NOW)
    assert not advance_watermark(entry, NOW - timedelta(hours=1))
    assert entry["watermark"] == NOW.isoformat()
    assert advance_watermark(entry, NOW + timedelta(minutes=5))


def test_sync_start_from_since_watermark_or_first_run() -> None:
    entry = sync_entry(empty_state(), "k", "p")
    overlap, first = timedelta(minutes=15), timedelta(hours=24)
    assert sync_start(entry, None, overlap, NOW, first) == NOW - first
    entry["watermark"] = (NOW - timedelta(hours=2)).isoformat()
    assert sync_start(entry, None, overlap, NOW, first) == NOW - timedelta(hours=2, minutes=15)
    assert sync_start(entry, NOW - timedelta(days=3), overlap, NOW, first) == NOW - timedelta(3)


def test_a_watermark_in_the_future_is_refused_unless_accepted() -> None:
    entry = sync_entry(empty_state(), "k", "p")
    entry["watermark"] = "2030-01-01T00:00:00+00:00"
    with pytest.raises(FutureWatermarkError) as caught:
        sync_start(entry, None, timedelta(0), NOW, timedelta(hours=24))
    assert "the sync watermark 2030-01-01T00:00:00+00:00 is in the future" in str(caught.value)
    assert "--accept-future-watermark" in str(caught.value)
    assert caught.value.exit_code == 1
    accepted = sync_start(entry, None, timedelta(0), NOW, timedelta(hours=24), True)
    assert accepted == datetime(2030, 1, 1, tzinfo=UTC)


def test_backfill_windows_done_and_complete() -> None:
    doc = empty_state()
    entry = backfill_entry(doc, "k", "p", NOW, NOW + timedelta(days=2), 86400)
    mark_window_done(entry, "b")
    mark_window_done(entry, "a")
    mark_window_done(entry, "a")
    assert entry["done"] == ["a", "b"]
    assert not finish_backfill(entry, ["a", "b", "c"])
    mark_window_done(entry, "c")
    assert finish_backfill(entry, ["a", "b", "c"]) and entry["complete"]


def test_shard_directories(tmp_path: Path) -> None:
    assert shard_dir(tmp_path, None) == tmp_path
    assert shard_dir(tmp_path, (2, 3)) == tmp_path / "shards" / "2-of-3"
    for shard in [(2, 3), (1, 3)]:
        with StateStore(shard_dir(tmp_path, shard)).locked() as store:
            store.record_run("backfill", "ok", 0, {})
    assert [p.name for p in shard_dirs(tmp_path)] == ["1-of-3", "2-of-3"]


def test_record_run_keeps_outcome_and_exit_code(tmp_path: Path) -> None:
    with StateStore(tmp_path).locked() as store:
        store.record_run("sync", "interrupted", 130, {"delivered": 4})
    run = StateStore(tmp_path).load()["runs"]["sync"]  # saved by the transition itself
    assert (run["outcome"], run["exit_code"], run["delivered"]) == ("interrupted", 130, 4)
    assert "finished_at" in run


def test_transitions_save_themselves_and_a_downloads_progress_is_not_saved(
    tmp_path: Path,
) -> None:
    """What a run commits is on disk when the transition returns; a Portkey download's
    progress (not one of the document's files: its window commits whole) is not."""

    def on_disk() -> dict[str, Any]:
        return json.loads((tmp_path / "state.json").read_text())

    with StateStore(tmp_path).locked() as store:
        entry = store.file_progress("p", "abc", tmp_path / "x.jsonl")
        store.commit_file(entry, offset=50, line=2, final=False, delivered=2)
        assert on_disk()["files"]["p:abc"]["delivered"] == 2
        download = new_file_entry("p", "") | {"path": str(tmp_path / "window.jsonl")}
        store.commit_file(download, offset=90, line=3, final=True, delivered=3)
        assert download["delivered"] == 3 and on_disk()["files"] == {"p:abc": entry}
        sync = sync_entry(store.doc, "k", "p")
        store.commit_sync_window(sync, NOW)
        assert on_disk()["sync"]["k"]["watermark"] == NOW.isoformat()
        backfill = backfill_entry(store.doc, "b", "p", NOW, NOW + timedelta(days=2), 86400)
        store.commit_backfill_window(backfill, "w1")
        assert on_disk()["backfills"]["b"]["done"] == ["w1"]
        assert store.end_backfill(backfill, ["w1", "w2"], ("k", "p", NOW + timedelta(2))) is None
        assert on_disk()["backfills"]["b"]["complete"] is False
        assert on_disk()["sync"]["k"]["watermark"] == NOW.isoformat()
        store.commit_backfill_window(backfill, "w2")
        assert store.end_backfill(backfill, ["w1", "w2"], ("k", "p", NOW + timedelta(2))) is sync
        assert on_disk()["sync"]["k"]["watermark"] == (NOW + timedelta(2)).isoformat()
        store.begin_resync("r", {"kind": "file", "path": "/x"})
        assert set(on_disk()["resyncs"]) == {"r"}
        store.end_resync("r")
        assert on_disk()["resyncs"] == {}


def test_only_the_state_module_writes_the_state_file() -> None:
    """Callers never save: the state's own transitions own when the file is written."""
    callers = []
    for path in (REPO / "ingest").rglob("*.py"):
        if path == REPO / "ingest" / "run" / "state.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in ("save", "_save"):
                callers.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not callers, callers


# --------------------------------------------------------------------------- owner-only files


def test_everything_the_state_store_and_quarantine_create_is_owner_only(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        state_dir = tmp_path / "a" / "state"
        with StateStore(state_dir).locked() as store:
            store.record_run("import", "ok", 0, {})
        quarantine = Quarantine(state_dir / "quarantine" / "q.jsonl")
        quarantine.add("f.jsonl", 1, "bad", b"{}")
        quarantine.close()
    finally:
        os.umask(previous)
    for path in [tmp_path / "a", state_dir, state_dir / "quarantine"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    for path in [state_dir / "state.json", state_dir / "state.lock", quarantine.path]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert exposed_state_dir(state_dir) is None


def test_doctor_warns_about_a_state_dir_others_can_read(tmp_path: Path) -> None:
    from ingest.ops.doctor_local import WARN, check_state_dir

    exposed = tmp_path / "state"
    exposed.mkdir(mode=0o755)
    exposed.chmod(0o755)
    warnings = [c for c in check_state_dir(exposed) if c.status == WARN]
    assert any("can be read by other users" in c.detail for c in warnings)
    private = tmp_path / "new"
    assert all(c.status != WARN for c in check_state_dir(private)), "what doctor creates is 0700"
    assert stat.S_IMODE(private.stat().st_mode) == 0o700


def test_a_repaired_file_resumes_at_the_damage_only_when_it_starts_with_the_same_bytes(
    tmp_path: Path,
) -> None:
    store = StateStore(tmp_path)
    path = tmp_path / "export.jsonl.gz"
    damaged = store.file_progress("p", "old-sha", path)
    damaged.update(offset=500, line=5, complete=True,
                   damaged={"offset": 500, "line": 5, "prefix_sha256": "same"})  # fmt: skip
    elsewhere = store.file_progress("p", "x-sha", tmp_path / "other.jsonl.gz")

    fresh = store.file_progress("p", "new-sha", path)
    assert store.repaired(fresh, lambda length: "same" if length == 500 else "?") is damaged
    assert (fresh["offset"], fresh["line"], fresh["resumed_from"]) == (500, 5, "old-sha")

    different = store.file_progress("p", "other-content", path)
    assert store.repaired(different, lambda length: "not the same") is None
    assert (different["offset"], different["line"]) == (0, 0)  # read from its start
    assert store.repaired(elsewhere, lambda length: "same") is None  # not a damaged path
    other_project = store.file_progress("q", "new-sha", path)
    assert store.repaired(other_project, lambda length: "same") is None
