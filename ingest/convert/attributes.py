"""One `LogRecord` -> the name, status and flat OpenInference attributes of its span.

Pure functions. Each concern is a small generator of `(key, value)` pairs; `build_span_facts`
gathers them (provider shapes in `messages`, tokens and cost in `usage`, status in `outcome`,
provider names in `providers`) and then bounds the result (`bounds`: text hygiene, 64-bit
integers, attribute count, span size). Bodies and metadata are cleaned (secrets masked, NULs
removed) and JSON-encoded once, up front: conversion runs at thousands of logs a second.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from operator import attrgetter
from typing import Any
from urllib.parse import urlsplit

from openinference.semconv.trace import (
    EmbeddingAttributes,
    OpenInferenceMimeTypeValues,
    OpenInferenceSpanKindValues,
    ToolAttributes,
)
from opentelemetry.trace import StatusCode
from opentelemetry.util.types import AttributeValue

from ingest.convert import bounds
from ingest.convert.common import (
    INGEST_CONTENT_DROPPED,
    INGEST_MAPPING_VERSION,
    INGEST_REDACTED,
    INGEST_TRUNCATED,
    INGEST_WARNINGS,
    MAPPING_VERSION,
    PORTKEY,
    SA,
    Pair,
    get,
    to_json,
)
from ingest.convert.messages import input_messages, message_list, output_messages
from ingest.convert.providers import provider_attributes
from ingest.convert.records import LogRecord
from ingest.convert.redact import Redactor
from ingest.convert.status import outcome, status_message
from ingest.convert.usage import cost_attributes, image_attributes, token_attributes, whole
from ingest.errors import RecordError

LLM = OpenInferenceSpanKindValues.LLM.value
EMBEDDING = OpenInferenceSpanKindValues.EMBEDDING.value
RERANKER = OpenInferenceSpanKindValues.RERANKER.value
GUARDRAIL = OpenInferenceSpanKindValues.GUARDRAIL.value
UNKNOWN = OpenInferenceSpanKindValues.UNKNOWN.value
JSON_MIME = OpenInferenceMimeTypeValues.JSON.value
TEXT_MIME = OpenInferenceMimeTypeValues.TEXT.value


@dataclass(frozen=True, slots=True)
class SpanFacts:
    """Everything about a span that comes from the record, except ids and times."""

    name: str
    attributes: dict[str, AttributeValue]
    status: StatusCode
    status_message: str | None  # set only for ERROR
    error_type: str | None


@dataclass(frozen=True, slots=True)
class Bodies:
    """The record's request, response and metadata, cleaned once, with their JSON text."""

    request: Any
    response: Any
    metadata: dict[str, Any]
    request_text: str | None  # JSON, or the body itself when it is text
    response_text: str | None
    metadata_text: str | None


@dataclass(frozen=True, slots=True)
class Limits:
    """How much of a log a span may hold (ConversionOptions carries the user's choice)."""

    max_messages: int = 200  # per direction, the most recent; also tools and embeddings
    max_value_chars: int = 50_000  # one string
    max_attributes: int = 2_000
    max_span_bytes: int = 1_000_000  # all attribute text together
    drop_content: bool = False  # no message contents, bodies, texts or templates at all


def build_span_facts(
    record: LogRecord,
    *,
    session_key: str | None = "session_id",
    limits: Limits = Limits(),
    redactor: Redactor | None = None,
) -> SpanFacts:
    """Name, attributes and status of the span for `record`; `RecordError` when the log
    cannot be converted at all (nested too deeply to walk)."""
    try:
        return _build(record, session_key, limits, redactor or Redactor())
    except RecursionError:
        raise RecordError("cannot convert: the log is nested too deeply") from None


