"""The state file: what has been verified in Phoenix, so reruns resume instead of restarting.

A small versioned JSON document, written atomically (temporary file, fsync, rename, fsync of
the directory) and guarded by an exclusive lock held for the whole run. It is written in one
place: `StateStore`'s transitions (a committed batch, a window done, a run's record, a resync
begun or ended) each save it before they return; callers never save. Only the delivery
commit callback advances files and windows, and only over verified spans. Deleting it is
safe: the next run re-checks every log against Phoenix and sends nothing twice.

Beside it, `parents.sqlite3` (`ParentStore`) remembers the Portkey span ids of delivered
logs (convert/ids.py: parent links), bounded in rows and added at each commit, so a child in
a later file or window finds a parent delivered by an earlier run.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
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
        self._damaged_paths: set[str] | None = None  # of the loaded document's files

    # ---- lock --------------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[StateStore]:
        """Hold the exclusive lock for a run; raise StateLockedError at once if taken."""
        self._mkdir()
        handle = open_private(self.dir / LOCK_FILE, "a+")
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
            text = self.path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self._corrupt(f"it is not UTF-8 text (byte {exc.start})") from None
        except FileNotFoundError:
            self.doc, self._damaged_paths = empty_state(), None
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
        for section in ("files", "runs", "sync", "backfills", "resyncs"):
            if not isinstance(doc.setdefault(section, {}), dict):
                raise self._corrupt(f"its '{section}' section is not an object")
        if problem := shape_problem(doc):
            raise self._corrupt(problem)
        self.doc, self._damaged_paths = doc, None
        return doc

    def _corrupt(self, why: str) -> StateError:
        return StateError(
            f"the state file {self.path} is corrupt: {why}. It was left unchanged. Move it "
            "aside and rerun: the next run re-checks every log against Phoenix and sends "
            "nothing twice."
        )

    def _save(self) -> None:
        """Write the document atomically: a crash leaves the old or the new file, whole.
        Called by the transitions below only: they own when the file is written."""
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
            make_private_dir(self.dir)
        except OSError as exc:
            raise StateError(
                f"cannot create the state directory {self.dir}: {exc.strerror}. "
                "Set --state-dir (or INGEST_STATE_DIR) to a writable directory."
            ) from exc

    # ---- sections -------------------------------------------------------------------------

    def file_progress(self, project: str, fingerprint: str, path: Path) -> dict[str, Any]:
        return file_progress(self.doc, project, fingerprint, path)

    def repaired(self, entry: dict[str, Any], digest_of: Any) -> dict[str, Any] | None:
        """A file new to the state (`entry` at line 0) that repairs a damaged one (the same
        project and path, its content unreadable past `damaged.offset`) resumes there when
        its first bytes are the same (`digest_of(offset)`): they were delivered. Returns the
        damaged entry. The damaged paths are gathered once per load, not scanned per file."""
        if self._damaged_paths is None:
            self._damaged_paths = {e.get("path") for e in self.doc["files"].values()
                                   if "damaged" in e}  # fmt: skip
        if entry["offset"] or entry["complete"] or entry.get("path") not in self._damaged_paths:
            return None
        for other in self.doc["files"].values():
            damage = other.get("damaged")
            if (other is entry or not isinstance(damage, dict) or other.get("path") != entry["path"]
                    or other.get("project") != entry["project"]):  # fmt: skip
                continue
            offset, line = damage.get("offset"), damage.get("line")
            if isinstance(offset, int) and isinstance(line, int) and offset > 0 and (
                    digest_of(offset) == damage.get("prefix_sha256")):  # fmt: skip
                entry["offset"], entry["line"], entry["resumed_from"] = (
                    offset,
                    line,
                    other["sha256"],
                )
                return other
        return None

    def section(self, name: str) -> dict[str, Any]:
        """A top-level section of the document ("sync", "backfills", ...), created empty."""
        value = self.doc.setdefault(name, {})
        if not isinstance(value, dict):
            raise self._corrupt(f"its '{name}' section is not an object")
        return value

    # ---- transitions, each saved before it returns ---------------------------------------
    # Creating an entry (a file's at line 0, a sync's or backfill's key) saves nothing: it says
    # no more than its absence. Everything a run commits is saved at once, here.

    def commit_file(self, entry: dict[str, Any], **batch: Any) -> None:
        """A file's verified batch (`advance_file`); saved when the entry is this document's.
        A Portkey download's is not: its window commits whole (`commit_sync_window`)."""
        advance_file(entry, **batch)
        if self.doc["files"].get(f"{entry['project']}:{entry['sha256']}") is entry:
            self._save()

    def commit_sync_window(self, entry: dict[str, Any], until: datetime) -> None:
        """A sync window verified: the watermark moves to its end (never back)."""
        advance_watermark(entry, until)
        self._save()

    def commit_backfill_window(self, entry: dict[str, Any], window: str) -> None:
        mark_window_done(entry, window)
        self._save()

    def end_backfill(
        self, entry: dict[str, Any], planned: Iterable[str], sync: tuple[str, str, datetime] | None
    ) -> dict[str, Any] | None:
        """Record whether every planned window is done. When they all are and `sync` is
        (key, project, until) (`--advance-sync`), the sync watermark moves to `until`: that
        sync entry is returned."""
        moved = None
        if finish_backfill(entry, planned) and sync is not None:
            moved = sync_entry(self.doc, sync[0], sync[1])
            advance_watermark(moved, sync[2])
        self._save()
        return moved

    def record_run(self, kind: str, outcome: str, exit_code: int, fields: dict[str, Any]) -> None:
        """The last run of a command: when, how it ended, and its counts (`status` shows it)."""
        self.doc["runs"][kind] = {"finished_at": utc_now(), "outcome": outcome,
                                  "exit_code": exit_code, **fields}  # fmt: skip
        self._save()

    def begin_resync(self, key: str, unit: dict[str, Any]) -> None:
        """A resync unit (window or file) whose spans are about to be deleted: recorded before
        the first delete, so a crash leaves it pending (`pending_resyncs`)."""
        self.section("resyncs")[key] = {**unit, "started_at": utc_now()}
        self._save()

    def end_resync(self, key: str) -> None:
        """Its re-delivered spans and annotations are verified: no longer pending."""
        self.section("resyncs").pop(key, None)
        self._save()


