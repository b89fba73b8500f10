"""The first pass that makes trace trees independent of the order of the logs.

Before a file (an export file, or one of an export window's files) is converted, its lines
are read once to index every log's Portkey span id (`convert/ids.py`), so a child placed
before its parent in the file still gets its parent link. The index of each file is also
written to `parents.sqlite3` beside the state, bounded in rows, so a child in a later file or
window finds a parent delivered by an earlier run.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from ingest.convert.ids import ParentIndex
from ingest.convert.records import LogRecord, parse_record
from ingest.errors import RecordError
from ingest.sources.files import chunk_lines, decode_line, read_lines

PARENTS_FILE = "parents.sqlite3"
MAX_REMEMBERED = 1_000_000  # rows kept beside the state (~100 MB at most); oldest go first


class Enricher(Protocol):
    def enrich(self, raws: list[dict[str, Any]]) -> None: ...


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


def index_parents(
    path: Path,
    parents: ParentIndex,
    max_line_bytes: int,
    enricher: Enricher | None = None,
    prepare: Callable[[Any], Any] = lambda raw: raw,
    project_of: Callable[[LogRecord], str] = lambda record: "",
    batch: int = 500,
) -> None:
    """Remember every log of `path` that has a Portkey span id, in the project it is routed
    to (`project_of`); bad lines are left to the delivery pass, which quarantines them.
    Enrichment is cached, so the second pass pays nothing for it."""
    store = parents.earlier if isinstance(parents.earlier, ParentStore) else None
    for chunk in chunk_lines(read_lines(path, max_line_bytes=max_line_bytes), batch):
        raws = []
        for line in chunk:
            if enricher is None and b"span_id" not in line.data:
                continue  # no Portkey span id: nothing to index (most exports), no parse
            try:
                raws.append(decode_line(line))
            except RecordError:
                continue
        if enricher is not None:
            enricher.enrich([raw for raw in raws if isinstance(raw, dict)])
        rows = []
        for raw in raws:
            try:
                record = parse_record(prepare(raw))
            except RecordError:
                continue
            if record.span_id:
                project = project_of(record)
                parents.remember(record, project)
                rows.append((project, record.trace_id or "", record.span_id, record.log_id))
        if store is not None:
            store.add(rows)