def _build(
    record: LogRecord, session_key: str | None, limits: Limits, redactor: Redactor
) -> SpanFacts:
    masked_before = redactor.counts["spans"]
    record = clean_facts(record, redactor)
    bodies = clean_bodies(record, redactor)
    request, response = bodies.request, bodies.response
    kind, operation = endpoint(record, request, response)
    model = answering_model(record, request, response)
    status, message, error_type = outcome(record, response)
    failed = status is StatusCode.ERROR
    dropped: list[str] = []
    if limits.drop_content and message is not None:
        dropped.append("status message")  # a provider's error text may quote the prompt
        message = status_message(record.status_code, None)
    truncated: list[str] = []
    warnings = [redactor.scrub(warning) for warning in record.warnings]  # they quote values
    cap = limits.max_messages

    attributes: dict[str, AttributeValue] = {SA.OPENINFERENCE_SPAN_KIND: kind}
    attributes.update(model_attributes(record, request, model, kind))
    attributes.update(provider_attributes(record.ai_org, model, requested_model(record, request)))
    tokens = dict(token_attributes(record, response, failed))
    attributes.update(tokens)
    if operation == "image_generation":
        attributes.update(image_attributes(record, request, response, failed))
    attributes.update(cost_attributes(record))
    attributes.update(io_attributes(bodies))
    if kind == EMBEDDING:
        attributes.update(embedding_text_attributes(request, cap, truncated))
    else:
        inputs = input_messages(request)
        attributes.update(message_list(SA.LLM_INPUT_MESSAGES, inputs, cap, truncated))
    outputs = output_messages(response)
    attributes.update(message_list(SA.LLM_OUTPUT_MESSAGES, outputs, cap, truncated))
    attributes.update(tool_attributes(request, cap, truncated))
    attributes.update(invocation_parameter_attributes(request, limits.drop_content, dropped))
    attributes.update(finish_reason_attributes(response))
    attributes.update(metadata_attributes(bodies, session_key))
    attributes.update(tag_attributes(record, status))
    attributes.update(prompt_attributes(record, request))
    attributes.update(portkey_attributes(record))

    if limits.drop_content:
        dropped[:0] = bounds.drop_content(attributes)
        attributes[INGEST_CONTENT_DROPPED] = (
            ", ".join(dropped) or "nothing: the log held no content"
        )
    bounds.bound_values(attributes, limits.max_value_chars, truncated)
    bounds.clamp_token_counts(attributes, warnings)
    bounds.drop_wide_integers(attributes, warnings)
    bounds.cap_attribute_count(attributes, limits.max_attributes - 6, truncated)  # 6: ours
    bounds.cap_span_size(attributes, limits.max_span_bytes, truncated)
    attributes[INGEST_MAPPING_VERSION] = MAPPING_VERSION
    if warnings:
        attributes[INGEST_WARNINGS] = bounds.bound_list(warnings, 100, 1_000)
    if truncated:
        attributes[INGEST_TRUNCATED] = bounds.bound_list(truncated, 100, 1_000)
    if masked := redactor.counts["spans"] - masked_before:
        attributes[INGEST_REDACTED] = masked
    if message is not None:
        message = bounds.bound_text(message, limits.max_value_chars)[0]
    if error_type is not None:
        error_type = bounds.bound_text(error_type, 200)[0]
    name = f"{operation} {model}" if model else operation
    name = bounds.bound_text(name, 1_000)[0]
    return SpanFacts(name, attributes, status, message, error_type)


# ---- bodies -------------------------------------------------------------------------------


def clean_bodies(record: LogRecord, redactor: Redactor) -> Bodies:
    """Request, response and metadata with secrets masked and NULs removed, with their
    JSON text. Each is encoded once; most logs hold neither a NUL nor anything that looks
    like a secret, which one scan of the encoded text proves, and then no copy is made."""
    bodies = (record.request, record.response, record.metadata or None)
    texts = [_encode(body) for body in bodies]
    joined = "\n".join(text for text in texts if text is not None)
    if "\\u0000" in joined or "\x00" in joined or redactor.might_contain_secret(joined):
        cleaned = [_clean_body(body, redactor) for body in bodies]
        bodies = tuple(body for body, _ in cleaned)
        texts = [text for _, text in cleaned]
    request, response, metadata = bodies
    return Bodies(request, response, metadata or {}, *texts)