# ---- owner-only files ------------------------------------------------------------------
# The state directory holds raw export downloads and quarantined request bodies: whatever
# the umask, what the tool creates is readable by its owner only.

_OPEN_FLAGS = {
    "a": os.O_WRONLY | os.O_CREAT | os.O_APPEND,
    "a+": os.O_RDWR | os.O_CREAT | os.O_APPEND,
    "w": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
    "wb": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
}


def make_private_dir(path: Path) -> None:
    """mkdir -p with mode 0700 for every directory this call creates (existing ones are
    left as they are; `doctor` warns when the state directory is readable by others)."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    for created in missing:
        with contextlib.suppress(OSError):
            os.chmod(created, 0o700)


def open_private(path: Path, mode: str = "a", encoding: str | None = None) -> Any:
    """Open (creating with mode 0600) a file only its owner may read."""
    fd = os.open(path, _OPEN_FLAGS[mode], 0o600)
    return os.fdopen(fd, mode, encoding=None if "b" in mode else encoding or "utf-8")


# ---- shape of a loaded document ----------------------------------------------------------

_FILE_INTS = ("offset", "line", "delivered", "already_present", "duplicates", "quarantined")


def shape_problem(doc: dict[str, Any]) -> str | None:
    """What is wrong with a (hand-edited or damaged) state document, or None."""
    for key, entry in doc["files"].items():
        if not isinstance(entry, dict):
            return f"its file entry {key!r} is not an object"
        for name in _FILE_INTS:
            value = entry.get(name, 0)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                return f"its file entry {key!r} has {name}={value!r}, not a count"
        if not isinstance(entry.get("complete", False), bool):
            return f"its file entry {key!r} has complete={entry['complete']!r}, not true/false"
    for key, entry in doc["sync"].items():
        if not isinstance(entry, dict):
            return f"its sync entry {key!r} is not an object"
        try:
            parse_watermark(entry.get("watermark"))
        except ValueError as exc:
            return f"its sync entry {key!r} has {exc}"
    for key, entry in doc["backfills"].items():
        if not isinstance(entry, dict):
            return f"its backfill entry {key!r} is not an object"
        done = entry.get("done", [])
        if not isinstance(done, list) or not all(isinstance(item, str) for item in done):
            return f"its backfill entry {key!r} has a 'done' that is not a list of windows"
    for key, entry in doc["runs"].items():
        if not isinstance(entry, dict):
            return f"its run entry {key!r} is not an object"
    return None


def parse_watermark(value: Any) -> datetime | None:
    """A stored watermark: None, or an ISO-8601 time with a time zone."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"watermark {value!r}, not an ISO-8601 time in quotes")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"watermark {value!r}, not an ISO-8601 time") from None
    if moment.tzinfo is None:
        raise ValueError(f"watermark {value!r} without a time zone (add +00:00)")
    return moment


