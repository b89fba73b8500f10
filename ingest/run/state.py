"""The state file: what has been verified in Phoenix, so reruns resume instead of restarting.

A small versioned JSON document, written atomically (temporary file, fsync, rename, fsync of
the directory) and guarded by an exclusive lock held for the whole run. Only the delivery
commit callback advances it, and only over verified spans. Deleting it is safe: the next
run re-checks every log against Phoenix and sends nothing twice (ids are deterministic).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ingest.errors import StateError, StateLockedError

STATE_VERSION = 1
STATE_FILE = "state.json"
LOCK_FILE = "state.lock"


def default_state_dir() -> Path:
    """`$INGEST_STATE_DIR`, else `$XDG_STATE_HOME/portkey-phoenix-ingest` (~/.local/state)."""
    if explicit := os.environ.get("INGEST_STATE_DIR"):
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "portkey-phoenix-ingest"


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def empty_state() -> dict[str, Any]:
    return {"version": STATE_VERSION, "files": {}, "runs": {}}


class StateStore:
    """Loads, locks and atomically saves the state document of one state directory."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir
        self.path = state_dir / STATE_FILE
        self.doc: dict[str, Any] = empty_state()
        self._lock_handle: Any = None

    # ---- lock --------------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[StateStore]:
        """Hold the exclusive lock for a run; raise StateLockedError at once if taken."""
        self._mkdir()
        handle = (self.dir / LOCK_FILE).open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise StateLockedError(
                f"another portkey-phoenix-ingest run ({holder}) is using the state directory "
                f"{self.dir}; this run changed nothing. Try again when it has finished."
            ) from None
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}, started {utc_now()}")
            handle.flush()
            self._lock_handle = handle
            self.load()
            yield self
        finally:
            self._lock_handle = None
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()

    # ---- read / write --------------------------------------------------------------------

    def load(self) -> dict[str, Any]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            self.doc = empty_state()
            return self.doc
        except OSError as exc:
            raise StateError(f"cannot read the state file {self.path}: {exc.strerror}.") from exc
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise self._corrupt(f"it is not valid JSON ({exc})") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("version"), int):
            raise self._corrupt("it has no version number")
        if doc["version"] > STATE_VERSION:
            raise StateError(
                f"the state file {self.path} was written by a newer version of "
                f"portkey-phoenix-ingest (state version {doc['version']}, this one reads "
                f"{STATE_VERSION}). Upgrade portkey-phoenix-ingest, or use another --state-dir."
            )
        for section in ("files", "runs"):
            if not isinstance(doc.setdefault(section, {}), dict):
                raise self._corrupt(f"its '{section}' section is not an object")
        self.doc = doc
        return doc

    def _corrupt(self, why: str) -> StateError:
        return StateError(
            f"the state file {self.path} is corrupt: {why}. It was left unchanged. Move it "
            "aside and rerun: the next run re-checks every log against Phoenix and sends "
            "nothing twice."
        )

    def save(self) -> None:
        """Write the document atomically: a crash leaves the old or the new file, whole."""
        self._mkdir()
        data = json.dumps(self.doc, indent=1, sort_keys=True).encode()
        fd, tmp = tempfile.mkstemp(prefix=".state-", suffix=".tmp", dir=self.dir)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # make the rename itself durable
        finally:
            os.close(dir_fd)

    def _mkdir(self) -> None:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(
                f"cannot create the state directory {self.dir}: {exc.strerror}. "
                "Set --state-dir (or INGEST_STATE_DIR) to a writable directory."
            ) from exc

    # ---- file progress -------------------------------------------------------------------

    @staticmethod
    def file_key(project: str, fingerprint: str) -> str:
        return f"{project}:{fingerprint}"

    def file_progress(self, project: str, fingerprint: str, path: Path) -> dict[str, Any]:
        entry = self.doc["files"].setdefault(
            self.file_key(project, fingerprint),
            {
                "project": project,
                "sha256": fingerprint,
                "offset": 0,
                "line": 0,
                "complete": False,
                "delivered": 0,
                "already_present": 0,
                "duplicates": 0,
                "quarantined": 0,
            },
        )
        entry["path"] = str(path)
        return entry

    def forget_file(self, path: Path) -> None:
        """Drop the progress of a downloaded export file once its window is committed."""
        files = self.doc["files"]
        for key in [key for key, entry in files.items() if entry.get("path") == str(path)]:
            del files[key]

    def section(self, name: str) -> dict[str, Any]:
        """A top-level section of the document ("sync", "backfills", ...), created empty."""
        value = self.doc.setdefault(name, {})
        if not isinstance(value, dict):
            raise self._corrupt(f"its '{name}' section is not an object")
        return value