# Free-text fields of the record that reach attributes, the span name or tags.
_TEXT_FIELDS = (
    "log_id", "trace_id", "ai_org", "ai_model", "request_url", "mode", "config", "prompt_slug",
    "cost_currency", "cache_status", "virtual_key", "span_id", "parent_span_id", "span_name",
)  # fmt: skip
_text_fields = attrgetter(*_TEXT_FIELDS)


def clean_facts(record: LogRecord, redactor: Redactor) -> LogRecord:
    """The record with secrets masked in its text fields (a URL may carry `?key=...`).
    Ids are computed from the original record, so they never depend on this."""
    values = _text_fields(record)
    if not redactor.might_contain_secret("\n".join(value for value in values if value)):
        return record
    changes = {}
    for name, value in zip(_TEXT_FIELDS, values, strict=True):
        if value and (masked := redactor.text(value)) != value:
            changes[name] = masked
    return replace(record, **changes)


def _encode(body: Any) -> str | None:
    if body is None or isinstance(body, str):
        return body
    return to_json(body)


def _clean_body(body: Any, redactor: Redactor) -> tuple[Any, str | None]:
    if body is None:
        return None, None
    if isinstance(body, str):  # a body kept as text may still be JSON: cleaned as such
        text = redactor.clean(body)
        return text, text
    cleaned = redactor.clean(body)
    return cleaned, to_json(cleaned)


# ---- kind, model, provider ---------------------------------------------------------------

# First match wins, on the lowercased path of `request_url`.
_ENDPOINTS: tuple[tuple[str, str, str], ...] = (
    ("/prompts/", LLM, "prompt_completion"),  # /prompts/{id}/completions: a saved template
    ("/chat/completions", LLM, "chat"),
    ("/completions", LLM, "text_completion"),
    ("/messages", LLM, "chat"),
    ("/responses", LLM, "responses"),
    (":generatecontent", LLM, "chat"),
    (":streamgeneratecontent", LLM, "chat"),
    ("/converse", LLM, "chat"),  # also /converse-stream
    ("/invoke", LLM, "chat"),  # also /invoke-with-response-stream
    ("/embeddings", EMBEDDING, "embeddings"),
    (":embedcontent", EMBEDDING, "embeddings"),
    (":batchembedcontents", EMBEDDING, "embeddings"),
    ("/images/", LLM, "image_generation"),
    ("/audio/", LLM, "audio"),
    ("/rerank", RERANKER, "rerank"),
    ("/moderations", GUARDRAIL, "moderation"),
)


def endpoint(record: LogRecord, request: Any, response: Any) -> tuple[str, str]:
    """(OpenInference span kind, operation) from the URL path, else from the body shape."""
    if record.request_url:
        path = urlsplit(record.request_url).path.lower()
        for needle, kind, operation in _ENDPOINTS:
            if needle in path:
                return kind, operation
    if isinstance(request, dict):
        if "messages" in request or "contents" in request:
            return LLM, "chat"
        if "prompt" in request:
            return LLM, "text_completion"
        if "input" in request:
            models = (answering_model(record, request, response), requested_model(record, request))
            if any(model and "embed" in model.lower() for model in models):
                return EMBEDDING, "embeddings"
    return UNKNOWN, "request"


def _text_field(body: Any, key: str) -> str | None:
    if isinstance(body, dict):
        value = body.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def answering_model(record: LogRecord, request: Any, response: Any) -> str | None:
    """The model that answered: response `model` (Gemini `modelVersion`), else the request's."""
    return (
        _text_field(response, "model")
        or _text_field(response, "modelVersion")
        or record.ai_model
        or _text_field(request, "model")
    )