# ---- transitions: plain functions of the document in memory (StateStore's methods save) ---


def new_file_entry(project: str, fingerprint: str) -> dict[str, Any]:
    return {"project": project, "sha256": fingerprint, "offset": 0, "line": 0,
            "complete": False, "delivered": 0, "already_present": 0, "duplicates": 0,
            "quarantined": 0}  # fmt: skip


def file_progress(
    doc: dict[str, Any], project: str, fingerprint: str, path: Path
) -> dict[str, Any]:
    """The progress entry of a file's content in a project, created at line 0."""
    key = f"{project}:{fingerprint}"
    entry = doc["files"].setdefault(key, new_file_entry(project, fingerprint))
    entry["path"] = str(path)
    return entry


def advance_file(
    entry: dict[str, Any],
    *,
    offset: int,
    line: int,
    final: bool,
    delivered: int = 0,
    already_present: int = 0,
    counts: dict[str, int] | None = None,
    starts_ns: Iterable[int] = (),
) -> None:
    """A verified batch: the file's cursor moves past its last line, its counts grow."""
    entry["offset"], entry["line"], entry["complete"] = offset, line, final
    entry["delivered"] += delivered
    entry["already_present"] += already_present
    for name in ("duplicates", "quarantined", "sampled_out", "route_fallbacks"):
        if (counts or {}).get(name) or name in entry:
            entry[name] = entry.get(name, 0) + (counts or {}).get(name, 0)
    starts = list(starts_ns)
    if starts:
        earliest, latest = _ns_iso(min(starts)), _ns_iso(max(starts))
        entry["earliest"] = min(filter(None, [entry.get("earliest"), earliest]))
        entry["latest"] = max(filter(None, [entry.get("latest"), latest]))
    entry["updated_at"] = utc_now()


def _ns_iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).isoformat(timespec="microseconds")


def sync_entry(doc: dict[str, Any], key: str, project: str) -> dict[str, Any]:
    return doc.setdefault("sync", {}).setdefault(key, {"project": project, "watermark": None})


def advance_watermark(entry: dict[str, Any], until: datetime) -> bool:
    """Move the watermark forward to `until` (never back); True when it moved."""
    current = parse_watermark(entry.get("watermark"))
    entry["updated_at"] = utc_now()
    if current is not None and current >= until:
        return False
    entry["watermark"] = until.isoformat()
    return True


def backfill_entry(
    doc: dict[str, Any], key: str, project: str, since: datetime, until: datetime, window_s: int
) -> dict[str, Any]:
    entry = {"project": project, "since": since.isoformat(), "until": until.isoformat(),
             "window_s": window_s, "done": []}  # fmt: skip
    return doc.setdefault("backfills", {}).setdefault(key, entry)


