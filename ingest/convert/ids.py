"""Deterministic OpenTelemetry ids for Portkey logs (DESIGN.md, invariant 1).

The ids are a pure function of (scheme version, Phoenix project, fields every export has):
`span_id` from the Portkey log id, `trace_id` from the Portkey trace id (else the log id).
Sync, backfill, file import, with or without enrichment: one log always gets the same ids.
Phoenix stores span ids write-once and globally unique, so changing this scheme would
duplicate every span already delivered: bump `ID_SCHEME_VERSION` only on purpose.
"""

from __future__ import annotations

import hashlib

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
