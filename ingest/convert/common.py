"""What every part of the mapping shares: attribute key names, the pair type, JSON text and
tolerant dict access. No logic of its own."""

from __future__ import annotations

import json
from typing import Any

from openinference.semconv.trace import SpanAttributes
from opentelemetry.util.types import AttributeValue

Pair = tuple[str, AttributeValue]
# One flattened message: keys relative to `llm.{input,output}_messages.{i}.`.
Message = list[Pair]

SA = SpanAttributes

# Our own keys (OpenInference has no constant for them).
PORTKEY = "portkey"
INGEST_WARNINGS = "portkey.ingest.warnings"
INGEST_TRUNCATED = "portkey.ingest.truncated"
INGEST_MAPPING_VERSION = "portkey.ingest.mapping_version"
INGEST_CONTENT_DROPPED = "portkey.ingest.content_dropped"  # what --drop-content removed
INGEST_REDACTED = "portkey.ingest.redacted"  # how many secrets were masked in this log
EXCEPTION_MESSAGE = "exception.message"
EXCEPTION_TYPE = "exception.type"

# The version of the conversion that produced a span. Bump it (by one) in the same commit as
# any change that makes the same log convert to a different span (an attribute added,
# renamed, dropped or computed differently, a changed name, status or time); never for
# refactors that keep every span identical. Users filter on it to resync what an older
# version wrote (spans are write-once in Phoenix).
MAPPING_VERSION = 3  # 3: image requests billed per image carry their image count

_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)


def to_json(value: Any) -> str:
    return _ENCODER.encode(value)


def get(mapping: Any, key: str) -> Any:
    """`mapping[key]` when `mapping` is a dict that has it, else None."""
    return mapping.get(key) if isinstance(mapping, dict) else None