def mark_window_done(entry: dict[str, Any], window: str) -> None:
    entry["done"] = sorted({*entry.get("done", []), window})
    entry["updated_at"] = utc_now()


def finish_backfill(entry: dict[str, Any], planned: Iterable[str]) -> bool:
    """Record whether every planned window is done; return it."""
    entry["complete"] = set(planned) <= set(entry.get("done", []))
    return bool(entry["complete"])


def shard_dir(state_dir: Path, shard: tuple[int, int] | None) -> Path:
    """A shard keeps its own state and lock under STATE_DIR/shards/I-of-N."""
    return state_dir / "shards" / f"{shard[0]}-of-{shard[1]}" if shard else state_dir


def shard_dirs(state_dir: Path) -> list[Path]:
    """The shard state directories under a state directory, in shard order."""
    root = state_dir / "shards"
    if not root.is_dir():
        return []

    def order(path: Path) -> tuple[int, int]:
        index, _, count = path.name.partition("-of-")
        return (int(count), int(index)) if index.isdigit() and count.isdigit() else (0, 0)

    return sorted((p for p in root.iterdir() if (p / STATE_FILE).is_file()), key=order)


# ---- resync: a unit (window or file) whose spans are being deleted and re-delivered ------
# Recorded (`begin_resync`, saved) before the first delete, cleared (`end_resync`) only once
# the re-delivered spans and their annotations are verified: while it is there, the project
# may lack some of its logs.


def pending_resyncs(doc: dict[str, Any], project: str, kind: str) -> list[dict[str, Any]]:
    """The unfinished resync units of one project and kind ("window" or "file")."""
    entries = doc.get("resyncs", {}).values()
    return [e for e in entries if e.get("project") == project and e.get("kind") == kind]


def resync_holes(doc: dict[str, Any], project: str) -> list[tuple[datetime, datetime]]:
    """[since, until) of the windows whose resync was interrupted: `sync` exports them again
    so what was deleted is delivered (the resync itself stays pending until rerun)."""
    return [(datetime.fromisoformat(e["since"]), datetime.fromisoformat(e["until"]))
            for e in pending_resyncs(doc, project, "window")]  # fmt: skip


# ---- the parent index beside the state (filled by the pipeline's pre-pass)

PARENTS_FILE = "parents.sqlite3"
MAX_REMEMBERED = 1_000_000  # rows kept beside the state (~100 MB at most); oldest go first


class ParentStore:
    """(project, Portkey trace id, Portkey span id) -> log id, across runs."""

    def __init__(self, path: Path, limit: int = MAX_REMEMBERED) -> None:
        self.limit = limit
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS parents (project TEXT, trace_id TEXT, span_id TEXT, "
            "log_id TEXT, PRIMARY KEY (project, trace_id, span_id))"
        )

    def lookup(self, project: str, trace_id: str | None, span_id: str) -> str | None:
        row = self._db.execute(
            "SELECT log_id FROM parents WHERE project = ? AND trace_id = ? AND span_id = ?",
            (project, trace_id or "", span_id),
        ).fetchone()
        return row[0] if row else None

    def add(self, rows: list[tuple[str, str, str, str]]) -> None:
        """(project, trace id, span id, log id) rows; the smaller log id wins, as in
        ParentIndex."""
        if not rows:
            return
        with self._db:
            self._db.executemany(
                "INSERT INTO parents VALUES (?, ?, ?, ?) ON CONFLICT (project, trace_id, span_id) "
                "DO UPDATE SET "
                "log_id = min(log_id, excluded.log_id)",
                rows,
            )
            self._db.execute(
                "DELETE FROM parents WHERE rowid <= (SELECT max(rowid) FROM parents) - ?",
                (self.limit,),
            )

    def close(self) -> None:
        self._db.close()


def parent_store(state_dir: Path | None) -> ParentStore | None:
    return ParentStore(state_dir / PARENTS_FILE) if state_dir is not None else None
