"""Provider message shapes -> flattened OpenInference messages.

OpenAI chat (and Portkey's OpenAI-shaped transforms), Anthropic native, Bedrock Converse,
Gemini and the Responses API each write a conversation their own way; `input_messages` and
`output_messages` read all of them into one flat form (`Message`: keys relative to
`llm.{input,output}_messages.{i}.`). Lists are bounded: content parts and tool calls per
message at `MAX_PARTS` (a visible marker says how many were left out), messages by
`message_list`. Inline images are kept as `data:` URLs up to `MAX_INLINE_IMAGE_CHARS`, so
Phoenix renders small pictures; bigger ones are replaced by their size.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from openinference.semconv.trace import (
    ImageAttributes,
    MessageAttributes,
    MessageContentAttributes,
    ToolCallAttributes,
)

from ingest.convert.common import Message, Pair, get, to_json

MAX_PARTS = 200  # content parts and tool calls per message
MAX_INLINE_IMAGE_CHARS = 256 * 1024  # base64 characters of one inline image kept as is

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
    """An image's data replaced by its size: too big to be worth its place in a span."""
    size = len(data) if isinstance(data, str) else 0
    return f"data:{mime or 'application/octet-stream'};base64,…[{size} bytes omitted]"


def inline_image(mime: Any, data: Any) -> str:
    """A `data:` URL Phoenix can render when the image is small enough, else its size."""
    if isinstance(data, str) and isinstance(mime, str) and len(data) <= MAX_INLINE_IMAGE_CHARS:
        return f"data:{mime};base64,{data}"
    return _elided(mime, data)


def _image_url(url: str) -> str:
    if url.startswith("data:") and len(url) > MAX_INLINE_IMAGE_CHARS:
        head, sep, data = url.partition(";base64,")
        if sep:
            return _elided(head[5:], data)
    return url


def _arguments(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else to_json(value)


def _read_blocks(blocks: Iterable[Any], content: _Content) -> None:
    blocks = list(blocks)
    omitted = len(blocks) - MAX_PARTS
    for block in blocks[:MAX_PARTS] if omitted > 0 else blocks:
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
            url = get(url, "url") if isinstance(url, dict) else url
            if isinstance(url, str):
                content.parts.append(("image", _image_url(url)))
        elif kind == "image":  # Anthropic
            source = block.get("source")
            if get(source, "type") == "base64":
                image = inline_image(source.get("media_type"), source.get("data"))
                content.parts.append(("image", image))
            elif isinstance(url := get(source, "url"), str):
                content.parts.append(("image", _image_url(url)))
        elif kind is None and isinstance(image := block.get("image"), dict):  # Bedrock
            data = get(image.get("source"), "bytes")
            mime = f"image/{image['format']}" if image.get("format") else None
            content.parts.append(("image", inline_image(mime, data)))
        elif kind is None and isinstance(inline := block.get("inlineData"), dict):  # Gemini
            if str(inline.get("mimeType", "")).startswith("image/"):
                image = inline_image(inline["mimeType"], inline.get("data"))
                content.parts.append(("image", image))
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
    if omitted > 0:  # bounded like messages; the cut is visible in the span
        content.parts.append(("text", f"…[{omitted} more content parts omitted]"))


def _read_result(result: Any, content: _Content) -> None:
    if isinstance(result, str):
        content.parts.append(("text", result))
    elif isinstance(result, list):
        for item in result:
            if isinstance(item, dict) and "json" in item and "text" not in item:  # Bedrock
                content.parts.append(("text", to_json(item["json"])))
            else:
                _read_blocks((item,), content)
    elif result is not None:
        content.parts.append(("text", to_json(result)))


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
    if len(calls) > MAX_PARTS:
        calls = calls[:MAX_PARTS]
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
        function = get(call, "function")
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
            if isinstance(message := get(choice, "message"), dict):
                found.append(_chat_message(message, "assistant"))
            elif isinstance(text := get(choice, "text"), str):
                found.append(_message("assistant", text))
    elif isinstance(candidates := response.get("candidates"), list):  # Gemini
        found.extend(_gemini_message(get(c, "content"), "assistant") for c in candidates)
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
