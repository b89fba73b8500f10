"""One `LogRecord` -> one backdated OpenTelemetry `ReadableSpan` (and its `convert` JSON form).

Spans are built directly, without a Tracer: no sampler, no id generator, no 128-attribute
limit (reference/phoenix.md, section 9, path A). Everything here is a pure function of the
record and the options, so the same log always gives the same span.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from openinference.semconv.resource import ResourceAttributes
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from ingest import __version__
from ingest.convert import ids
from ingest.convert.attributes import EXCEPTION_MESSAGE, EXCEPTION_TYPE, build_span_facts
from ingest.convert.records import LogRecord

SCOPE = InstrumentationScope("portkey-phoenix-ingest", __version__)
SERVICE = "portkey-gateway"
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class ConversionOptions:
    project: str
    session_key: str | None = "session_id"  # metadata key -> session.id; None: no sessions
    max_messages: int = 200  # per direction; the most recent are kept
    max_value_chars: int = 50_000


def make_resource(project: str) -> Resource:
    """The resource of every span of `project`. Built once per run and shared.

    `Resource(...)`, not `Resource.create(...)`: the latter would add SDK versions and
    whatever OTEL_RESOURCE_ATTRIBUTES holds, so the output would depend on the machine.
    """
    return Resource({ResourceAttributes.PROJECT_NAME: project, SERVICE_NAME: SERVICE})


def _ns(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND * 1000


def to_span(
    record: LogRecord,
    options: ConversionOptions,
    resource: Resource,
    parent_log_id: str | None = None,
) -> ReadableSpan:
    """One log as one span; `parent_log_id` links it under its Portkey parent (trees.py)."""
    facts = build_span_facts(
        record,
        session_key=options.session_key,
        max_messages=options.max_messages,
        max_value_chars=options.max_value_chars,
    )
    context = SpanContext(
        trace_id=ids.trace_id_for(options.project, record.trace_id, record.log_id),
        span_id=ids.span_id_for(options.project, record.log_id),
        is_remote=False,
        trace_flags=_SAMPLED,
    )
    parent = None
    if parent_log_id is not None:
        parent = SpanContext(
            trace_id=context.trace_id,
            span_id=ids.span_id_for(options.project, parent_log_id),
            is_remote=False,
            trace_flags=_SAMPLED,
        )
    start = _ns(record.created_at)
    end = start + round(record.response_time_ms * 1_000_000) if record.response_time_ms else start
    events: tuple[Event, ...] = ()
    if facts.status is StatusCode.ERROR:
        event_attributes = {EXCEPTION_MESSAGE: facts.status_message or ""}
        if facts.error_type:
            event_attributes[EXCEPTION_TYPE] = facts.error_type
        events = (Event("exception", event_attributes, timestamp=end),)
    return ReadableSpan(
        name=facts.name,
        context=context,
        parent=parent,
        resource=resource,
        attributes=facts.attributes,
        events=events,
        kind=SpanKind.CLIENT,
        status=Status(facts.status, facts.status_message),
        start_time=start,
        end_time=end,
        instrumentation_scope=SCOPE,
    )


def _rfc3339(ns: int | None) -> str | None:
    if ns is None:
        return None
    moment = _EPOCH + timedelta(microseconds=ns // 1000)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple | list) else value


def span_to_dict(span: ReadableSpan) -> dict[str, Any]:
    """The documented `convert` output: one JSON object per span (keys are a stable format)."""
    context = span.context
    parent = span.parent
    return {
        "trace_id": ids.trace_hex(context.trace_id) if context else None,
        "span_id": ids.span_hex(context.span_id) if context else None,
        "parent_span_id": ids.span_hex(parent.span_id) if parent else None,
        "name": span.name,
        "start_time": _rfc3339(span.start_time),
        "end_time": _rfc3339(span.end_time),
        "status": {"code": span.status.status_code.name, "message": span.status.description},
        "attributes": {key: _plain(value) for key, value in (span.attributes or {}).items()},
        "resource": {key: _plain(value) for key, value in span.resource.attributes.items()},
    }
