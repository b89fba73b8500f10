"""The state file: atomic versioned JSON, one run at a time, clear errors when damaged."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path
from typing import Any

import pytest

from ingest.errors import StateError, StateLockedError
from ingest.run.state import STATE_VERSION, StateStore


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s")
    with store.locked():
        entry = store.file_progress("proj", "abc", Path("/data/x.jsonl"))
        entry["offset"], entry["line"] = 120, 3
        store.save()
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
