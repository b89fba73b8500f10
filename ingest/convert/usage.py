"""Token counts and cost: what a response body says it used, by provider shape, and what
Portkey billed.

`llm.token_count.*` are the tokens the provider processed, whatever the bill: a free or
self-hosted model (Ollama, vLLM) or a model Portkey could not price keeps its true counts
(`prices apply` gives an always-free model a price of 0, so Phoenix's cost stays the bill).
Only a gateway cache hit (`cache_status` HIT or SEMANTIC HIT) used no provider tokens: it gets
`llm.token_count.* = 0` (Phoenix prices spans from these counts) and its stated counts move to
`portkey.token_count.*`. A failed request whose log states no usage gets no token counts
rather than invented zeros; the cost Portkey reported for it (usually 0) is kept.

An image request billed per image (`/images/...` with no usage, e.g. dall-e-3) has no tokens
for a price to carry: it carries the NUMBER OF IMAGES it made as the completion detail of type
`image` (`llm.token_count.completion_details.image`), which Phoenix prices with the model's
price of that type (`prices apply` writes a price per image). Its prompt and completion counts
stay what the log states; the image count is a count of images, not of tokens.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ingest.convert.common import PORTKEY, SA, Pair, get
from ingest.convert.records import LogRecord

_CACHE_READ = SA.LLM_TOKEN_COUNT_PROMPT_DETAILS_CACHE_READ
_CACHE_WRITE = SA.LLM_TOKEN_COUNT_PROMPT_DETAILS_CACHE_WRITE
_PROMPT_AUDIO = SA.LLM_TOKEN_COUNT_PROMPT_DETAILS_AUDIO
_REASONING = SA.LLM_TOKEN_COUNT_COMPLETION_DETAILS_REASONING
_COMPLETION_AUDIO = SA.LLM_TOKEN_COUNT_COMPLETION_DETAILS_AUDIO
# No semantic-convention constant yet; Phoenix reads any `completion_details.<type>`.
IMAGE_COUNT = "llm.token_count.completion_details.image"
# OpenAI allows n <= 10; a request's `n` is what was asked, not what was made, so bound it.
MAX_IMAGES = 100


@dataclass(slots=True)
class Usage:
    """Token counts read from a response body. Cache and reasoning counts are subsets."""

    prompt: int | None = None
    completion: int | None = None
    total: int | None = None  # as the body states it
    details: tuple[tuple[str, int | None], ...] = ()


def count(value: Any) -> int | None:
    """A non-negative token count as an int; None for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return round(value) if value >= 0 else None


def _add(*counts: int | None) -> int | None:
    known = [n for n in counts if n is not None]
    return sum(known) if known else None


def body_usage(response: Any) -> Usage | None:
    """The usage a response body states, by provider shape; None when it states none."""
    if not isinstance(response, dict):
        return None
    gemini = response.get("usageMetadata")
    if isinstance(gemini, dict):
        thoughts = count(gemini.get("thoughtsTokenCount"))
        return Usage(
            prompt=count(gemini.get("promptTokenCount")),
            completion=_add(count(gemini.get("candidatesTokenCount")), thoughts),
            total=count(gemini.get("totalTokenCount")),
            details=(
                (_CACHE_READ, count(gemini.get("cachedContentTokenCount"))),
                (_REASONING, thoughts),
            ),
        )
    usage = response.get("usage")
    if not isinstance(usage, dict):
        return None
    if "inputTokens" in usage or "outputTokens" in usage:  # Bedrock Converse
        read = count(usage.get("cacheReadInputTokens"))
        write = count(usage.get("cacheWriteInputTokens"))
        prompt = count(usage.get("inputTokens"))
        return Usage(
            prompt=None if prompt is None else prompt + (read or 0) + (write or 0),
            completion=count(usage.get("outputTokens")),
            total=count(usage.get("totalTokens")),
            details=((_CACHE_READ, read), (_CACHE_WRITE, write)),
        )
    if (
        "cache_read_input_tokens" in usage
        or "cache_creation_input_tokens" in usage
        or response.get("type") == "message"
    ):  # Anthropic, native or Portkey's OpenAI-shaped transform: input excludes the cache
        read = count(usage.get("cache_read_input_tokens"))
        write = count(usage.get("cache_creation_input_tokens"))
        base = count(usage.get("input_tokens"))
        if base is None:
            base = count(usage.get("prompt_tokens"))
        completion = count(usage.get("output_tokens"))
        if completion is None:
            completion = count(usage.get("completion_tokens"))
        return Usage(
            prompt=None if base is None else base + (read or 0) + (write or 0),
            completion=completion,
            total=count(usage.get("total_tokens")),
            details=((_CACHE_READ, read), (_CACHE_WRITE, write)),
        )
    if "input_tokens" in usage or "output_tokens" in usage:  # OpenAI Responses API
        return Usage(
            prompt=count(usage.get("input_tokens")),
            completion=count(usage.get("output_tokens")),
            total=count(usage.get("total_tokens")),
            details=(
                (_CACHE_READ, count(get(usage.get("input_tokens_details"), "cached_tokens"))),
                (_REASONING, count(get(usage.get("output_tokens_details"), "reasoning_tokens"))),
            ),
        )
    if "prompt_tokens" in usage or "completion_tokens" in usage or "total_tokens" in usage:
        prompt_details = usage.get("prompt_tokens_details")
        completion_details = usage.get("completion_tokens_details")
        return Usage(  # OpenAI chat/completions and embeddings (no completion count)
            prompt=count(usage.get("prompt_tokens")),
            completion=count(usage.get("completion_tokens")),
            total=count(usage.get("total_tokens")),
            details=(
                (_CACHE_READ, count(get(prompt_details, "cached_tokens"))),
                (_PROMPT_AUDIO, count(get(prompt_details, "audio_tokens"))),
                (_REASONING, count(get(completion_details, "reasoning_tokens"))),
                (_COMPLETION_AUDIO, count(get(completion_details, "audio_tokens"))),
            ),
        )
    return None