def requested_model(record: LogRecord, request: Any) -> str | None:
    return record.ai_model or _text_field(request, "model")


def model_attributes(
    record: LogRecord, request: Any, model: str | None, kind: str
) -> Iterator[Pair]:
    if model:
        yield SA.LLM_MODEL_NAME, model
        if kind == EMBEDDING:
            yield SA.EMBEDDING_MODEL_NAME, model
    if requested := requested_model(record, request):
        yield SA.LLM_REQUEST_MODEL_NAME, requested


# ---- input/output values -----------------------------------------------------------------


def io_attributes(bodies: Bodies) -> Iterator[Pair]:
    if bodies.request_text is not None:
        yield SA.INPUT_VALUE, bodies.request_text
        yield SA.INPUT_MIME_TYPE, TEXT_MIME if isinstance(bodies.request, str) else JSON_MIME
    if bodies.response_text is not None:
        yield SA.OUTPUT_VALUE, bodies.response_text
        yield SA.OUTPUT_MIME_TYPE, TEXT_MIME if isinstance(bodies.response, str) else JSON_MIME


# ---- tools, parameters, finish reason, embeddings ----------------------------------------

# Request keys that are conversation or tools, not parameters.
_NOT_PARAMETERS = frozenset(
    {"messages", "input", "contents", "system", "systemInstruction", "tools", "prompt", "variables"}
)


def _bounded(items: Any, prefix: str, limit: int, truncated: list[str]) -> list[Any]:
    """The first `limit` items of a list-shaped input, noting the cut like messages do."""
    items = items if isinstance(items, list) else []
    if len(items) > limit:
        truncated.append(f"{prefix}: kept {limit} of {len(items)}")
        return items[:limit]
    return items


def tool_attributes(request: Any, limit: int, truncated: list[str]) -> Iterator[Pair]:
    tools = _bounded(get(request, "tools"), SA.LLM_TOOLS, limit, truncated)
    for i, tool in enumerate(tools):
        yield f"{SA.LLM_TOOLS}.{i}.{ToolAttributes.TOOL_JSON_SCHEMA}", to_json(tool)


def invocation_parameter_attributes(
    request: Any, drop_content: bool = False, dropped: list[str] | None = None
) -> Iterator[Pair]:
    if isinstance(request, dict):
        parameters = {k: v for k, v in request.items() if k not in _NOT_PARAMETERS}
        if drop_content:
            kept = bounds.settings_only(parameters)
            if len(kept) < len(parameters) and dropped is not None:
                dropped.append(f"{len(parameters) - len(kept)} invocation parameter(s)")
            parameters = kept
        if parameters:
            yield SA.LLM_INVOCATION_PARAMETERS, to_json(parameters)


def finish_reason_attributes(response: Any) -> Iterator[Pair]:
    if not isinstance(response, dict):
        return
    reason = (
        get(_first(response.get("choices")), "finish_reason")
        or response.get("stop_reason")
        or get(_first(response.get("candidates")), "finishReason")
        or response.get("stopReason")
    )
    if reason is None and (response.get("object") == "response" or _is_list(response, "output")):
        reason = response.get("status")
    if isinstance(reason, str) and reason:
        yield SA.LLM_FINISH_REASON, reason


def _first(items: Any) -> Any:
    return items[0] if isinstance(items, list) and items else None


def _is_list(mapping: dict[str, Any], key: str) -> bool:
    return isinstance(mapping.get(key), list)


def embedding_text_attributes(request: Any, limit: int, truncated: list[str]) -> Iterator[Pair]:
    texts = get(request, "input")
    texts = [texts] if isinstance(texts, str) else texts
    for i, text in enumerate(_bounded(texts, SA.EMBEDDING_EMBEDDINGS, limit, truncated)):
        if isinstance(text, str):
            yield f"{SA.EMBEDDING_EMBEDDINGS}.{i}.{EmbeddingAttributes.EMBEDDING_TEXT}", text


