"""Masking of secrets inside logged bodies, metadata and free text (DESIGN.md, invariant 5).

Portkey logs the provider request body, and some clients put credentials into it (headers
copied into metadata, `api_key` fields, `Authorization: Bearer ...` strings). Nothing that
looks like a credential may reach Phoenix, a quarantine file or the terminal.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

REDACTED = "[REDACTED]"

# Compared lowercased. The value of such a key is replaced whatever its type.
SECRET_KEYS: frozenset[str] = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-portkey-api-key",
        "x-api-key",
        "api-key",
        "api_key",
        "apikey",
        "x-goog-api-key",
        "password",
        "secret",
        "client_secret",
        "access_token",
        "refresh_token",
    }
)

# Free text. Portkey keys have no recognisable prefix, so they are found by what names them:
# a header line, a JSON field (possibly escaped inside another string), an env assignment.
_NAMES = (
    r"authorization|proxy-authorization|x-portkey-api-key|portkey[_-]api[_-]key|x-api-key|"
    r"api[_-]?key|x-goog-api-key|password|client_secret|secret|access_token|refresh_token"
)
_NAMED = re.compile(
    rf"(?<![\w-])(?P<pre>(?:{_NAMES})(?P<kq>\\*[\"'])?\s*[:=]\s*(?P<q>\\*[\"'])?)(?!bearer\s)"
    r"(?(q)(?:(?!(?P=q))(?:\\.|.))+|(?:(?:basic|digest|token)\s+)?[^\s\"'\\&,;{}\[\]()<>]+)",
    re.IGNORECASE,
)
_BEARER = re.compile(r"\b(?P<pre>bearer\s+)(?!\[REDACTED\])[^\s\"'\\,;]+", re.IGNORECASE)
# Gemini takes its API key in the URL: `...:generateContent?key=AIza...`.
_QUERY = re.compile(r"(?P<pre>[?&](?:key|token)=)[^&#\s\"'\\]+", re.IGNORECASE)
# Provider keys with a known prefix (OpenAI, Anthropic, OpenRouter, Google).
_PREFIXED = re.compile(r"\b(?:sk-[A-Za-z0-9_-]{16,}|AIza[0-9A-Za-z_-]{30,})")


def _mask(match: re.Match[str]) -> str:
    return (match.groupdict().get("pre") or "") + REDACTED


def _mask_named(match: re.Match[str]) -> str:
    # `"api_key": 123` stays valid JSON: an unquoted value becomes a quoted string.
    quote = match["kq"] if match["q"] is None and match["kq"] else ""
    return f"{match['pre']}{quote}{REDACTED}{quote}"


# Lowercase substrings without which the pattern of the same family cannot match: cheap
# `in` tests let almost every string skip the (slow) regular expressions.
_NAMED_HINTS = (
    "authoriz", "api-key", "api_key", "apikey", "passw", "secret", "access_token", "refresh_token",
)  # fmt: skip
_FAMILIES: tuple[tuple[tuple[str, ...], re.Pattern[str], Callable[[re.Match[str]], str]], ...] = (
    (_NAMED_HINTS, _NAMED, _mask_named),
    (("bearer",), _BEARER, _mask),
    (("key=", "token="), _QUERY, _mask),
    (("sk-", "aiza"), _PREFIXED, _mask),
)


_ALL_HINTS = tuple(hint for hints, _, _ in _FAMILIES for hint in hints)


def might_contain_secret(text: str) -> bool:
    """False when neither `redact_text` nor a secret key could change `text` (fast check)."""
    return any(map(text.lower().__contains__, _ALL_HINTS))


def redact_text(text: str) -> str:
    """Mask bearer tokens, named credentials, key query parameters and provider keys."""
    low = text.lower()
    for hints, pattern, mask in _FAMILIES:
        if any(hint in low for hint in hints):
            text = pattern.sub(mask, text)
    return text


def redact(value: Any) -> Any:
    """A copy of `value` (dicts and lists walked recursively) with every secret masked."""
    return clean(value, strip_nul=False)


def clean(value: Any, *, strip_nul: bool = True, text: bool = True) -> Any:
    """One walk, one copy: mask the values of secret keys, remove NUL characters from keys
    and strings (`strip_nul`), and mask secrets inside strings (`text`)."""
    if isinstance(value, str):
        if strip_nul and "\x00" in value:
            value = value.replace("\x00", "")
        return redact_text(value) if text else value
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            if isinstance(key, str):
                if strip_nul and "\x00" in key:
                    key = key.replace("\x00", "")
                if key.lower() in SECRET_KEYS:
                    out[key] = REDACTED
                    continue
            out[key] = clean(item, strip_nul=strip_nul, text=text)
        return out
    if isinstance(value, list | tuple):
        return [clean(item, strip_nul=strip_nul, text=text) for item in value]
    return value
