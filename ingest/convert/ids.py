"""Deterministic OpenTelemetry ids for Portkey logs, and the parent links between them
(docs/design.md: ids are a pure function).

The ids are a pure function of (scheme version, Phoenix project, fields every export has):
`span_id` from the Portkey log id, `trace_id` from the Portkey trace id (else the log id).
Sync, backfill, file import, with or without enrichment: one log always gets the same ids.
Phoenix stores span ids write-once and globally unique, so changing this scheme would
duplicate every span already delivered: bump `ID_SCHEME_VERSION` only on purpose.

Trace trees: a log's span is linked to the span of its Portkey parent, when both are logged.

Span ids never change: a log's span id comes from its log id
alone. A parent link needs the parent's log id, which a child log does not carry: it only
knows the parent's Portkey span id (from `--enrich` or a richer export). So logs are indexed
by (Portkey trace id, Portkey span id) -> log id, and a child gets its parent's span as its
parent whenever the parent is indexed. The link is a function of the logs, not of their
order: a first pass indexes every log of a file (or export window) before any is converted
(`run/pipeline.index_parents`), two logs claiming one Portkey span id resolve to the smaller
log id, and a persistent index beside the state remembers the parents of earlier runs.

A child whose parent is not a logged request (an application span, or a request outside
everything imported so far) stays a root span of its trace and keeps
`portkey.parent_span_id`. Phoenix stores spans once: such a child is fixed by `resync` once
its parent has been delivered.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Protocol

from ingest.convert.records import LogRecord

ID_SCHEME_VERSION = 1


def _digest(kind: str, project: str, key: str, size: int) -> int:
    material = f"portkey-phoenix-ingest/v{ID_SCHEME_VERSION}\x1f{kind}\x1f{project}\x1f{key}"
    value = int.from_bytes(hashlib.sha256(material.encode()).digest()[:size], "big")
    return value or 1  # an all-zero id is invalid in OpenTelemetry


def span_id_for(project: str, log_id: str) -> int:
    """The 64-bit span id of one Portkey log in one Phoenix project."""
    return _digest("span", project, log_id, 8)


def trace_id_for(project: str, portkey_trace_id: str | None, log_id: str) -> int:
    """The 128-bit trace id: logs sharing a Portkey trace id share a Phoenix trace."""
    if portkey_trace_id:
        return _digest("trace", project, portkey_trace_id, 16)
    return _digest("trace-of-log", project, log_id, 16)


def span_hex(span_id: int) -> str:
    return f"{span_id:016x}"


def trace_hex(trace_id: int) -> str:
    return f"{trace_id:032x}"


class ParentLookup(Protocol):
    """Parents remembered outside this run (the index beside the state)."""

    def lookup(self, trace_id: str | None, span_id: str) -> str | None: ...


class ParentIndex:
    """(trace id, Portkey span id) -> log id, for the most recent `limit` logs, backed by an
    optional longer-lived `earlier` index."""

    def __init__(
        self, limit: int = 200_000, earlier: ParentLookup | None = None, max_bytes: int = 32 << 20
    ) -> None:
        self.limit, self.max_bytes = limit, max_bytes  # entries, and their size in memory
        self.earlier = earlier
        self._logs: OrderedDict[tuple[str | None, str], str] = OrderedDict()
        self._bytes = 0

    def remember(self, record: LogRecord) -> None:
        if record.span_id:
            key = (record.trace_id, record.span_id)
            known = self._logs.get(key)
            if known is None:
                self._bytes += _size(key, record.log_id)
            # Two logs with one Portkey span id (a retried request logged twice): the same
            # one wins whatever the order.
            self._logs[key] = record.log_id if known is None else min(known, record.log_id)
            self._logs.move_to_end(key)
            while len(self._logs) > self.limit or self._bytes > self.max_bytes:
                self._bytes -= _size(*self._logs.popitem(last=False))

    def parent_of(self, record: LogRecord) -> str | None:
        """The log id of this log's Portkey parent, when that parent is known."""
        if not record.parent_span_id or record.parent_span_id == record.span_id:
            return None
        key = (record.trace_id, record.parent_span_id)
        parent = self._logs.get(key)
        if parent is None and self.earlier is not None:
            parent = self.earlier.lookup(*key)
        return parent if parent != record.log_id else None


def _size(key: tuple[str | None, str], log_id: str) -> int:
    """Roughly what one entry holds: three strings (ids are at most 256 characters, see
    records.MAX_ID_CHARS), a tuple and the dict's slot."""
    return len(key[0] or "") + len(key[1]) + len(log_id) + 250
