"""Trace trees: link a log's span to the span of its Portkey parent, when both are logged.

Span ids never change (DESIGN.md, invariant 1): a log's span id comes from its log id
alone. A parent link needs the parent's log id, which a child log does not carry: it only
knows the parent's Portkey span id (from `--enrich` or a richer export). So logs are indexed
by (Portkey trace id, Portkey span id) -> log id, and a child gets its parent's span as its
parent whenever the parent is indexed. The link is a function of the logs, not of their
order: a first pass indexes every log of a file (or export window) before any is converted
(`run/parents.py`), two logs claiming one Portkey span id resolve to the smaller log id, and
a persistent index beside the state remembers the parents of earlier runs.

A child whose parent is not a logged request (an application span, or a request outside
everything imported so far) stays a root span of its trace and keeps
`portkey.parent_span_id`. Phoenix stores spans once: such a child is fixed by `resync` once
its parent has been delivered.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Protocol

from ingest.convert.records import LogRecord


class ParentLookup(Protocol):
    """Parents remembered outside this run (the index beside the state)."""

    def lookup(self, trace_id: str | None, span_id: str) -> str | None: ...


class ParentIndex:
    """(trace id, Portkey span id) -> log id, for the most recent `limit` logs, backed by an
    optional longer-lived `earlier` index."""

    def __init__(self, limit: int = 200_000, earlier: ParentLookup | None = None) -> None:
        self.limit = limit
        self.earlier = earlier
        self._logs: OrderedDict[tuple[str | None, str], str] = OrderedDict()

    def remember(self, record: LogRecord) -> None:
        if record.span_id:
            key = (record.trace_id, record.span_id)
            known = self._logs.get(key)
            # Two logs with one Portkey span id (a retried request logged twice): the same
            # one wins whatever the order.
            self._logs[key] = record.log_id if known is None else min(known, record.log_id)
            self._logs.move_to_end(key)
            if len(self._logs) > self.limit:
                self._logs.popitem(last=False)

    def parent_of(self, record: LogRecord) -> str | None:
        """The log id of this log's Portkey parent, when that parent is known."""
        if not record.parent_span_id or record.parent_span_id == record.span_id:
            return None
        key = (record.trace_id, record.parent_span_id)
        parent = self._logs.get(key)
        if parent is None and self.earlier is not None:
            parent = self.earlier.lookup(*key)
        return parent if parent != record.log_id else None