def stated_counts(record: LogRecord, response: Any) -> list[Pair]:
    """The token counts of the request: the body's usage, else Portkey's units."""
    usage = body_usage(response)
    if usage is None:  # Portkey's units stand in only when the body states nothing
        usage = Usage(prompt=count(record.req_units), completion=count(record.res_units))
    counts: list[Pair] = []
    if usage.prompt is not None:
        counts.append((SA.LLM_TOKEN_COUNT_PROMPT, usage.prompt))
    if usage.completion is not None:
        counts.append((SA.LLM_TOKEN_COUNT_COMPLETION, usage.completion))
    if usage.prompt is not None and usage.completion is not None:
        total: int | None = usage.prompt + usage.completion
    else:
        total = count(record.total_units)
        if total is None:
            total = usage.total
    if total is not None:
        counts.append((SA.LLM_TOKEN_COUNT_TOTAL, total))
    counts.extend((key, value) for key, value in usage.details if value is not None)
    return counts


def billed_in_usd(record: LogRecord) -> bool:
    return record.cost is not None and (
        record.cost_currency is None or record.cost_currency.upper() == "USD"
    )


CACHE_HITS = frozenset({"HIT", "SEMANTIC HIT"})


def cache_hit(record: LogRecord) -> bool:
    """Did Portkey's cache answer (no provider tokens used)?"""
    return (record.cache_status or "").strip().upper() in CACHE_HITS


def token_attributes(record: LogRecord, response: Any, failed: bool) -> Iterator[Pair]:
    """`llm.token_count.*` (see the module note) and, for a cache hit, the stated counts."""
    counts = stated_counts(record, response)
    if not any(value for _, value in counts):
        if failed and body_usage(response) is None:
            return  # the log knows no usage: nothing rather than zeros
        yield from counts
        return
    if cache_hit(record):
        for key, value in counts:
            yield key, 0
            yield PORTKEY + key.removeprefix("llm"), value  # portkey.token_count.*
        return
    yield from counts


def image_count(request: Any, response: Any) -> int:
    """Images a request made: the response's `data` list, else the request's `n`, else 1."""
    data = response.get("data") if isinstance(response, dict) else None
    made = len(data) if isinstance(data, list) and data else count(get(request, "n")) or 1
    return min(made, MAX_IMAGES)


def image_attributes(
    record: LogRecord, request: Any, response: Any, failed: bool
) -> Iterator[Pair]:
    """The image count of an image request billed per image (see the module note): only
    when no token count carries its cost. A cache hit made none: 0, its count kept beside."""
    if failed or body_usage(response) is not None:
        return  # billed by tokens (gpt-image-1 states usage), or nothing was made
    if any(value for _, value in stated_counts(record, response)):
        return
    images = image_count(request, response)
    if cache_hit(record):
        yield IMAGE_COUNT, 0
        yield PORTKEY + IMAGE_COUNT.removeprefix("llm"), images
    elif billed_in_usd(record) and record.cost is not None and record.cost > 0:
        yield IMAGE_COUNT, images


def tidy(number: float) -> float:
    """`number` without binary noise: 0.01914 / 100 is 0.0001914, not 0.00019140000000000002."""
    return float(f"{number:.15g}") if math.isfinite(number) else number


def whole(number: float) -> int | float:
    """A whole-number float as an int (`2048`, not `2048.0`), within 64 bits."""
    if number.is_integer() and abs(number) < 2**63:
        return int(number)
    return number


def cost_attributes(record: LogRecord) -> Iterator[Pair]:
    if not billed_in_usd(record) or record.cost is None:
        return
    # A zero Portkey reported is a bill of zero (a failed request, a cache hit): kept.
    yield SA.LLM_COST_TOTAL, tidy(record.cost / 100)  # Portkey reports cents
