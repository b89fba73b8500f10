"""One `LogRecord` -> the flat OpenInference attribute dict of its span (notes/MAPPING.md).

Pure functions. Each concern is a small generator of `(key, value)` pairs; `build_span_facts`
gathers them, caps the message lists and bounds every string (NUL characters removed,
over-long values cut with a visible marker). Bodies and metadata are cleaned (secrets masked,
NULs removed) and JSON-encoded once, up front: conversion runs at thousands of logs a second.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from operator import attrgetter
from typing import Any
from urllib.parse import urlsplit

from openinference.semconv.trace import (
    EmbeddingAttributes,
    ImageAttributes,
    MessageAttributes,
    MessageContentAttributes,
    OpenInferenceLLMProviderValues,
    OpenInferenceLLMSystemValues,
    OpenInferenceMimeTypeValues,
    OpenInferenceSpanKindValues,
    SpanAttributes,
    ToolAttributes,
    ToolCallAttributes,
)
from opentelemetry.trace import StatusCode
from opentelemetry.util.types import AttributeValue

from ingest.convert.records import LogRecord
from ingest.convert.redact import clean, might_contain_secret, redact_text

Pair = tuple[str, AttributeValue]
# One flattened message: keys relative to `llm.{input,output}_messages.{i}.`.
Message = list[Pair]

SA = SpanAttributes
LLM = OpenInferenceSpanKindValues.LLM.value
EMBEDDING = OpenInferenceSpanKindValues.EMBEDDING.value
RERANKER = OpenInferenceSpanKindValues.RERANKER.value
GUARDRAIL = OpenInferenceSpanKindValues.GUARDRAIL.value
UNKNOWN = OpenInferenceSpanKindValues.UNKNOWN.value
JSON_MIME = OpenInferenceMimeTypeValues.JSON.value
TEXT_MIME = OpenInferenceMimeTypeValues.TEXT.value

# Our own keys (OpenInference has no constant for them).
PORTKEY = "portkey"
INGEST_WARNINGS = "portkey.ingest.warnings"
INGEST_TRUNCATED = "portkey.ingest.truncated"
EXCEPTION_MESSAGE = "exception.message"
EXCEPTION_TYPE = "exception.type"


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


def build_span_facts(
    record: LogRecord,
    *,
    session_key: str | None = "session_id",
    max_messages: int = 200,
    max_value_chars: int = 50_000,
) -> SpanFacts:
    """Name, attributes and status of the span for `record`."""
    record = clean_facts(record)
    bodies = clean_bodies(record)
    request, response = bodies.request, bodies.response
    kind, operation = endpoint(record, request, response)
    model = answering_model(record, request, response)
    status, message, error_type = outcome(record, response)
    truncated: list[str] = []

    attributes: dict[str, AttributeValue] = {SA.OPENINFERENCE_SPAN_KIND: kind}
    attributes.update(model_attributes(record, request, model, kind))
    attributes.update(provider_attributes(record.ai_org, model, requested_model(record, request)))
    attributes.update(token_attributes(record, response))
    attributes.update(cost_attributes(record))
    attributes.update(io_attributes(bodies))
    if kind == EMBEDDING:
        attributes.update(embedding_text_attributes(request))
    else:
        inputs = input_messages(request)
        attributes.update(message_list(SA.LLM_INPUT_MESSAGES, inputs, max_messages, truncated))
    outputs = output_messages(response)
    attributes.update(message_list(SA.LLM_OUTPUT_MESSAGES, outputs, max_messages, truncated))
    attributes.update(tool_attributes(request))
    attributes.update(invocation_parameter_attributes(request))
    attributes.update(finish_reason_attributes(response))
    attributes.update(metadata_attributes(bodies, session_key))
    attributes.update(tag_attributes(record, status))
    attributes.update(prompt_attributes(record))
    attributes.update(portkey_attributes(record))

    bound_values(attributes, max_value_chars, truncated)
    if truncated:
        attributes[INGEST_TRUNCATED] = truncated
    if message is not None:
        message = bound_text(message, max_value_chars)[0]
    name = f"{operation} {model}" if model else operation
    name = bound_text(name, max_value_chars)[0]
    return SpanFacts(name, attributes, status, message, error_type)


# ---- bodies -------------------------------------------------------------------------------


def clean_bodies(record: LogRecord) -> Bodies:
    """Request, response and metadata with secrets masked and NULs removed, with their
    JSON text. Each is encoded once; most logs hold neither a NUL nor anything that looks
    like a secret, which one scan of the encoded text proves, and then no copy is made."""
    bodies = (record.request, record.response, record.metadata or None)
    texts = [_encode(body) for body in bodies]
    joined = "\n".join(text for text in texts if text is not None)
    if "\\u0000" in joined or "\x00" in joined or might_contain_secret(joined):
        cleaned = [_clean_body(body) for body in bodies]
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


def clean_facts(record: LogRecord) -> LogRecord:
    """The record with secrets masked in its text fields (a URL may carry `?key=...`).
    Ids are computed from the original record, so they never depend on this."""
    values = _text_fields(record)
    if not might_contain_secret("\n".join(value for value in values if value)):
        return record
    changes = {}
    for name, value in zip(_TEXT_FIELDS, values, strict=True):
        if value and (masked := redact_text(value)) != value:
            changes[name] = masked
    return replace(record, **changes)


def _encode(body: Any) -> str | None:
    if body is None or isinstance(body, str):
        return body
    return _json(body)


def _clean_body(body: Any) -> tuple[Any, str | None]:
    if body is None:
        return None, None
    if isinstance(body, str):
        text = redact_text(body.replace("\x00", ""))
        return text, text
    cleaned = clean(body)
    return cleaned, _json(cleaned)


_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)


def _json(value: Any) -> str:
    return _ENCODER.encode(value)


# ---- kind, model, provider ---------------------------------------------------------------

# First match wins, on the lowercased path of `request_url`.
_ENDPOINTS: tuple[tuple[str, str, str], ...] = (
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


_P = OpenInferenceLLMProviderValues
_S = OpenInferenceLLMSystemValues
# Portkey `ai_org` (lowercased) -> (llm.provider, llm.system). Bedrock's system depends on
# the model and is decided in `provider_attributes`.
_PROVIDERS: dict[str, tuple[str, str | None]] = {
    "openai": (_P.OPENAI.value, _S.OPENAI.value),
    "azure-openai": (_P.AZURE.value, _S.OPENAI.value),
    "azure-ai": (_P.AZURE.value, _S.OPENAI.value),
    "azure": (_P.AZURE.value, _S.OPENAI.value),
    "anthropic": (_P.ANTHROPIC.value, _S.ANTHROPIC.value),
    "bedrock": (_P.AWS.value, None),
    "aws-bedrock": (_P.AWS.value, None),
    "vertex-ai": (_P.GOOGLE.value, _S.VERTEXAI.value),
    "google": (_P.GOOGLE.value, _S.VERTEXAI.value),
    "gemini": (_P.GOOGLE.value, _S.VERTEXAI.value),
    "palm": (_P.GOOGLE.value, _S.VERTEXAI.value),
    "cohere": (_P.COHERE.value, _S.COHERE.value),
    "mistral-ai": (_P.MISTRALAI.value, _S.MISTRALAI.value),
    "mistralai": (_P.MISTRALAI.value, _S.MISTRALAI.value),
    "x-ai": (_P.XAI.value, None),
    "xai": (_P.XAI.value, None),
    "deepseek": (_P.DEEPSEEK.value, None),
    "groq": (_P.GROQ.value, None),
    "cerebras": (_P.CEREBRAS.value, None),
    "ollama": (_P.OLLAMA.value, None),
    "moonshot": (_P.MOONSHOT.value, None),
    "perplexity-ai": (_P.PERPLEXITY.value, None),
    "fireworks-ai": (_P.FIREWORKS.value, None),
    "together-ai": (_P.TOGETHER.value, None),
}
_BEDROCK = frozenset({"bedrock", "aws-bedrock"})


def provider_attributes(
    ai_org: str | None, model: str | None, requested: str | None = None
) -> Iterator[Pair]:
    if not ai_org:
        return
    org = ai_org.strip()
    provider, system = _PROVIDERS.get(org.lower(), (org, None))
    if org.lower() in _BEDROCK:
        models = f"{model or ''} {requested or ''}".lower()
        if "anthropic" in models or "claude" in models:
            system = _S.ANTHROPIC.value
    yield SA.LLM_PROVIDER, provider
    if system:
        yield SA.LLM_SYSTEM, system


# ---- tokens and cost ---------------------------------------------------------------------

_CACHE_READ = SA.LLM_TOKEN_COUNT_PROMPT_DETAILS_CACHE_READ
_CACHE_WRITE = SA.LLM_TOKEN_COUNT_PROMPT_DETAILS_CACHE_WRITE
_PROMPT_AUDIO = SA.LLM_TOKEN_COUNT_PROMPT_DETAILS_AUDIO
_REASONING = SA.LLM_TOKEN_COUNT_COMPLETION_DETAILS_REASONING
_COMPLETION_AUDIO = SA.LLM_TOKEN_COUNT_COMPLETION_DETAILS_AUDIO


@dataclass(slots=True)
class Usage:
    """Token counts read from a response body. Cache and reasoning counts are subsets."""

    prompt: int | None = None
    completion: int | None = None
    total: int | None = None  # as the body states it
    details: tuple[tuple[str, int | None], ...] = ()


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return round(value) if value >= 0 else None


def _get(mapping: Any, key: str) -> Any:
    return mapping.get(key) if isinstance(mapping, dict) else None


def _add(*counts: int | None) -> int | None:
    known = [count for count in counts if count is not None]
    return sum(known) if known else None


def body_usage(response: Any) -> Usage | None:
    """The usage a response body states, by provider shape; None when it states none."""
    if not isinstance(response, dict):
        return None
    gemini = response.get("usageMetadata")
    if isinstance(gemini, dict):
        thoughts = _count(gemini.get("thoughtsTokenCount"))
        return Usage(
            prompt=_count(gemini.get("promptTokenCount")),
            completion=_add(_count(gemini.get("candidatesTokenCount")), thoughts),
            total=_count(gemini.get("totalTokenCount")),
            details=(
                (_CACHE_READ, _count(gemini.get("cachedContentTokenCount"))),
                (_REASONING, thoughts),
            ),
        )
    usage = response.get("usage")
    if not isinstance(usage, dict):
        return None
    if "inputTokens" in usage or "outputTokens" in usage:  # Bedrock Converse
        read = _count(usage.get("cacheReadInputTokens"))
        write = _count(usage.get("cacheWriteInputTokens"))
        prompt = _count(usage.get("inputTokens"))
        return Usage(
            prompt=None if prompt is None else prompt + (read or 0) + (write or 0),
            completion=_count(usage.get("outputTokens")),
            total=_count(usage.get("totalTokens")),
            details=((_CACHE_READ, read), (_CACHE_WRITE, write)),
        )
    if (
        "cache_read_input_tokens" in usage
        or "cache_creation_input_tokens" in usage
        or response.get("type") == "message"
    ):  # Anthropic, native or Portkey's OpenAI-shaped transform: input excludes the cache
        read = _count(usage.get("cache_read_input_tokens"))
        write = _count(usage.get("cache_creation_input_tokens"))
        base = _count(usage.get("input_tokens"))
        if base is None:
            base = _count(usage.get("prompt_tokens"))
        completion = _count(usage.get("output_tokens"))
        if completion is None:
            completion = _count(usage.get("completion_tokens"))
        return Usage(
            prompt=None if base is None else base + (read or 0) + (write or 0),
            completion=completion,
            total=_count(usage.get("total_tokens")),
            details=((_CACHE_READ, read), (_CACHE_WRITE, write)),
        )
    if "input_tokens" in usage or "output_tokens" in usage:  # OpenAI Responses API
        return Usage(
            prompt=_count(usage.get("input_tokens")),
            completion=_count(usage.get("output_tokens")),
            total=_count(usage.get("total_tokens")),
            details=(
                (_CACHE_READ, _count(_get(usage.get("input_tokens_details"), "cached_tokens"))),
                (_REASONING, _count(_get(usage.get("output_tokens_details"), "reasoning_tokens"))),
            ),
        )
    if "prompt_tokens" in usage or "completion_tokens" in usage or "total_tokens" in usage:
        prompt_details = usage.get("prompt_tokens_details")
        completion_details = usage.get("completion_tokens_details")
        return Usage(  # OpenAI chat/completions and embeddings (no completion count)
            prompt=_count(usage.get("prompt_tokens")),
            completion=_count(usage.get("completion_tokens")),
            total=_count(usage.get("total_tokens")),
            details=(
                (_CACHE_READ, _count(_get(prompt_details, "cached_tokens"))),
                (_PROMPT_AUDIO, _count(_get(prompt_details, "audio_tokens"))),
                (_REASONING, _count(_get(completion_details, "reasoning_tokens"))),
                (_COMPLETION_AUDIO, _count(_get(completion_details, "audio_tokens"))),
            ),
        )
    return None


def token_attributes(record: LogRecord, response: Any) -> Iterator[Pair]:
    usage = body_usage(response)
    if usage is None:  # Portkey's units stand in only when the body states nothing
        usage = Usage(prompt=_count(record.req_units), completion=_count(record.res_units))
    if usage.prompt is not None:
        yield SA.LLM_TOKEN_COUNT_PROMPT, usage.prompt
    if usage.completion is not None:
        yield SA.LLM_TOKEN_COUNT_COMPLETION, usage.completion
    if usage.prompt is not None and usage.completion is not None:
        total: int | None = usage.prompt + usage.completion
    else:
        total = _count(record.total_units)
        if total is None:
            total = usage.total
    if total is not None:
        yield SA.LLM_TOKEN_COUNT_TOTAL, total
    for key, count in usage.details:
        if count is not None:
            yield key, count


def cost_attributes(record: LogRecord) -> Iterator[Pair]:
    if record.cost is None:
        return
    if record.cost_currency is None or record.cost_currency.upper() == "USD":
        yield SA.LLM_COST_TOTAL, record.cost / 100  # Portkey reports cents


# ---- status ------------------------------------------------------------------------------


def outcome(record: LogRecord, response: Any) -> tuple[StatusCode, str | None, str | None]:
    """(status, message, error type): ERROR when Portkey says it failed or the HTTP code does."""
    code = record.status_code
    if record.is_success is False or (code is not None and code >= 400):
        message = error_message(response)
        if message is None:
            message = f"HTTP {code}" if code is not None else "request failed"
        return StatusCode.ERROR, message, error_type(response)
    if record.is_success or (code is not None and 200 <= code < 400):
        return StatusCode.OK, None, None
    return StatusCode.UNSET, None, None


def _error_body(response: Any) -> dict[str, Any] | None:
    if isinstance(response, list):  # Gemini streaming errors come as a one-item list
        response = next((item for item in response if isinstance(item, dict)), None)
    return response if isinstance(response, dict) else None


def error_message(response: Any) -> str | None:
    """The provider's error message: `error.message`, `error` (a string), `message`."""
    body = _error_body(response)
    if body is None:
        return None
    error = body.get("error")
    candidates = (_get(error, "message"), error, body.get("message"))
    for candidate in candidates:
        if isinstance(candidate, str) and candidate.strip():
            return candidate.strip()
    return None


