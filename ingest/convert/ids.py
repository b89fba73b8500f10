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

Where a log goes is decided here too, as pure functions of the record, so every run, shard
and machine agrees: `route` names its project (`--project-from`), and `sampled_in` keeps or
drops its whole trace (`--sample`). A routed log gets the ids it would get in that project
alone; its parent is linked only when the parent went to the same project (else the child
keeps `portkey.parent_span_id` as an attribute, like any parent not delivered).
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Protocol

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


MAX_PROJECT_CHARS = 200  # a longer routing value is no project name: it falls back


@dataclass(frozen=True, slots=True)
class Route:
    """Where one log goes: its project, and why it fell back to the default when it did."""

    project: str
    fallback: str | None = None  # the reason a routing value could not be used


def check_project_from(spec: str) -> str:
    """`metadata.<key>` or `workspace`, else ValueError saying what is accepted."""
    spec = spec.strip()
    if spec == "workspace" or (spec.startswith("metadata.") and spec[len("metadata.") :]):
        return spec
    raise ValueError(f"{spec!r} is not a routing field: use metadata.<key> (the value of that "
                     "Portkey metadata key names the project) or workspace")  # fmt: skip


def route(
    record: LogRecord, project_from: str | None, default: str, only: Collection[str] = ()
) -> Route:
    """The project `record` goes to: the value of `project_from` (`metadata.<key>` or
    `workspace`) when it can be a project name (and, when `only` lists names, is one of
    them), else `default`. A log without the value, or naming a project outside `only`,
    goes to `default` silently; a value that cannot be a name (empty, too long, control
    characters, not text) falls back with the reason."""
    if not project_from:
        return Route(default)
    value: Any
    if project_from == "workspace":
        value = record.workspace_slug
    else:
        value = record.metadata.get(project_from[len("metadata.") :])
    if value is None:
        return Route(default)
    if not isinstance(value, str):
        return Route(default, f"{project_from} is not text")
    name = value.strip()
    problem = project_name_problem(name)
    if problem:
        return Route(default, f"{project_from} {problem}")
    if only and name not in only:
        return Route(default)
    return Route(name)


def project_name_problem(name: str) -> str | None:
    """Why `name` cannot be a project name routed to (None when it can)."""
    if not name:
        return "is empty"
    if len(name) > MAX_PROJECT_CHARS:
        return f"is longer than {MAX_PROJECT_CHARS} characters"
    if any(unicodedata.category(char)[0] == "C" for char in name):
        return "holds control characters"
    return None


def sample_key(record: LogRecord) -> str:
    """What sampling decides by: the Portkey trace id, else the log id (a trace of one)."""
    return f"trace\x1f{record.trace_id}" if record.trace_id else f"log\x1f{record.log_id}"


def sampled_in(record: LogRecord, rate: float) -> bool:
    """Is the record's whole trace kept at `rate` (0 < rate <= 1)? A hash of the trace,
    uniform over [0, 1): the same answer on every run, shard and machine, and a trace kept at
    one rate is kept at every higher rate."""
    if rate >= 1.0:
        return True
    material = f"portkey-phoenix-ingest/sample\x1f{sample_key(record)}".encode()
    point = int.from_bytes(hashlib.sha256(material).digest()[:8], "big") / 2.0**64
    return point < rate


class ParentLookup(Protocol):
    """Parents remembered outside this run (the index beside the state)."""

    def lookup(self, project: str, trace_id: str | None, span_id: str) -> str | None: ...


class ParentIndex:
    """(project, trace id, Portkey span id) -> log id, for the most recent `limit` logs,
    backed by an optional longer-lived `earlier` index. A parent is found only in the
    child's project: a span cannot have a parent in another Phoenix project."""

    def __init__(
        self, limit: int = 200_000, earlier: ParentLookup | None = None, max_bytes: int = 32 << 20
    ) -> None:
        self.limit, self.max_bytes = limit, max_bytes  # entries, and their size in memory
        self.earlier = earlier
        self._logs: OrderedDict[tuple[str, str | None, str], str] = OrderedDict()
        self._bytes = 0

    def remember(self, record: LogRecord, project: str = "") -> None:
        if record.span_id:
            key = (project, record.trace_id, record.span_id)
            known = self._logs.get(key)
            if known is None:
                self._bytes += _size(key, record.log_id)
            # Two logs with one Portkey span id (a retried request logged twice): the same
            # one wins whatever the order.
            self._logs[key] = record.log_id if known is None else min(known, record.log_id)
            self._logs.move_to_end(key)
            while len(self._logs) > self.limit or self._bytes > self.max_bytes:
                self._bytes -= _size(*self._logs.popitem(last=False))

    def parent_of(self, record: LogRecord, project: str = "") -> str | None:
        """The log id of this log's Portkey parent, when that parent is known in `project`."""
        if not record.parent_span_id or record.parent_span_id == record.span_id:
            return None
        key = (project, record.trace_id, record.parent_span_id)
        parent = self._logs.get(key)
        if parent is None and self.earlier is not None:
            parent = self.earlier.lookup(*key)
        return parent if parent != record.log_id else None


def _size(key: tuple[str, str | None, str], log_id: str) -> int:
    """Roughly what one entry holds: four strings (ids are at most 256 characters, see
    records.MAX_ID_CHARS), a tuple and the dict's slot."""
    return sum(len(part or "") for part in key) + len(log_id) + 250
