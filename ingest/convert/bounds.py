"""What OTLP can carry and what a span may weigh: every value bounded before it leaves.

- text: NUL characters removed (PostgreSQL rejects them after Phoenix answered 200), valid
  UTF-8 (lone surrogates replaced), strings cut after `max_chars` with a visible marker;
- integers: OTLP carries signed 64-bit integers; a larger one (a status code of 1e20) is
  dropped with a warning instead of failing the encoder;
- token counts: Phoenix adds every span's `llm.token_count.prompt` and `.completion` into its
  ancestors' cumulative counts, in INTEGER columns (64-bit on SQLite, 32-bit on PostgreSQL);
  a sum that overflows fails the insert after Phoenix answered 200, so each
  `llm.token_count.*` is clamped to `MAX_TOKEN_COUNT` with a warning;
- count: at most `max_attributes` attributes; list-shaped families (messages, tools,
  embeddings) give up whole items first, the most recent input messages last;
- size: at most `max_bytes` of attribute text; the longest values are cut first, to one
  common length, so a span never weighs more than the cap whatever the log holds.
Every cut is listed in `portkey.ingest.truncated`, every drop in `portkey.ingest.warnings`.
- content (`--drop-content`): the attributes that carry what was said are removed and named
  in `portkey.ingest.content_dropped`; model, tokens, cost, status and metadata stay.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from opentelemetry.util.types import AttributeValue

from ingest.convert.common import SA
from ingest.convert.messages import MAX_INLINE_IMAGE_CHARS

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Image URLs may be as long as an inline image (messages.MAX_INLINE_IMAGE_CHARS) plus its head.
IMAGE_URL_SUFFIX = "image.image.url"
IMAGE_URL_CHARS = MAX_INLINE_IMAGE_CHARS + 100
_KEY_OVERHEAD = 8  # protobuf framing per attribute, roughly

Attributes = dict[str, AttributeValue]


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
            limit = max(max_chars, IMAGE_URL_CHARS) if key.endswith(IMAGE_URL_SUFFIX) else max_chars
            fixed, cut = bound_text(value, limit)
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


def bound_list(items: list[str], max_items: int, max_chars: int) -> list[str]:
    """A list attribute of our own notes, bounded in length and item size."""
    out = [bound_text(item, max_chars)[0] for item in items[:max_items]]
    if len(items) > max_items:
        out.append(f"…[{len(items) - max_items} more]")
    return out


def fits_int64(value: object) -> bool:
    return not isinstance(value, int) or isinstance(value, bool) or INT64_MIN <= value <= INT64_MAX


# Per span: above any context window offered today, and 214 spans at the bound still sum
# within PostgreSQL's 32-bit INTEGER (2,147,483,647); SQLite's 64-bit columns hold ~9e11.
MAX_TOKEN_COUNT = 10_000_000
TOKEN_COUNT_PREFIX = "llm.token_count."


def clamp_token_counts(attributes: Attributes, warnings: list[str]) -> None:
    """Bound the counts Phoenix sums over a trace, so no sum overflows its columns."""
    bound = MAX_TOKEN_COUNT
    for key, value in attributes.items():
        if (key.startswith(TOKEN_COUNT_PREFIX) and isinstance(value, int)
                and not isinstance(value, bool) and value > bound):  # fmt: skip
            attributes[key] = bound
            warnings.append(f"{key}: {_preview(value)} tokens, over the {bound:,} a span may "
                            "add to its trace's sums in Phoenix; clamped")  # fmt: skip


def drop_wide_integers(attributes: Attributes, warnings: list[str]) -> None:
    """Remove integers (and integer lists) OTLP cannot carry, saying so."""
    for key in [key for key, value in attributes.items() if not _fits(value)]:
        warnings.append(f"{key}: integer beyond 64 bits ({_preview(attributes.pop(key))}); dropped")


def _fits(value: AttributeValue) -> bool:
    if isinstance(value, list | tuple):
        return all(map(fits_int64, value))
    return fits_int64(value)


def _preview(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# `family.{index}.rest` for the list-shaped attribute families, in the order they give way
# to the attribute cap: tools and embeddings first, then the oldest input messages; the
# answer (output messages) goes last.
_FAMILIES = (SA.LLM_TOOLS, SA.EMBEDDING_EMBEDDINGS, SA.LLM_INPUT_MESSAGES, SA.LLM_OUTPUT_MESSAGES)
_ITEM = re.compile(rf"^({'|'.join(re.escape(f) for f in _FAMILIES)})\.(\d+)\.(.+)$")


def cap_attribute_count(attributes: Attributes, max_attributes: int, truncated: list[str]) -> None:
    """Keep at most `max_attributes`: whole list items give way, renumbered from 0."""
    if len(attributes) <= max_attributes:
        return
    groups: dict[tuple[str, int], list[str]] = defaultdict(list)
    fixed = 0
    for key in attributes:
        if match := _ITEM.match(key):
            groups[(match[1], int(match[2]))].append(key)
        else:
            fixed += 1
    room = max_attributes - fixed
    keep: set[tuple[str, int]] = set()
    # The answer first, then the most recent input messages, then tools and embeddings.
    for family in reversed(_FAMILIES):
        indices = sorted((i for f, i in groups if f == family), reverse=family == _FAMILIES[2])
        for index in indices:
            size = len(groups[(family, index)])
            if size <= room:
                keep.add((family, index))
                room -= size
    renumber: dict[tuple[str, int], int] = {}
    for family in _FAMILIES:
        kept = sorted(i for f, i in keep if f == family)
        total = sum(1 for f, _ in groups if f == family)
        renumber.update({(family, old): new for new, old in enumerate(kept)})
        if len(kept) < total:
            truncated.append(f"{family}: kept {len(kept)} of {total} (attribute cap)")
    rebuilt: Attributes = {}
    for key, value in attributes.items():
        if match := _ITEM.match(key):
            new = renumber.get((match[1], int(match[2])))
            if new is not None:
                rebuilt[f"{match[1]}.{new}.{match[3]}"] = value
        else:
            rebuilt[key] = value
    if len(rebuilt) > max_attributes:  # more fixed attributes than the cap: drop the last
        for key in list(rebuilt)[max_attributes:]:
            del rebuilt[key]
        truncated.append(f"attributes: kept {max_attributes} (attribute cap)")
    attributes.clear()
    attributes.update(rebuilt)


def _weight(key: str, value: AttributeValue) -> int:
    if isinstance(value, str):
        size = len(value) if value.isascii() else len(value.encode("utf-8"))
    elif isinstance(value, list | tuple):
        size = sum(len(str(item)) + 2 for item in value)
    else:
        size = 8
    return len(key) + size + _KEY_OVERHEAD


def cap_span_size(attributes: Attributes, max_bytes: int, truncated: list[str]) -> None:
    """Cut the longest strings to one common length so the attributes fit in `max_bytes`."""
    weights = {key: _weight(key, value) for key, value in attributes.items()}
    total = sum(weights.values())
    if total <= max_bytes:
        return
    strings = {key: w for key, w in weights.items() if isinstance(attributes[key], str)}
    others = total - sum(strings.values())
    budget = max(max_bytes - others, 0)
    # The largest per-value weight `level` with sum(min(w, level)) <= budget (water-filling).
    low, high = 0, max(strings.values(), default=0)
    while low < high:
        mid = (low + high + 1) // 2
        if sum(min(w, mid) for w in strings.values()) <= budget:
            low = mid
        else:
            high = mid - 1
    for key, weight in strings.items():
        if weight <= low:
            continue
        value = attributes[key]
        assert isinstance(value, str)
        room = max(low - len(key) - _KEY_OVERHEAD - 40, 0)  # 40: the marker
        chars = room * len(value) // max(weight - len(key) - _KEY_OVERHEAD, 1)
        if key.endswith(IMAGE_URL_SUFFIX) and value.startswith("data:"):
            head = value.partition(",")[0]
            attributes[key] = f"{head},…[{len(value)} bytes omitted]"
        else:
            attributes[key] = bound_text(value, chars)[0]
        truncated.append(f"{key} (span size cap)")


# What `--drop-content` removes: the families of attributes that carry message contents
# (text, images, audio, tool-call arguments and results), the bodies, embedded texts and the
# prompt template with its variables. A key is dropped when it is one of these or under one.
CONTENT_KEYS: tuple[str, ...] = (
    SA.INPUT_VALUE, SA.INPUT_MIME_TYPE, SA.OUTPUT_VALUE, SA.OUTPUT_MIME_TYPE,
    SA.LLM_INPUT_MESSAGES, SA.LLM_OUTPUT_MESSAGES, SA.EMBEDDING_EMBEDDINGS,
    SA.LLM_PROMPT_TEMPLATE, SA.LLM_PROMPT_TEMPLATE_VARIABLES,
)  # fmt: skip
_MIME_TYPES = (SA.INPUT_MIME_TYPE, SA.OUTPUT_MIME_TYPE)


def drop_content(attributes: Attributes) -> list[str]:
    """Remove the content attributes; the families removed, in CONTENT_KEYS order."""
    found: dict[str, None] = {}
    for key in list(attributes):
        for family in CONTENT_KEYS:
            if key == family or key.startswith(family + "."):
                del attributes[key]
                if family not in _MIME_TYPES:
                    found[family] = None
                break
    return sorted(found, key=CONTENT_KEYS.index)


# Under --drop-content, parameters are kept only when they cannot hold what was said: numbers,
# booleans, and these settings (others, such as `instructions`, `query`, `documents`, are text).
_SETTINGS = frozenset(
    {"model", "stream", "stream_options", "tool_choice", "response_format", "reasoning_effort",
     "reasoning", "service_tier", "user", "modalities", "store", "parallel_tool_calls",
     "encoding_format", "dimensions", "size", "quality", "voice", "top_k", "stop",
     "generationConfig", "inferenceConfig", "thinking", "toolConfig", "taskType"}
)  # fmt: skip


def settings_only(parameters: dict[str, Any]) -> dict[str, Any]:
    """The invocation parameters that cannot hold what was said."""
    return {k: v for k, v in parameters.items() if _setting(k, v)}


def _setting(key: str, value: Any) -> bool:
    scalar = isinstance(value, int | float | bool) or value is None
    return scalar or key in _SETTINGS
