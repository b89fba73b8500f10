"""One `LogRecord` -> one backdated OpenTelemetry `ReadableSpan` (and its `convert` JSON form).

Spans are built directly, without a Tracer: no sampler, no id generator, no 128-attribute
limit (docs/design.md, "Building spans"). Everything here is a pure function of the
record and the options, so the same log always gives the same span.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from openinference.semconv.resource import ResourceAttributes
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from ingest import __version__
from ingest.convert import ids
from ingest.convert.attributes import Limits, build_span_facts
from ingest.convert.common import EXCEPTION_MESSAGE, EXCEPTION_TYPE
from ingest.convert.records import EPOCH, MAX_NS, LogRecord, start_ns
from ingest.convert.redact import Redactor
from ingest.errors import RecordError

# The OpenTelemetry SDK (~25 ms, psutil included) loads with the first span, not with the CLI.
if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

SERVICE = "portkey-gateway"
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)


@dataclass(frozen=True, slots=True)
class ConversionOptions:
    project: str  # the project, or with `project_from` the one for logs without a usable value
    project_from: str | None = None  # `metadata.<key>` or `workspace`: routes logs (ids.route)
    route_only: frozenset[str] = frozenset()  # with project_from: the only projects routed to
    sample: float = 1.0  # share of traces kept (ids.sampled_in)
    session_key: str | None = "session_id"  # metadata key -> session.id; None: no sessions
    max_messages: int = 200  # per direction; the most recent are kept
    max_value_chars: int = 50_000
    max_attributes: int = 2_000  # per span; list items (oldest messages first) give way
    max_span_bytes: int = 1_000_000  # attribute text per span; the longest values are cut
    max_line_bytes: int = 32 << 20  # one export line; longer ones are quarantined unread
    redact_keys: tuple[str, ...] = ()  # the user's key-name rules (shell-style patterns)
    redact_patterns: tuple[str, ...] = ()  # the user's value rules (regular expressions)
    drop_content: bool = False  # spans without what was said (--drop-content)
    quarantine_raw: bool = False  # also keep a rejected line unmasked in the quarantine file
    # Compiled once from the rules above; counts what it masked over the run.
    redactor: Redactor = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "redactor", Redactor(self.redact_keys, self.redact_patterns))

    @property
    def destination(self) -> str:
        """Where this run's logs go, as the state file keys it: the project, and how logs
        are routed and sampled (another routing or rate is another destination)."""
        how = [f"project from {self.project_from}"] if self.project_from else []
        how += [f"only {', '.join(sorted(self.route_only))}"] if self.route_only else []
        how += [f"sample {self.sample:g}"] if self.sample < 1 else []
        return f"{self.project} [{', '.join(how)}]" if how else self.project

    def route(self, record: LogRecord) -> ids.Route:
        """The project `record` goes to, by this run's routing (`ids.route`)."""
        return ids.route(record, self.project_from, self.project, self.route_only)

    @property
    def limits(self) -> Limits:
        return Limits(
            self.max_messages,
            self.max_value_chars,
            self.max_attributes,
            self.max_span_bytes,
            self.drop_content,
        )


@lru_cache(maxsize=1024)  # one per project, shared by its spans; routed runs have several
def make_resource(project: str) -> Resource:
    """The resource of every span of `project`. Built once and shared.

    `Resource(...)`, not `Resource.create(...)`: the latter would add SDK versions and
    whatever OTEL_RESOURCE_ATTRIBUTES holds, so the output would depend on the machine.
    """
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource

    return Resource({ResourceAttributes.PROJECT_NAME: project, SERVICE_NAME: SERVICE})


@lru_cache(maxsize=1)
def scope() -> InstrumentationScope:
    """The instrumentation scope of every span: this tool and its version."""
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    return InstrumentationScope("portkey-phoenix-ingest", __version__)


def project_of(resource: Resource) -> str:
    """The Phoenix project a resource (so each of its spans) goes to; '' when it names none."""
    return str(resource.attributes.get(ResourceAttributes.PROJECT_NAME, ""))


def request_order(spans: list[ReadableSpan]) -> list[ReadableSpan]:
    """The order Phoenix receives them in: the OTLP encoder groups spans by resource (a
    project), then by scope, each group where its first span was."""
    groups: dict[Any, dict[Any, list[ReadableSpan]]] = {}
    for span in spans:
        groups.setdefault(span.resource, {}).setdefault(span.instrumentation_scope, []).append(span)
    return [span for scopes in groups.values() for group in scopes.values() for span in group]


def start_window(spans: Iterable[ReadableSpan]) -> tuple[datetime, datetime] | None:
    """[earliest, latest] start time of these spans, to bound a read by time (Phoenix's
    read by id alone scans the whole project, so it would slow down as a backfill grows)."""
    starts = [span.start_time for span in spans if span.start_time is not None]
    if not starts:
        return None
    return (
        datetime.fromtimestamp(min(starts) / 1e9, tz=UTC),
        datetime.fromtimestamp(max(starts) / 1e9, tz=UTC),
    )


def to_span(
    record: LogRecord,
    options: ConversionOptions,
    resource: Resource,
    parent_log_id: str | None = None,
) -> ReadableSpan:
    """One log as one span in the project of `resource` (its ids are that project's);
    `parent_log_id` links it under its Portkey parent (ids.py)."""
    from opentelemetry.sdk.trace import Event, ReadableSpan

    project = project_of(resource)
    start = start_ns(record.created_at)
    if not 0 <= start <= MAX_NS:  # parse_record refuses these; a hand-built record may not
        raise RecordError(f"no usable timestamp: {record.created_at} cannot be carried by OTLP")
    facts = build_span_facts(
        record,
        session_key=options.session_key,
        limits=options.limits,
        redactor=options.redactor,
    )
    context = SpanContext(
        trace_id=ids.trace_id_for(project, record.trace_id, record.log_id),
        span_id=ids.span_id_for(project, record.log_id),
        is_remote=False,
        trace_flags=_SAMPLED,
    )
    parent = None
    if parent_log_id is not None:
        parent = SpanContext(
            trace_id=context.trace_id,
            span_id=ids.span_id_for(project, parent_log_id),
            is_remote=False,
            trace_flags=_SAMPLED,
        )
    end = start + round(record.response_time_ms * 1_000_000) if record.response_time_ms else start
    end = end if end <= MAX_NS else start
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
        instrumentation_scope=scope(),
    )


def _rfc3339(ns: int | None) -> str | None:
    if ns is None:
        return None
    moment = EPOCH + timedelta(microseconds=ns // 1000)
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
