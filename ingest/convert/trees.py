"""Trace trees: link a log's span to the span of its Portkey parent, when both are logged.

Span ids never change (DESIGN.md, invariant 1): a log's span id comes from its log id
alone. A parent link needs the parent's log id, which a child log does not carry: it only
knows the parent's Portkey span id (from `--enrich` or a richer export). So the logs seen
so far are indexed by (Portkey trace id, Portkey span id) and a child found after its
parent gets the parent's span as its parent. A child whose parent is not a logged request
(an application span, or a request outside the imported range) stays a root span of its
trace, and keeps `portkey.parent_span_id` as an attribute. Phoenix stores spans once, so
a link missed on the first delivery is not added later.
"""

from __future__ import annotations

from collections import OrderedDict

from ingest.convert.records import LogRecord


class ParentIndex:
    """(trace id, Portkey span id) -> log id, for the most recent `limit` logs."""

    def __init__(self, limit: int = 200_000) -> None:
        self.limit = limit
        self._logs: OrderedDict[tuple[str | None, str], str] = OrderedDict()

    def remember(self, record: LogRecord) -> None:
        if record.span_id:
            key = (record.trace_id, record.span_id)
            self._logs[key] = record.log_id
            self._logs.move_to_end(key)
            if len(self._logs) > self.limit:
                self._logs.popitem(last=False)

    def parent_of(self, record: LogRecord) -> str | None:
        """The log id of this log's Portkey parent, when that parent was seen."""
        if not record.parent_span_id or record.parent_span_id == record.span_id:
            return None
        parent = self._logs.get((record.trace_id, record.parent_span_id))
        return parent if parent != record.log_id else None