# ---- metadata, tags, prompt, Portkey facts -----------------------------------------------


def _id_text(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return text or None


def metadata_attributes(bodies: Bodies, session_key: str | None) -> Iterator[Pair]:
    if bodies.metadata_text is None:
        return
    yield SA.METADATA, bodies.metadata_text
    if user := _id_text(bodies.metadata.get("_user")):
        yield SA.USER_ID, user
    if session_key and (session := _id_text(bodies.metadata.get(session_key))):
        yield SA.SESSION_ID, session


def tag_attributes(record: LogRecord, status: StatusCode) -> Iterator[Pair]:
    tags = ["portkey"]
    if record.ai_org:
        tags.append(f"provider:{record.ai_org}")
    if record.mode:
        tags.append(f"mode:{record.mode}")
    if record.cache_status:
        tags.append(f"cache:{record.cache_status.lower()}")
    if record.config:
        tags.append(f"config:{record.config}")
    if status is StatusCode.ERROR:
        tags.append("error")
    yield SA.TAG_TAGS, tags


_PROMPT_PATH = re.compile(r"/prompts/([^/?#]+)/completions")


def prompt_attributes(record: LogRecord, request: Any) -> Iterator[Pair]:
    """The saved prompt a `/prompts/{id}/completions` request rendered, and its variables."""
    prompt_id = record.prompt_slug
    match = _PROMPT_PATH.search(urlsplit(record.request_url or "").path)
    if prompt_id is None and match:
        prompt_id = match[1]
    if prompt_id:
        yield SA.PROMPT_VENDOR, "portkey"
        yield SA.PROMPT_ID, prompt_id
    variables = get(request, "variables")
    if isinstance(variables, dict):
        yield SA.LLM_PROMPT_TEMPLATE_VARIABLES, to_json(variables)
    template = get(request, "prompt_template") or get(request, "template")
    if isinstance(template, str) and template:
        yield SA.LLM_PROMPT_TEMPLATE, template
    for key in ("prompt_version", "prompt_version_id", "version"):
        version = get(request, key)
        if isinstance(version, str | int) and not isinstance(version, bool) and str(version):
            yield SA.LLM_PROMPT_TEMPLATE_VERSION, str(version)
            break


# `portkey.{name}` <- record field, in this order, each only when present.
_FACTS: tuple[tuple[str, str], ...] = (
    ("log_id", "log_id"),
    ("trace_id", "trace_id"),
    ("ai_org", "ai_org"),
    ("ai_model", "ai_model"),
    ("request_url", "request_url"),
    ("mode", "mode"),
    ("config", "config"),
    ("prompt_slug", "prompt_slug"),
    ("status_code", "status_code"),
    ("is_success", "is_success"),
    ("response_time_ms", "response_time_ms"),
    ("cost", "cost"),
    ("cost_currency", "cost_currency"),
    ("req_units", "req_units"),
    ("res_units", "res_units"),
    ("total_units", "total_units"),
    ("cache_status", "cache_status"),
    ("retry_success_count", "retry_success_count"),
    ("last_used_option_index", "last_used_option_index"),
    ("virtual_key", "virtual_key"),
    ("span_id", "span_id"),
    ("parent_span_id", "parent_span_id"),
    ("span_name", "span_name"),
)
_FACT_KEYS = tuple(f"{PORTKEY}.{name}" for name, _ in _FACTS)
_fact_values = attrgetter(*(field for _, field in _FACTS))


_UNITS = frozenset(f"{PORTKEY}.{name}" for name in ("req_units", "res_units", "total_units"))


def portkey_attributes(record: LogRecord) -> Iterator[Pair]:
    for key, value in zip(_FACT_KEYS, _fact_values(record), strict=True):
        if value is not None:
            yield key, whole(value) if key in _UNITS else value  # counts as counts: 2048
