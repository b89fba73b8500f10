"""The mapping rules of docs/design.md ("Attribute mapping"), one test (or case) per rule.

Every case goes the way a user's log goes: raw dict -> parse_record -> to_span ->
span_to_dict, and asserts on the attributes a Phoenix user would see.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from ingest.convert.common import MAPPING_VERSION
from ingest.convert.records import parse_record
from ingest.convert.redact import REDACTED
from ingest.convert.spans import ConversionOptions, make_resource, span_to_dict, to_span

PROJECT = "test-project"
BASE: dict[str, Any] = {"id": "log-1", "created_at": "2026-07-25T11:14:18.123Z"}


def convert(options: ConversionOptions | None = None, **fields: Any) -> dict[str, Any]:
    options = options or ConversionOptions(project=PROJECT)
    record = parse_record({**BASE, **fields})
    return span_to_dict(to_span(record, options, make_resource(options.project)))


def attrs(options: ConversionOptions | None = None, **fields: Any) -> dict[str, Any]:
    return convert(options, **fields)["attributes"]


def subset(attributes: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {k[len(prefix) :]: v for k, v in attributes.items() if k.startswith(prefix)}


def tokens(attributes: dict[str, Any]) -> dict[str, Any]:
    return subset(attributes, "llm.token_count.")


# ---- tokens ------------------------------------------------------------------------------


# Each case: the log's fields -> the `llm.token_count.*` a Phoenix user sees (key suffixes).
TOKEN_CASES: dict[str, tuple[dict[str, Any], dict[str, int]]] = {
    "openai-counts-cached-and-reasoning-inside-prompt-and-completion": (
        {"response": {"choices": [], "usage": {
            "prompt_tokens": 1500, "completion_tokens": 500, "total_tokens": 2000,
            "prompt_tokens_details": {"cached_tokens": 1000, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 100, "audio_tokens": 0}}},
         "req_units": 1, "res_units": 1},
        {"prompt": 1500, "completion": 500, "total": 2000, "prompt_details.cache_read": 1000,
         "prompt_details.audio": 0, "completion_details.reasoning": 100,
         "completion_details.audio": 0},
    ),
    "anthropic-native-adds-cache-tokens-to-the-prompt": (
        {"response": {"type": "message", "content": [], "usage": {
            "input_tokens": 300, "output_tokens": 50, "cache_read_input_tokens": 1000,
            "cache_creation_input_tokens": 200}}},
        {"prompt": 1500, "completion": 50, "total": 1550, "prompt_details.cache_read": 1000,
         "prompt_details.cache_write": 200},
    ),
    "anthropic-native-without-cache-keys-sets-no-cache-details": (
        {"response": {"type": "message", "content": [],
                      "usage": {"input_tokens": 10, "output_tokens": 5}}},
        {"prompt": 10, "completion": 5, "total": 15},
    ),
    "portkey-transformed-anthropic-adds-top-level-cache-keys": (
        {"response": {"object": "chat.completion", "choices": [], "usage": {
            "prompt_tokens": 300, "completion_tokens": 50, "total_tokens": 350,
            "cache_read_input_tokens": 1000, "cache_creation_input_tokens": 200}}},
        {"prompt": 1500, "completion": 50, "total": 1550, "prompt_details.cache_read": 1000,
         "prompt_details.cache_write": 200},
    ),
    "responses-api-is-not-read-as-anthropic": (
        {"response": {"object": "response", "output": [], "usage": {
            "input_tokens": 1200, "input_tokens_details": {"cached_tokens": 800},
            "output_tokens": 300, "output_tokens_details": {"reasoning_tokens": 120},
            "total_tokens": 1500}}},
        {"prompt": 1200, "completion": 300, "total": 1500, "prompt_details.cache_read": 800,
         "completion_details.reasoning": 120},
    ),
    "gemini-counts-thoughts-as-completion-and-reasoning": (
        {"response": {"candidates": [], "usageMetadata": {
            "promptTokenCount": 1000, "cachedContentTokenCount": 600,
            "candidatesTokenCount": 200, "thoughtsTokenCount": 50, "totalTokenCount": 1250}}},
        {"prompt": 1000, "completion": 250, "total": 1250, "prompt_details.cache_read": 600,
         "completion_details.reasoning": 50},
    ),
    "bedrock-converse-adds-cache-read-and-write-to-the-prompt": (
        {"response": {"output": {"message": {}}, "usage": {
            "inputTokens": 100, "outputTokens": 20, "totalTokens": 1420,
            "cacheReadInputTokens": 1000, "cacheWriteInputTokens": 300}}},
        {"prompt": 1400, "completion": 20, "total": 1420, "prompt_details.cache_read": 1000,
         "prompt_details.cache_write": 300},
    ),
    "embedding-has-no-completion-count": (
        {"response": {"object": "list", "data": [],
                      "usage": {"prompt_tokens": 8, "total_tokens": 8}}},
        {"prompt": 8, "total": 8},
    ),
    "total-units-win-over-the-body-total-when-completion-is-unknown": (
        {"response": {"data": [], "usage": {"prompt_tokens": 8, "total_tokens": 8}},
         "total_units": 9},
        {"prompt": 8, "total": 9},
    ),
    "units-stand-in-when-the-body-has-no-usage": (
        {"response": {"choices": []}, "req_units": 12.6, "res_units": 3, "total_units": 99},
        {"prompt": 13, "completion": 3, "total": 16},
    ),
    "units-are-ignored-when-the-body-states-usage": (
        {"response": {"usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}},
         "req_units": 100, "res_units": 100},
        {"prompt": 9, "completion": 3, "total": 12},
    ),
    "a-zero-detail-is-a-known-value": (
        {"response": {"usage": {"prompt_tokens": 5, "completion_tokens": 1,
                                "prompt_tokens_details": {"cached_tokens": 0}}}},
        {"prompt": 5, "completion": 1, "total": 6, "prompt_details.cache_read": 0},
    ),
    "no-usage-and-no-units-means-no-token-counts": ({"response": {"choices": []}}, {}),
}  # fmt: skip


@pytest.mark.parametrize(("fields", "expected"), TOKEN_CASES.values(), ids=TOKEN_CASES.keys())
def test_token_counts(fields: dict[str, Any], expected: dict[str, int]) -> None:
    assert tokens(attrs(**fields)) == expected


# ---- cost --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cost", "currency", "usd"),
    [(0.0105, "USD", 0.000105), (25, "usd", 0.25), (25, None, 0.25), (25, "EUR", None)],
)
def test_cost_in_cents_becomes_usd_only_for_usd(
    cost: float, currency: str | None, usd: Any
) -> None:
    got = attrs(cost=cost, cost_currency=currency)
    if usd is None:
        assert "llm.cost.total" not in got
    else:
        assert got["llm.cost.total"] == pytest.approx(usd)
    assert got["portkey.cost"] == float(cost)
    assert got.get("portkey.cost_currency") == currency


# ---- provider ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ai_org", "model", "provider", "system"),
    [
        ("openai", "gpt-4o", "openai", "openai"),
        ("Azure-OpenAI", "gpt-4o", "azure", "openai"),
        ("azure-ai", "gpt-4o", "azure", "openai"),
        ("azure", "gpt-4o", "azure", "openai"),
        ("anthropic", "claude-sonnet-4", "anthropic", "anthropic"),
        ("bedrock", "anthropic.claude-3-haiku", "aws", "anthropic"),
        ("aws-bedrock", "us.claude-sonnet-4", "aws", "anthropic"),
        ("bedrock", "meta.llama3-70b", "aws", "meta"),
        ("bedrock", "us.amazon.nova-pro-v1:0", "aws", "amazon"),
        ("bedrock", "mistral.mistral-large", "aws", "mistralai"),
        ("bedrock", "cohere.command-r", "aws", "cohere"),
        ("vertex-ai", "claude-sonnet-4@2025", "google", "anthropic"),
        ("vertex-ai", "gemini-2.5-pro", "google", "vertexai"),
        ("google", "gemini-2.5-pro", "google", "vertexai"),
        ("gemini", "gemini-2.5-pro", "google", "vertexai"),
        ("palm", "text-bison", "google", "vertexai"),
        ("cohere", "command-r", "cohere", "cohere"),
        ("mistral-ai", "mistral-large", "mistralai", "mistralai"),
        ("mistralai", "mistral-large", "mistralai", "mistralai"),
        ("x-ai", "grok-4", "xai", "xai"),
        ("xai", "grok-4", "xai", "xai"),
        ("deepseek", "deepseek-chat", "deepseek", "deepseek"),
        ("groq", "llama-3.3", "groq", "groq"),
        ("cerebras", "llama-3.3", "cerebras", "cerebras"),
        ("ollama", "llama3", "ollama", "ollama"),
        ("moonshot", "kimi", "moonshot", "moonshot"),
        ("perplexity-ai", "sonar", "perplexity", "perplexity"),
        ("fireworks-ai", "llama", "fireworks", "fireworks"),
        ("together-ai", "llama", "together", "together"),
        ("  My-Private-LLM ", "m", "My-Private-LLM", "My-Private-LLM"),
    ],
)
def test_provider_normalisation(ai_org: str, model: str, provider: str, system: str) -> None:
    got = attrs(ai_org=ai_org, ai_model=model)
    assert got["llm.provider"] == provider
    assert got["llm.system"] == system
    assert got["portkey.ai_org"] == ai_org.strip()


def test_missing_provider_sets_neither_provider_nor_system() -> None:
    got = attrs(ai_model="gpt-4o")
    assert "llm.provider" not in got and "llm.system" not in got


# ---- span kind, operation, model ---------------------------------------------------------

G = "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash"
B = "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-haiku"


@pytest.mark.parametrize(
    ("url", "kind", "operation"),
    [
        ("https://api.openai.com/v1/chat/completions", "LLM", "chat"),
        (
            "https://x.openai.azure.com/openai/deployments/d/chat/completions?api-version=1",
            "LLM",
            "chat",
        ),
        ("https://api.openai.com/v1/completions", "LLM", "text_completion"),
        ("https://api.anthropic.com/v1/messages", "LLM", "chat"),
        ("https://api.openai.com/v1/responses", "LLM", "responses"),
        (f"{G}:generateContent", "LLM", "chat"),
        (f"{G}:streamGenerateContent?alt=sse", "LLM", "chat"),
        (f"{B}/converse", "LLM", "chat"),
        (f"{B}/converse-stream", "LLM", "chat"),
        (f"{B}/invoke", "LLM", "chat"),
        (f"{B}/invoke-with-response-stream", "LLM", "chat"),
        ("https://api.openai.com/v1/embeddings", "EMBEDDING", "embeddings"),
        (f"{G}:embedContent", "EMBEDDING", "embeddings"),
        (f"{G}:batchEmbedContents", "EMBEDDING", "embeddings"),
        ("https://api.openai.com/v1/images/generations", "LLM", "image_generation"),
        ("https://api.openai.com/v1/audio/speech", "LLM", "audio"),
        ("https://api.cohere.com/v2/rerank", "RERANKER", "rerank"),
        ("https://api.openai.com/v1/moderations", "GUARDRAIL", "moderation"),
    ],
)
def test_span_kind_and_name_from_the_endpoint(url: str, kind: str, operation: str) -> None:
    span = convert(request_url=url, ai_model="m-1")
    assert span["attributes"]["openinference.span.kind"] == kind
    assert span["name"] == f"{operation} m-1"


@pytest.mark.parametrize(
    ("request_body", "model", "kind", "name"),
    [
        ({"messages": []}, "gpt-4o", "LLM", "chat gpt-4o"),
        ({"contents": []}, "gemini-2.5-pro", "LLM", "chat gemini-2.5-pro"),
        ({"prompt": "Once"}, "davinci-002", "LLM", "text_completion davinci-002"),
        (
            {"input": "hi"},
            "text-embedding-3-small",
            "EMBEDDING",
            "embeddings text-embedding-3-small",
        ),
        ({"input": "hi"}, "gpt-4o", "UNKNOWN", "request gpt-4o"),
        ({"file": "x"}, None, "UNKNOWN", "request"),
    ],
)
def test_span_kind_from_the_body_when_the_url_says_nothing(
    request_body: dict[str, Any], model: str | None, kind: str, name: str
) -> None:
    span = convert(request=request_body, ai_model=model, request_url="https://gw.local/v1/other")
    assert span["attributes"]["openinference.span.kind"] == kind
    assert span["name"] == name


def test_model_name_is_the_answering_model_and_request_model_the_asked_one() -> None:
    got = attrs(
        ai_model="gpt-4o", request={"model": "gpt-4o"}, response={"model": "gpt-4o-2024-08-06"}
    )
    assert got["llm.model_name"] == "gpt-4o-2024-08-06"
    assert got["llm.request.model_name"] == "gpt-4o"


def test_gemini_model_version_is_the_answering_model() -> None:
    got = attrs(ai_model="gemini-2.5-flash", response={"modelVersion": "gemini-2.5-flash-001"})
    assert got["llm.model_name"] == "gemini-2.5-flash-001"


def test_model_falls_back_to_ai_model_then_to_the_request_body() -> None:
    assert attrs(ai_model="claude-x", response={"id": "1"})["llm.model_name"] == "claude-x"
    got = attrs(request={"model": "from-body"})
    assert got["llm.model_name"] == got["llm.request.model_name"] == "from-body"


def test_embedding_spans_also_carry_embedding_model_name_and_texts() -> None:
    got = attrs(
        request_url="https://api.openai.com/v1/embeddings",
        request={"model": "text-embedding-3-small", "input": ["first", "second"]},
        response={"object": "list", "data": [{"embedding": [0.1, 0.2]}]},
    )
    assert got["embedding.model_name"] == got["llm.model_name"] == "text-embedding-3-small"
    assert subset(got, "embedding.embeddings.") == {
        "0.embedding.text": "first",
        "1.embedding.text": "second",
    }
    assert not subset(got, "llm.input_messages.")


def test_single_string_embedding_input() -> None:
    got = attrs(request_url="https://api.openai.com/v1/embeddings", request={"input": "only"})
    assert subset(got, "embedding.embeddings.") == {"0.embedding.text": "only"}


# ---- input/output values and messages ----------------------------------------------------


def test_bodies_become_json_input_and_output_values() -> None:
    request = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}
    response = {"choices": [{"message": {"role": "assistant", "content": "Hello"}}]}
    got = attrs(request=request, response=response)
    assert json.loads(got["input.value"]) == request
    assert got["input.mime_type"] == "application/json"
    assert json.loads(got["output.value"]) == response
    assert got["output.mime_type"] == "application/json"


def test_a_text_body_is_kept_as_text() -> None:
    got = attrs(request="plain words", response="upstream said no")
    assert (got["input.value"], got["input.mime_type"]) == ("plain words", "text/plain")
    assert (got["output.value"], got["output.mime_type"]) == ("upstream said no", "text/plain")


def test_missing_bodies_set_no_values() -> None:
    got = attrs()
    assert not {"input.value", "output.value", "input.mime_type"} & got.keys()


def test_openai_messages_with_tool_calls_and_tool_results() -> None:
    request = {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": "18C"},
        ],
    }
    response = {
        "choices": [
            {
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_2",
                            "type": "function",
                            "function": {"name": "get_time", "arguments": "{}"},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ]
    }
    got = attrs(request=request, response=response)
    assert subset(got, "llm.input_messages.") == {
        "0.message.role": "system",
        "0.message.content": "Be brief.",
        "1.message.role": "user",
        "1.message.content": "Weather in Paris?",
        "2.message.role": "assistant",
        "2.message.tool_calls.0.tool_call.id": "call_1",
        "2.message.tool_calls.0.tool_call.function.name": "get_weather",
        "2.message.tool_calls.0.tool_call.function.arguments": '{"city":"Paris"}',
        "3.message.role": "tool",
        "3.message.content": "18C",
        "3.message.tool_call_id": "call_1",
        "3.message.name": "get_weather",
    }
    assert subset(got, "llm.output_messages.") == {
        "0.message.role": "assistant",
        "0.message.tool_calls.0.tool_call.id": "call_2",
        "0.message.tool_calls.0.tool_call.function.name": "get_time",
        "0.message.tool_calls.0.tool_call.function.arguments": "{}",
    }
    assert got["llm.finish_reason"] == "tool_calls"


@pytest.mark.parametrize(
    ("data", "kept"),
    [("iVBORw0KGgo" * 100, True), ("A" * (256 * 1024 + 1), False)],
    ids=["small-kept", "over-256KB-elided"],
)
def test_openai_multimodal_parts_with_inline_image_kept_up_to_a_bound(
    data: str, kept: bool
) -> None:
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]
    got = attrs(request={"messages": [{"role": "user", "content": content}]})
    shown = (
        f"data:image/png;base64,{data}"
        if kept
        else (f"data:image/png;base64,…[{len(data)} bytes omitted]")
    )
    assert subset(got, "llm.input_messages.0.message.contents.") == {
        "0.message_content.type": "text",
        "0.message_content.text": "What is this?",
        "1.message_content.type": "image",
        "1.message_content.image.image.url": shown,
        "2.message_content.type": "image",
        "2.message_content.image.image.url": "https://example.com/cat.jpg",
    }


def test_anthropic_system_tool_use_tool_result_and_image_blocks() -> None:
    request = {
        "model": "claude-sonnet-4",
        "system": "You are terse.",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Look"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/jpeg", "data": "QUJD"},
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "toolu_1", "name": "zoom", "input": {"x": 2}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "zoomed"},
                ],
            },
        ],
    }
    response = {
        "type": "message",
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "hmm"},
            {"type": "text", "text": "A cat."},
            {"type": "tool_use", "id": "toolu_2", "name": "save", "input": {}},
        ],
        "stop_reason": "tool_use",
    }
    got = attrs(request=request, response=response)
    assert subset(got, "llm.input_messages.") == {
        "0.message.role": "system",
        "0.message.content": "You are terse.",
        "1.message.role": "user",
        "1.message.contents.0.message_content.type": "text",
        "1.message.contents.0.message_content.text": "Look",
        "1.message.contents.1.message_content.type": "image",
        "1.message.contents.1.message_content.image.image.url": "data:image/jpeg;base64,QUJD",
        "2.message.role": "assistant",
        "2.message.tool_calls.0.tool_call.id": "toolu_1",
        "2.message.tool_calls.0.tool_call.function.name": "zoom",
        "2.message.tool_calls.0.tool_call.function.arguments": '{"x": 2}',
        "3.message.role": "user",
        "3.message.contents.0.message_content.type": "text",
        "3.message.contents.0.message_content.text": "zoomed",
        "3.message.tool_call_id": "toolu_1",
    }
    assert subset(got, "llm.output_messages.") == {
        "0.message.role": "assistant",
        "0.message.contents.0.message_content.type": "text",
        "0.message.contents.0.message_content.text": "A cat.",
        "0.message.tool_calls.0.tool_call.id": "toolu_2",
        "0.message.tool_calls.0.tool_call.function.name": "save",
        "0.message.tool_calls.0.tool_call.function.arguments": "{}",
    }
    assert got["llm.finish_reason"] == "tool_use"


def test_anthropic_system_as_a_list_of_blocks() -> None:
    request = {"system": [{"type": "text", "text": "Rule 1"}], "messages": []}
    assert subset(attrs(request=request), "llm.input_messages.") == {
        "0.message.role": "system",
        "0.message.contents.0.message_content.type": "text",
        "0.message.contents.0.message_content.text": "Rule 1",
    }


def test_responses_api_string_input_is_one_user_message() -> None:
    got = attrs(request={"model": "gpt-5", "input": "Tell me a joke"})
    assert subset(got, "llm.input_messages.") == {
        "0.message.role": "user",
        "0.message.content": "Tell me a joke",
    }


def test_responses_api_items_in_and_out() -> None:
    request = {
        "input": [
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Describe"},
                    {"type": "input_image", "image_url": "data:image/webp;base64,AAAA"},
                ],
            },
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": '{"a":1}'},
            {"type": "function_call_output", "call_id": "c1", "output": "done"},
        ]
    }
    response = {
        "object": "response",
        "status": "completed",
        "output": [
            {"type": "reasoning", "summary": []},
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "A dog."}],
            },
            {"type": "function_call", "call_id": "c2", "name": "g", "arguments": "{}"},
        ],
    }
    got = attrs(
        request_url="https://api.openai.com/v1/responses", request=request, response=response
    )
    assert subset(got, "llm.input_messages.") == {
        "0.message.role": "user",
        "0.message.contents.0.message_content.type": "text",
        "0.message.contents.0.message_content.text": "Describe",
        "0.message.contents.1.message_content.type": "image",
        "0.message.contents.1.message_content.image.image.url": "data:image/webp;base64,AAAA",
        "1.message.role": "assistant",
        "1.message.tool_calls.0.tool_call.id": "c1",
        "1.message.tool_calls.0.tool_call.function.name": "f",
        "1.message.tool_calls.0.tool_call.function.arguments": '{"a":1}',
        "2.message.role": "tool",
        "2.message.content": "done",
        "2.message.tool_call_id": "c1",
    }
    assert subset(got, "llm.output_messages.") == {
        "0.message.role": "assistant",
        "0.message.contents.0.message_content.type": "text",
        "0.message.contents.0.message_content.text": "A dog.",
        "1.message.role": "assistant",
        "1.message.tool_calls.0.tool_call.id": "c2",
        "1.message.tool_calls.0.tool_call.function.name": "g",
        "1.message.tool_calls.0.tool_call.function.arguments": "{}",
    }
    assert got["llm.finish_reason"] == "completed"


def test_gemini_contents_parts_and_candidates() -> None:
    request = {
        "systemInstruction": {"parts": [{"text": "Be nice."}]},
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "What is in the photo?"},
                    {"inlineData": {"mimeType": "image/png", "data": "AAAAAAAA"}},
                ],
            },
            {"role": "model", "parts": [{"functionCall": {"name": "lookup", "args": {"q": 1}}}]},
            {
                "role": "user",
                "parts": [{"functionResponse": {"name": "lookup", "response": {"r": "ok"}}}],
            },
        ],
        "generationConfig": {"temperature": 0.2},
    }
    response = {
        "candidates": [
            {"content": {"role": "model", "parts": [{"text": "A bird."}]}, "finishReason": "STOP"}
        ],
        "modelVersion": "gemini-2.5-flash",
    }
    got = attrs(request=request, response=response)
    assert subset(got, "llm.input_messages.") == {
        "0.message.role": "system",
        "0.message.contents.0.message_content.type": "text",
        "0.message.contents.0.message_content.text": "Be nice.",
        "1.message.role": "user",
        "1.message.contents.0.message_content.type": "text",
        "1.message.contents.0.message_content.text": "What is in the photo?",
        "1.message.contents.1.message_content.type": "image",
        "1.message.contents.1.message_content.image.image.url": "data:image/png;base64,AAAAAAAA",
        "2.message.role": "assistant",
        "2.message.tool_calls.0.tool_call.function.name": "lookup",
        "2.message.tool_calls.0.tool_call.function.arguments": '{"q": 1}',
        "3.message.role": "user",
        "3.message.contents.0.message_content.type": "text",
        "3.message.contents.0.message_content.text": '{"r": "ok"}',
        "3.message.name": "lookup",
    }
    assert subset(got, "llm.output_messages.") == {
        "0.message.role": "assistant",
        "0.message.contents.0.message_content.type": "text",
        "0.message.contents.0.message_content.text": "A bird.",
    }
    assert got["llm.finish_reason"] == "STOP"
    assert json.loads(got["llm.invocation_parameters"]) == {
        "generationConfig": {"temperature": 0.2}
    }


def test_bedrock_converse_system_blocks_tools_and_output_message() -> None:
    request = {
        "system": [{"text": "Sys"}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"text": "Hi"},
                    {"image": {"format": "png", "source": {"bytes": "AAAA"}}},
                ],
            },
            {
                "role": "assistant",
                "content": [{"toolUse": {"toolUseId": "t1", "name": "calc", "input": {"n": 1}}}],
            },
            {
                "role": "user",
                "content": [{"toolResult": {"toolUseId": "t1", "content": [{"json": {"v": 2}}]}}],
            },
        ],
        "inferenceConfig": {"maxTokens": 10},
    }
    response = {
        "output": {"message": {"role": "assistant", "content": [{"text": "Two."}]}},
        "stopReason": "end_turn",
    }
    got = attrs(request=request, response=response)
    assert subset(got, "llm.input_messages.") == {
        "0.message.role": "system",
        "0.message.contents.0.message_content.type": "text",
        "0.message.contents.0.message_content.text": "Sys",
        "1.message.role": "user",
        "1.message.contents.0.message_content.type": "text",
        "1.message.contents.0.message_content.text": "Hi",
        "1.message.contents.1.message_content.type": "image",
        "1.message.contents.1.message_content.image.image.url": "data:image/png;base64,AAAA",
        "2.message.role": "assistant",
        "2.message.tool_calls.0.tool_call.id": "t1",
        "2.message.tool_calls.0.tool_call.function.name": "calc",
        "2.message.tool_calls.0.tool_call.function.arguments": '{"n": 1}',
        "3.message.role": "user",
        "3.message.contents.0.message_content.type": "text",
        "3.message.contents.0.message_content.text": '{"v": 2}',
        "3.message.tool_call_id": "t1",
    }
    assert subset(got, "llm.output_messages.") == {
        "0.message.role": "assistant",
        "0.message.contents.0.message_content.type": "text",
        "0.message.contents.0.message_content.text": "Two.",
    }
    assert got["llm.finish_reason"] == "end_turn"


def test_completions_api_choice_text_is_an_assistant_message() -> None:
    response = {"choices": [{"text": "upon a time", "finish_reason": "length"}]}
    got = attrs(request={"prompt": "Once"}, response=response)
    assert subset(got, "llm.output_messages.") == {
        "0.message.role": "assistant",
        "0.message.content": "upon a time",
    }
    assert got["llm.finish_reason"] == "length"


# ---- tools, parameters -------------------------------------------------------------------


def test_each_request_tool_becomes_a_json_schema() -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    got = attrs(request={"messages": [], "tools": [tool, {"type": "web_search"}]})
    assert json.loads(got["llm.tools.0.tool.json_schema"]) == tool
    assert json.loads(got["llm.tools.1.tool.json_schema"]) == {"type": "web_search"}


def test_invocation_parameters_exclude_conversation_and_tools() -> None:
    request = {
        "model": "claude-sonnet-4",
        "messages": [],
        "system": "s",
        "tools": [],
        "temperature": 0.5,
        "max_tokens": 100,
    }
    got = attrs(request=request)
    assert json.loads(got["llm.invocation_parameters"]) == {
        "model": "claude-sonnet-4",
        "temperature": 0.5,
        "max_tokens": 100,
    }


def test_no_invocation_parameters_when_nothing_is_left() -> None:
    assert "llm.invocation_parameters" not in attrs(request={"messages": []})


# ---- metadata, tags, prompt, Portkey facts -----------------------------------------------


def test_metadata_user_and_session() -> None:
    metadata = {"_user": "u-1", "session_id": "s-1", "env": "prod"}
    got = attrs(metadata=metadata)
    assert json.loads(got["metadata"]) == metadata
    assert got["user.id"] == "u-1"
    assert got["session.id"] == "s-1"


def test_metadata_as_a_json_string_is_read_too() -> None:
    assert attrs(metadata='{"_user": "u-2"}')["user.id"] == "u-2"


def test_session_key_is_configurable_and_none_disables_sessions() -> None:
    metadata = {"session_id": "s-1", "conversation": "c-9"}
    custom = ConversionOptions(project=PROJECT, session_key="conversation")
    assert attrs(custom, metadata=metadata)["session.id"] == "c-9"
    assert "session.id" not in attrs(
        ConversionOptions(project=PROJECT, session_key=None), metadata=metadata
    )


def test_empty_metadata_sets_nothing() -> None:
    got = attrs(metadata={})
    assert not {"metadata", "user.id", "session.id"} & got.keys()


def test_tags_in_order_only_those_present() -> None:
    got = attrs(
        ai_org="openai",
        mode="fallback",
        cache_status="SEMANTIC HIT",
        config="pc-abc",
        is_success=False,
        response_status_code=500,
    )
    assert got["tag.tags"] == [
        "portkey",
        "provider:openai",
        "mode:fallback",
        "cache:semantic hit",
        "config:pc-abc",
        "error",
    ]
    assert attrs()["tag.tags"] == ["portkey"]


def test_prompt_slug_sets_prompt_vendor_and_id() -> None:
    got = attrs(prompt_slug="pp-welcome-1")
    assert (got["prompt.vendor"], got["prompt.id"]) == ("portkey", "pp-welcome-1")
    assert not {"prompt.vendor", "prompt.id"} & attrs().keys()


def test_portkey_facts_with_enrichment_fields_and_types() -> None:
    got = attrs(
        trace_id="tr-1",
        ai_org="openai",
        ai_model="gpt-4o",
        request_url="https://api.openai.com/v1/chat/completions",
        mode="loadbalance",
        config="pc-1",
        prompt_slug="pp-1",
        response_status_code="200",
        is_success=1,
        response_time=812,
        cost=1.5,
        cost_currency="USD",
        req_units=10,
        res_units=2,
        total_units=12,
        cache_status="MISS",
        retry_success_count=2,
        last_used_option_index=1,
        virtual_key="vk-openai-prod",
        span_id="sp-1",
        parent_span_id="sp-0",
        span_name="POST /v1/chat/completions",
    )
    assert subset(got, "portkey.") == {
        "log_id": "log-1",
        "trace_id": "tr-1",
        "ai_org": "openai",
        "ai_model": "gpt-4o",
        "request_url": "https://api.openai.com/v1/chat/completions",
        "mode": "loadbalance",
        "config": "pc-1",
        "prompt_slug": "pp-1",
        "status_code": 200,
        "is_success": True,
        "response_time_ms": 812.0,
        "cost": 1.5,
        "cost_currency": "USD",
        "req_units": 10.0,
        "res_units": 2.0,
        "total_units": 12.0,
        "cache_status": "MISS",
        "retry_success_count": 2,
        "last_used_option_index": 1,
        "virtual_key": "vk-openai-prod",
        "span_id": "sp-1",
        "parent_span_id": "sp-0",
        "span_name": "POST /v1/chat/completions",
        "ingest.mapping_version": MAPPING_VERSION,
    }
    assert type(got["portkey.status_code"]) is int and type(got["portkey.is_success"]) is bool
    # Whole-number counts are integers (2048, not 2048.0); costs and times stay numbers.
    assert [type(got[f"portkey.{n}_units"]) for n in ("req", "res", "total")] == [int] * 3


def test_missing_facts_are_absent_not_null() -> None:
    expected = {"log_id": "log-1", "ingest.mapping_version": MAPPING_VERSION}
    assert subset(attrs(), "portkey.") == expected


def test_parse_warnings_are_listed() -> None:
    got = attrs(is_success="maybe")
    assert len(got["portkey.ingest.warnings"]) == 1
    assert got["portkey.ingest.warnings"][0].startswith("is_success:")


# ---- sizes, NUL, secrets -----------------------------------------------------------------


def test_long_values_are_cut_with_a_marker_and_listed() -> None:
    options = ConversionOptions(project=PROJECT, max_value_chars=100)
    request = {"messages": [{"role": "user", "content": "x" * 500}]}
    got = attrs(options, request=request)
    value = got["llm.input_messages.0.message.content"]
    assert value == "x" * 100 + "…[truncated: 500 chars]"
    full = json.dumps(request)
    assert got["input.value"] == f"{full[:100]}…[truncated: {len(full)} chars]"
    assert set(got["portkey.ingest.truncated"]) == {
        "input.value",
        "llm.input_messages.0.message.content",
    }


def test_short_values_are_not_marked() -> None:
    got = attrs(request={"messages": [{"role": "user", "content": "short"}]})
    assert "portkey.ingest.truncated" not in got


def test_message_caps_keep_the_most_recent_messages() -> None:
    options = ConversionOptions(project=PROJECT, max_messages=3)
    messages = [{"role": "user", "content": f"m{i}"} for i in range(5)]
    choices = [{"message": {"role": "assistant", "content": f"c{i}"}} for i in range(4)]
    got = attrs(options, request={"messages": messages}, response={"choices": choices})
    assert [got[f"llm.input_messages.{i}.message.content"] for i in range(3)] == ["m2", "m3", "m4"]
    assert "llm.input_messages.3.message.content" not in got
    assert [got[f"llm.output_messages.{i}.message.content"] for i in range(3)] == ["c1", "c2", "c3"]
    assert got["portkey.ingest.truncated"] == [
        "llm.input_messages: kept 3 of 5",
        "llm.output_messages: kept 3 of 4",
    ]


def test_nul_characters_are_removed_everywhere() -> None:
    span = convert(
        ai_model="gpt\x00-4o",
        request={"messages": [{"role": "user", "content": "a\x00b"}]},
        metadata={"k\x00ey": "v\x00al", "_user": "u\x001"},
        response="bad\x00text",
    )
    dumped = json.dumps(span, ensure_ascii=False)
    assert "\x00" not in dumped and "\\u0000" not in dumped
    got = span["attributes"]
    assert got["llm.input_messages.0.message.content"] == "ab"
    assert got["llm.model_name"] == "gpt-4o"
    assert json.loads(got["metadata"]) == {"key": "val", "_user": "u1"}
    assert got["user.id"] == "u1"
    assert got["output.value"] == "badtext"


SECRETS = (
    "sk-live-0123456789abcdefghij",
    "hPxFZGd8AN269n4bznDf2Onbi8I",
    "hunter2-pass",
    "AIzaSyA0123456789abcdefghijklmnopqrstu",
    "tok-in-text-42",
    "meta-secret-77",
    "warned-secret-99",
    "nested-cred-31",
    "cfg-secret-55",
)


def test_no_secret_reaches_the_span() -> None:
    request = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "use Bearer tok-in-text-42 please"}],
        "api_key": "hunter2-pass",
        "extra_headers": {"Authorization": f"Bearer {SECRETS[0]}", "X-Portkey-Api-Key": SECRETS[1]},
        "tools": [{"config": {"Password": {"nested": "nested-cred-31"}}}],
    }
    span = convert(
        request=request,
        response={"echo": f"x-portkey-api-key: {SECRETS[1]}"},
        metadata={"access_token": "meta-secret-77", "note": f"key {SECRETS[0]}"},
        request_url=f"{G}:generateContent?key={SECRETS[3]}",
        ai_model={"api_key": "warned-secret-99"},  # dropped by parsing, quoted in a warning
        config="pc-1?token=cfg-secret-55",
    )
    dumped = json.dumps(span, ensure_ascii=False)
    for secret in SECRETS:
        assert secret not in dumped
    got = span["attributes"]
    assert got["llm.input_messages.0.message.content"] == "use Bearer [REDACTED] please"
    assert json.loads(got["input.value"])["api_key"] == REDACTED
    assert json.loads(got["metadata"])["access_token"] == REDACTED
    assert got["portkey.request_url"].endswith("?key=[REDACTED]")
