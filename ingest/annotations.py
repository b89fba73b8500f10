"""Gateway annotations: what Portkey knows, shown where Phoenix shows judgements.

Phoenix ignores `llm.cost.*` and has no notion of a gateway cache, so attributes alone do not
show billed cost, cache hits, routing or error classes in its UI. Span annotations do: they
are columns and filters in the project view. They are upserts keyed by (span, name,
identifier), so re-runs correct them (unlike spans, which are write-once). Annotations are
written after the spans are verified and read back like spans; a failure to annotate is
counted and reported, and never loses or blocks a span.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from .errors import PhoenixError
from .ids import span_hex
from .phoenix import SpanReader

log = logging.getLogger(__name__)

ANNOTATOR = "portkey-phoenix-ingest"  # the identifier: our upserts never touch others'
BILLED_COST = "portkey billed cost"
CACHE = "portkey cache"
ROUTING = "portkey routing"
OUTCOME = "portkey outcome"
NAMES = (BILLED_COST, CACHE, ROUTING, OUTCOME)


def outcome_label(status_code: Any, is_success: Any) -> str:
    """success, or the class of error a user filters on."""
    if isinstance(status_code, int):
        if status_code < 400:
            return "success"
        if status_code == 429:
            return "rate_limited"
        if status_code in (401, 403):
            return "auth_error"
        if status_code in (408, 504, 524):
            return "timeout"
        return "client_error" if status_code < 500 else "provider_error"
    if is_success is True:
        return "success"
    return "error" if is_success is False else "unknown"


def annotations_for(span: ReadableSpan) -> list[dict[str, Any]]:
    """The gateway annotations of one converted span (a pure function of its attributes)."""
    attrs = span.attributes or {}
    span_id = span_hex(span.context.span_id)  # type: ignore[union-attr]
    found: list[dict[str, Any]] = []

    def add(name: str, label: str | None = None, score: float | None = None,
            explanation: str | None = None) -> None:  # fmt: skip
        found.append({
            "span_id": span_id, "name": name, "annotator_kind": "CODE", "identifier": ANNOTATOR,
            "result": {"label": label, "score": score, "explanation": explanation},
        })  # fmt: skip

    cost = attrs.get("llm.cost.total")
    if isinstance(cost, int | float):
        cents = attrs.get("portkey.cost")
        add(BILLED_COST, score=float(cost), explanation=f"Portkey billed {cents} cents (USD)")
    cache = attrs.get("portkey.cache_status")
    if isinstance(cache, str) and cache:
        add(CACHE, label=cache.lower())
    mode = attrs.get("portkey.mode")
    if isinstance(mode, str) and mode:
        add(ROUTING, label=mode.lower(), explanation=_routing_explanation(attrs))
    status = attrs.get("portkey.status_code")
    label = outcome_label(status, attrs.get("portkey.is_success"))
    if label != "unknown":
        add(OUTCOME, label=label, explanation=f"HTTP {status}" if status is not None else None)
    return found


def _routing_explanation(attrs: Any) -> str | None:
    parts = []
    if (config := attrs.get("portkey.config")) is not None:
        parts.append(f"config {config}")
    if (index := attrs.get("portkey.last_used_option_index")) is not None:
        parts.append(f"served by target {index}")
    if retries := attrs.get("portkey.retry_success_count"):
        parts.append(f"{retries} retries")
    if provider := attrs.get("llm.provider"):
        parts.append(f"provider {provider}")
    return ", ".join(parts) or None


def _key(annotation: dict[str, Any]) -> tuple[Any, ...]:
    result = annotation.get("result") or {}
    score = result.get("score")
    return (
        annotation["span_id"],
        annotation["name"],
        result.get("label"),
        None if score is None else round(float(score), 12),
    )


class SpanAnnotator:
    """Upserts the gateway annotations of verified spans and reads them back."""

    def __init__(self, reader: SpanReader) -> None:
        self.reader = reader
        self.written = 0
        self.failed = 0

    def annotate(self, spans: Sequence[ReadableSpan]) -> bool:
        """Write and verify; True when every annotation is stored as sent."""
        wanted = [item for span in spans for item in annotations_for(span)]
        if not wanted:
            return True
        try:
            client = self.reader.client
            client.spans.log_span_annotations(span_annotations=wanted, sync=True)
            stored = self._read_back({item["span_id"] for item in wanted})
        except Exception as exc:  # annotations are extra: never let them lose a span
            self.failed += len(wanted)
            log.warning("could not annotate %d spans (%s); the spans are delivered", len(spans),
                        _reason(exc))  # fmt: skip
            return False
        missing = {_key(item) for item in wanted} - {_key(item) for item in stored}
        if missing:
            self.failed += len(missing)
            log.warning("%d annotations were not stored as sent", len(missing))
            return False
        self.written += len(wanted)
        return True

    def _read_back(self, span_ids: Iterable[str]) -> list[dict[str, Any]]:
        ids = sorted(span_ids)
        found: list[dict[str, Any]] = []
        for start in range(0, len(ids), 100):
            found.extend(
                self.reader.client.spans.get_span_annotations(
                    span_ids=ids[start : start + 100],
                    project_identifier=self.reader.project_path,
                    include_annotation_names=list(NAMES),
                    limit=1000,
                    timeout=int(self.reader.settings.request_timeout_s),
                )
            )
        return [dict(item) for item in found if item.get("identifier") == ANNOTATOR]


def _reason(exc: Exception) -> str:
    if isinstance(exc, PhoenixError):
        return str(exc)
    response = getattr(exc, "response", None)
    if response is not None:
        return f"HTTP {response.status_code}"
    return type(exc).__name__