def error_type(response: Any) -> str | None:
    error = _get(_error_body(response), "error")
    for key in ("type", "code", "status"):
        value = _get(error, key)
        if value is not None and not isinstance(value, dict | list) and str(value).strip():
            return str(value).strip()
    return None


# ---- input/output values -----------------------------------------------------------------


def io_attributes(bodies: Bodies) -> Iterator[Pair]:
    if bodies.request_text is not None:
        yield SA.INPUT_VALUE, bodies.request_text
        yield SA.INPUT_MIME_TYPE, TEXT_MIME if isinstance(bodies.request, str) else JSON_MIME
    if bodies.response_text is not None:
        yield SA.OUTPUT_VALUE, bodies.response_text
        yield SA.OUTPUT_MIME_TYPE, TEXT_MIME if isinstance(bodies.response, str) else JSON_MIME


# ---- messages ----------------------------------------------------------------------------

_M = MessageAttributes
_MC = MessageContentAttributes
_TC = ToolCallAttributes
_IMAGE_URL_KEY = f"{_MC.MESSAGE_CONTENT_IMAGE}.{ImageAttributes.IMAGE_URL}"
_TEXT_TYPES = frozenset({"text", "input_text", "output_text"})


@dataclass(slots=True)
class _Content:
    """What a list of content blocks (any provider) holds."""

    parts: list[tuple[str, str]]  # ("text" | "image", text or url)
    tool_calls: list[tuple[Any, Any, Any]]  # (id, name, arguments JSON)
    tool_call_id: str | None = None
    name: str | None = None


def _elided(mime: Any, data: Any) -> str:
    """Inline image data is replaced by its size: it is noise in a trace and can be huge."""
    size = len(data) if isinstance(data, str) else 0
    return f"data:{mime or 'application/octet-stream'};base64,…[{size} bytes omitted]"


def _image_url(url: str) -> str:
    if url.startswith("data:"):
        head, sep, data = url.partition(";base64,")
        if sep:
            return _elided(head[5:], data)
    return url


def _arguments(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else _json(value)


def _read_blocks(blocks: Iterable[Any], content: _Content) -> None:
    for block in blocks:
        if isinstance(block, str):
            content.parts.append(("text", block))
            continue
        if not isinstance(block, dict) or block.get("thought") is True:  # Gemini thoughts
            continue
        kind = block.get("type")
        kind = kind if isinstance(kind, str) else None
        if kind in _TEXT_TYPES or (kind is None and "text" in block):
            if isinstance(text := block.get("text"), str):
                content.parts.append(("text", text))
        elif kind in ("image_url", "input_image"):  # OpenAI chat / Responses
            url = block.get("image_url")
            url = _get(url, "url") if isinstance(url, dict) else url
            if isinstance(url, str):
                content.parts.append(("image", _image_url(url)))
        elif kind == "image":  # Anthropic
            source = block.get("source")
            if _get(source, "type") == "base64":
                image = _elided(source.get("media_type"), source.get("data"))
                content.parts.append(("image", image))
            elif isinstance(url := _get(source, "url"), str):
                content.parts.append(("image", _image_url(url)))
        elif kind is None and isinstance(image := block.get("image"), dict):  # Bedrock
            data = _get(image.get("source"), "bytes")
            mime = f"image/{image['format']}" if image.get("format") else None
            content.parts.append(("image", _elided(mime, data)))
        elif kind is None and isinstance(inline := block.get("inlineData"), dict):  # Gemini
            if str(inline.get("mimeType", "")).startswith("image/"):
                content.parts.append(("image", _elided(inline["mimeType"], inline.get("data"))))
        elif kind is None and isinstance(file := block.get("fileData"), dict):  # Gemini
            if str(file.get("mimeType", "")).startswith("image/") and file.get("fileUri"):
                content.parts.append(("image", str(file["fileUri"])))
        elif kind == "tool_use":  # Anthropic
            call = (block.get("id"), block.get("name"), _arguments(block.get("input")))
            content.tool_calls.append(call)
        elif kind is None and isinstance(use := block.get("toolUse"), dict):  # Bedrock
            call = (use.get("toolUseId"), use.get("name"), _arguments(use.get("input")))
            content.tool_calls.append(call)
        elif kind is None and isinstance(call := block.get("functionCall"), dict):  # Gemini
            content.tool_calls.append(
                (call.get("id"), call.get("name"), _arguments(call.get("args")))
            )
        elif kind == "tool_result":  # Anthropic
            content.tool_call_id = content.tool_call_id or block.get("tool_use_id")
            _read_result(block.get("content"), content)
        elif kind is None and isinstance(result := block.get("toolResult"), dict):  # Bedrock
            content.tool_call_id = content.tool_call_id or result.get("toolUseId")
            _read_result(result.get("content"), content)
        elif kind is None and isinstance(result := block.get("functionResponse"), dict):
            content.tool_call_id = content.tool_call_id or result.get("id")  # Gemini
            content.name = content.name or result.get("name")
            _read_result(result.get("response"), content)
        # Anything else (thinking, audio, documents...) stays in input.value/output.value.


def _read_result(result: Any, content: _Content) -> None:
    if isinstance(result, str):
        content.parts.append(("text", result))
    elif isinstance(result, list):
        for item in result:
            if isinstance(item, dict) and "json" in item and "text" not in item:  # Bedrock
                content.parts.append(("text", _json(item["json"])))
            else:
                _read_blocks((item,), content)
    elif result is not None:
        content.parts.append(("text", _json(result)))


def _message(
    role: Any,
    content: Any,
    *,
    tool_calls: Iterable[tuple[Any, Any, Any]] = (),
    tool_call_id: Any = None,
    name: Any = None,
) -> Message:
    """Flatten one message. `content`: a string, or a list of blocks of any provider."""
    out: Message = []
    calls = list(tool_calls)
    if isinstance(role, str) and role:
        out.append((_M.MESSAGE_ROLE, role))
    if isinstance(content, str):
        out.append((_M.MESSAGE_CONTENT, content))
    elif isinstance(content, list):
        blocks = _Content([], [])
        _read_blocks(content, blocks)
        for j, (part_type, value) in enumerate(blocks.parts):
            prefix = f"{_M.MESSAGE_CONTENTS}.{j}."
            out.append((prefix + _MC.MESSAGE_CONTENT_TYPE, part_type))
            key = _MC.MESSAGE_CONTENT_TEXT if part_type == "text" else _IMAGE_URL_KEY
            out.append((prefix + key, value))
        calls.extend(blocks.tool_calls)
        tool_call_id = tool_call_id or blocks.tool_call_id
        name = name or blocks.name
    for k, (call_id, call_name, arguments) in enumerate(calls):
        prefix = f"{_M.MESSAGE_TOOL_CALLS}.{k}."
        if call_id:
            out.append((prefix + _TC.TOOL_CALL_ID, str(call_id)))
        if call_name:
            out.append((prefix + _TC.TOOL_CALL_FUNCTION_NAME, str(call_name)))
        if arguments is not None:
            out.append((prefix + _TC.TOOL_CALL_FUNCTION_ARGUMENTS_JSON, arguments))
    if tool_call_id:
        out.append((_M.MESSAGE_TOOL_CALL_ID, str(tool_call_id)))
    if isinstance(name, str) and name:
        out.append((_M.MESSAGE_NAME, name))
    return out


def _openai_tool_calls(calls: Any) -> Iterator[tuple[Any, Any, Any]]:
    for call in calls if isinstance(calls, list) else ():
        function = _get(call, "function")
        if isinstance(function, dict):
            yield call.get("id"), function.get("name"), _arguments(function.get("arguments"))


def _chat_message(message: Any, default_role: str | None = None) -> Message | None:
    """An OpenAI/Anthropic/Bedrock `{role, content, ...}` message."""
    if not isinstance(message, dict):
        return None
    out = _message(
        message.get("role") or default_role,
        message.get("content"),
        tool_calls=_openai_tool_calls(message.get("tool_calls")),
        tool_call_id=message.get("tool_call_id"),
        name=message.get("name"),
    )
    function_call = message.get("function_call")  # OpenAI's legacy functions API
    if isinstance(function_call, dict):
        if function_call.get("name"):
            out.append((_M.MESSAGE_FUNCTION_CALL_NAME, str(function_call["name"])))
        if (arguments := _arguments(function_call.get("arguments"))) is not None:
            out.append((_M.MESSAGE_FUNCTION_CALL_ARGUMENTS_JSON, arguments))
    return out


def _gemini_message(content: Any, default_role: str) -> Message | None:
    if isinstance(content, str):
        return _message(default_role, content)
    if not isinstance(content, dict):
        return None
    role = content.get("role") or default_role
    return _message("assistant" if role == "model" else role, content.get("parts"))


def _responses_item(item: Any, default_role: str) -> Message | None:
    """One item of a Responses API `input` or `output` list."""
    if isinstance(item, str):
        return _message(default_role, item)
    if not isinstance(item, dict):
        return None
    kind = item.get("type")
    if kind == "function_call":
        call = (item.get("call_id") or item.get("id"), item.get("name"), item.get("arguments"))
        return _message("assistant", None, tool_calls=[(call[0], call[1], _arguments(call[2]))])
    if kind == "function_call_output":
        output = item.get("output")
        if not isinstance(output, str | list):
            output = _arguments(output)
        return _message("tool", output, tool_call_id=item.get("call_id"))
    if kind in (None, "message") and ("role" in item or "content" in item):
        return _message(item.get("role") or default_role, item.get("content"))
    return None  # reasoning, web search calls, ...: kept in the JSON values only


def input_messages(request: Any) -> list[Message]:
    """The request's conversation, in order, as flattened messages."""
    if not isinstance(request, dict):
        return []
    found: list[Message | None] = []
    if "contents" in request:  # Gemini
        system = request.get("systemInstruction") or request.get("system_instruction")
        if system:
            parts = system.get("parts") if isinstance(system, dict) else system
            found.append(_message("system", parts))
        contents = request["contents"]
        for content in contents if isinstance(contents, list) else [contents]:
            found.append(_gemini_message(content, "user"))
    elif isinstance(messages := request.get("messages"), list):
        system = request.get("system")  # Anthropic and Bedrock: outside the list
        if isinstance(system, str | list) and system:
            found.append(_message("system", system))
        found.extend(_chat_message(message) for message in messages)
    elif "input" in request:  # Responses API
        items = request["input"]
        for item in items if isinstance(items, list) else [items]:
            found.append(_responses_item(item, "user"))
    return [message for message in found if message]


def output_messages(response: Any) -> list[Message]:
    """The answer(s) in a response body, as flattened messages."""
    if not isinstance(response, dict):
        return []
    found: list[Message | None] = []
    output = response.get("output")
    if isinstance(choices := response.get("choices"), list):  # OpenAI
        for choice in choices:
            if isinstance(message := _get(choice, "message"), dict):
                found.append(_chat_message(message, "assistant"))
            elif isinstance(text := _get(choice, "text"), str):
                found.append(_message("assistant", text))
    elif isinstance(candidates := response.get("candidates"), list):  # Gemini
        found.extend(_gemini_message(_get(c, "content"), "assistant") for c in candidates)
    elif isinstance(output, dict):  # Bedrock Converse
        found.append(_chat_message(output.get("message"), "assistant"))
    elif isinstance(output, list):  # Responses API
        found.extend(_responses_item(item, "assistant") for item in output)
    elif isinstance(response.get("content"), list):  # Anthropic
        found.append(_message(response.get("role") or "assistant", response["content"]))
    return [message for message in found if message]


def message_list(
    prefix: str, messages: list[Message], max_messages: int, truncated: list[str]
) -> Iterator[Pair]:
    """`{prefix}.{i}.*` for the last `max_messages` messages (the most recent matter most)."""
    total = len(messages)
    if total > max_messages:
        messages = messages[total - max_messages :] if max_messages > 0 else []
        truncated.append(f"{prefix}: kept {len(messages)} of {total}")
    for i, message in enumerate(messages):
        head = f"{prefix}.{i}."
        for key, value in message:
            yield head + key, value


# ---- tools, parameters, finish reason, embeddings ----------------------------------------

# Request keys that are conversation or tools, not parameters.
_NOT_PARAMETERS = frozenset(
    {"messages", "input", "contents", "system", "systemInstruction", "tools", "prompt"}
)


def tool_attributes(request: Any) -> Iterator[Pair]:
    tools = _get(request, "tools")
    for i, tool in enumerate(tools if isinstance(tools, list) else ()):
        yield f"{SA.LLM_TOOLS}.{i}.{ToolAttributes.TOOL_JSON_SCHEMA}", _json(tool)


def invocation_parameter_attributes(request: Any) -> Iterator[Pair]:
    if isinstance(request, dict):
        parameters = {k: v for k, v in request.items() if k not in _NOT_PARAMETERS}
        if parameters:
            yield SA.LLM_INVOCATION_PARAMETERS, _json(parameters)


def finish_reason_attributes(response: Any) -> Iterator[Pair]:
    if not isinstance(response, dict):
        return
    reason = (
        _get(_first(response.get("choices")), "finish_reason")
        or response.get("stop_reason")
        or _get(_first(response.get("candidates")), "finishReason")
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


def embedding_text_attributes(request: Any) -> Iterator[Pair]:
    texts = _get(request, "input")
    texts = [texts] if isinstance(texts, str) else texts
    for i, text in enumerate(texts if isinstance(texts, list) else ()):
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


def prompt_attributes(record: LogRecord) -> Iterator[Pair]:
    if record.prompt_slug:
        yield SA.PROMPT_VENDOR, "portkey"
        yield SA.PROMPT_ID, record.prompt_slug


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


def portkey_attributes(record: LogRecord) -> Iterator[Pair]:
    for key, value in zip(_FACT_KEYS, _fact_values(record), strict=True):
        if value is not None:
            yield key, value
    if record.warnings:
        # A warning quotes the dropped value, which may be anything the client sent.
        yield INGEST_WARNINGS, [redact_text(warning) for warning in record.warnings]


# ---- sizes and text hygiene --------------------------------------------------------------


def bound_text(text: str, max_chars: int) -> tuple[str, bool]:
    """(text without NULs, valid UTF-8, cut after `max_chars` with a visible marker; was it cut)."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates, from `\ud800` escapes in the log
            text = text.encode("utf-8", "replace").decode("utf-8")
    if len(text) <= max_chars:
        return text, False
    return f"{text[:max_chars]}…[truncated: {len(text)} chars]", True


def bound_values(
    attributes: dict[str, AttributeValue], max_chars: int, truncated: list[str]
) -> None:
    """Apply `bound_text` to every string (and string list item), noting the keys cut."""
    changed: dict[str, AttributeValue] = {}
    for key, value in attributes.items():
        if type(value) is str:
            if len(value) <= max_chars and value.isascii() and "\x00" not in value:
                continue  # the common case, checked without a call
            fixed, cut = bound_text(value, max_chars)
            if fixed is not value:
                changed[key] = fixed
            if cut:
                truncated.append(key)
        elif isinstance(value, list) and value and isinstance(value[0], str):
            items = [bound_text(item, max_chars) for item in value]
            changed[key] = [item for item, _ in items]
            if any(cut for _, cut in items):
                truncated.append(key)
    attributes.update(changed)
