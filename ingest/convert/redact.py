"""Masking of secrets inside logged bodies, metadata and free text (docs/design.md, invariant 5).

Portkey logs the provider request body, and clients put credentials into it (headers copied
into metadata, `api_key` fields, `Authorization: Bearer ...` strings, signed URLs). Nothing
that looks like a credential may reach Phoenix, a quarantine file or the terminal. Rules:
- a key that names a secret: its last word is key, token, secret, password, cookie,
  credential(s), authorization, auth, signature (any case and separator: `x-portkey-api-key`,
  `virtualKey`, `aws_secret_access_key`, `Set-Cookie`), or it holds api/private/access/secret
  key anywhere; a few well-known non-secrets (`session_key`, `cache_key`...) are exempt;
- `[name, value]` pairs and `{"name": ..., "value": ...}` headers whose name is such a key;
- credential shapes in any text: `Bearer`/`Basic` credentials (Basic also without a colon),
  AWS access key ids, JWTs, provider key prefixes (sk-, pk-, xai-, gsk_, hf_, AIza...);
- signed-URL query parameters (`sig`, `signature`, `X-Amz-*`, `X-Goog-*`, `token`, `key`...);
- user rules: key names (`--redact-key`, shell-style patterns) and value regexes
  (`--redact-pattern`).
`Redactor.scrub` is the one function writers of quarantine entries, reasons and log lines
call; each redactor counts what it masked.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable
from typing import Any

REDACTED = "[REDACTED]"

_SECRET_WORDS = frozenset(
    {
        "key", "keys", "token", "secret", "secrets", "password", "passwd", "pwd", "passphrase",
        "cookie", "cookies", "credential", "credentials", "authorization", "auth", "signature",
        "sig", "apikey",
    }
)  # fmt: skip
_SECRET_COMPOUNDS = ("apikey", "privatekey", "accesskey", "secretkey", "clientsecret")
# Keys that end in a secret word but are not secrets (the session key names a metadata key;
# a bare `key` is the name half of a key/value pair, whose value rule covers it).
_NOT_SECRET = frozenset(
    {
        "sessionkey", "cachekey", "idempotencykey", "partitionkey", "sortkey", "primarykey",
        "foreignkey", "keyid", "key", "tokenizer", "tokentype", "pagetoken", "nextpagetoken",
    }
)  # fmt: skip
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")

# Free text, where a name is followed by its value: a header line, a JSON field (possibly
# escaped inside another string), an env assignment. The name decides (`is_secret_key`).
_NAMED = re.compile(
    r"(?<![\w.-])(?P<pre>(?P<name>[A-Za-z_][\w.-]{0,80}?)(?P<kq>\\*[\"'])?\s*(?P<sep>[:=])\s*"
    r"(?P<q>\\*[\"'])?)(?!bearer\s|\[REDACTED\])"
    r"(?(q)(?:(?!(?P=q))(?:\\.|.))+|(?:(?:basic|digest|token)\s+)?[^\s\"'\\&,;{}\[\]()<>]+)",
    re.IGNORECASE,
)
_BEARER = re.compile(r"\b(?P<pre>bearer\s+)(?!\[REDACTED\])[^\s\"'\\,;]+", re.IGNORECASE)
# `Basic <base64>`, with or without the colon inside: a base64 word that is not English
# (it has a digit, `+`, `/`, `=` or a capital after its first letter).
_BASIC = re.compile(
    r"\b(?P<pre>basic\s+)(?!\[REDACTED\])(?=[A-Za-z0-9+/]*(?:[0-9+/=]|(?-i:[a-z][A-Z])))"
    r"[A-Za-z0-9+/]{6,}={0,2}",
    re.IGNORECASE,
)
_QUERY = re.compile(
    r"(?P<pre>[?&;](?:sig|signature|token|key|api[_-]?key|access_token|auth|password|"
    r"credential|x-amz-[\w-]+|x-goog-[\w-]+)=)[^&#\s\"'\\]+",
    re.IGNORECASE,
)
# Credentials with a recognisable shape: provider keys by prefix, AWS key ids, JWTs.
_SHAPES = re.compile(
    r"\b(?:(?:sk|pk|rk)-[A-Za-z0-9_-]{16,}|xai-[A-Za-z0-9]{20,}|gsk_[A-Za-z0-9]{20,}"
    r"|hf_[A-Za-z0-9]{20,}|pplx-[A-Za-z0-9]{20,}|r8_[A-Za-z0-9]{20,}|gh[pousr]_[A-Za-z0-9]{20,}"
    r"|github_pat_[A-Za-z0-9_]{20,}|xox[abposr]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{30,}"
    r"|ya29\.[0-9A-Za-z_-]{20,}|(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}"
    r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})"
)

# Cheap tests on the lowercased text without which a family cannot match, so that almost
# every string skips the substitutions. Each is an alternation of literals, which the regex
# engine scans for by their first characters (no IGNORECASE: that would disable it).
_SECRET_WORD_RE = (
    r"(?:key|keys|token|secret|secrets|passw[a-z]*|pwd|passphrase|cookie|cookies|credential"
    r"|credentials|authorization|authorisation|auth|signature|sig|apikey)"
)
# A quoted name (JSON, Python), an assignment, a separated name (`x-api-key:`), or a word
# that is never prose before a colon.
_NAMED_GATE = re.compile(
    rf"{_SECRET_WORD_RE}(?:\\*[\"']\s*[:=,]|\s*=)|[-_.]{_SECRET_WORD_RE}\s*:"
    r"|(?:passw[a-z]*|pwd|passphrase|secret|authori[sz]ation|apikey|cookies?)\s*:"
)
# Bare words that are ordinary prose before a colon ("the key: ..."); as JSON keys, in
# assignments or as part of a longer name they still name a secret.
_PROSE_WORDS = frozenset(
    {"key", "keys", "token", "auth", "sig", "signature", "credential", "credentials", "secrets"}
)  # fmt: skip
_SHAPE_GATE = re.compile(  # on the text itself: the shapes are case-sensitive
    r"sk-|pk-|rk-|xai-|gsk_|hf_|pplx-|r8_|ghp_|gho_|ghu_|ghs_|ghr_|github_pat_|xox|AIza|ya29\."
    r"|AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA|eyJ"
)
_QUERY_WORDS = ("sig", "signature", "token", "key", "auth", "password", "credential")


def _query_gate(text: str, low: str) -> bool:
    """A signed-URL parameter may be there: `x-amz-`, `x-goog-`, or `<word>=`. Bodies
    rarely hold `=`, and finding one character is much faster than a regex scan."""
    if "x-amz-" in low or "x-goog-" in low:
        return True
    at = low.find("=")
    while at != -1:
        if low[max(at - 10, 0) : at].endswith(_QUERY_WORDS):
            return True
        at = low.find("=", at + 1)
    return False


# Where a secret word occurs: a plain alternation of literals is fast to search for;
# `_NAMED_GATE` then looks at each occurrence only.
_SECRET_WORD_FIND = re.compile(
    r"key|token|secret|passw|pwd|passphrase|cookie|credential|authori|auth|sig"
)


def _named_gate(text: str, low: str) -> bool:
    for found in _SECRET_WORD_FIND.finditer(low):
        start = found.start()
        if _NAMED_GATE.match(low, start) or (start and _NAMED_GATE.match(low, start - 1)):
            return True
    return False


def _gate(pattern: re.Pattern[str]) -> Callable[[str, str], bool]:
    return lambda text, low: pattern.search(low) is not None


def _has(hint: str) -> Callable[[str, str], bool]:
    return lambda text, low: hint in low


def _words(name: str) -> list[str]:
    return [word.lower() for word in _WORD.findall(name)]


def _compact(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


class Redactor:
    """Secret rules (the built-in ones plus a user's) and a count of what they masked."""

    def __init__(self, keys: Iterable[str] = (), patterns: Iterable[str] = ()) -> None:
        self.user_keys = tuple(key.lower() for key in keys if key)
        self.user_patterns = tuple(re.compile(pattern) for pattern in patterns if pattern)
        self.masked = 0
        named = _gate(re.compile("[:=,]")) if self.user_keys else _named_gate
        self._families: tuple[tuple[Callable[[str, str], bool], re.Pattern[str], Any], ...] = (
            (named, _NAMED, self._mask_named),
            (_has("bearer"), _BEARER, self._mask),
            (_has("basic"), _BASIC, self._mask),
            (_query_gate, _QUERY, self._mask),
            (lambda text, low: _SHAPE_GATE.search(text) is not None, _SHAPES, self._mask),
        )
        self._secret_keys: dict[str, bool] = {}  # is_secret_key, by name: keys repeat

    def is_secret_key(self, name: str) -> bool:
        """Does this key (header, field or metadata name) name a secret?"""
        known = self._secret_keys.get(name)
        if known is None:
            known = self._secret_keys[name] = self._names_a_secret(name)
            if len(self._secret_keys) > 10_000:  # bounded: keys may be anything
                self._secret_keys.clear()
        return known

    def _names_a_secret(self, name: str) -> bool:
        compact = _compact(name)
        if self.user_keys and any(fnmatch.fnmatchcase(name.lower(), k) for k in self.user_keys):
            return True
        if not compact or compact in _NOT_SECRET:
            return False
        words = _words(name)
        if words and words[-1] in _SECRET_WORDS:
            return True
        return any(compound in compact for compound in _SECRET_COMPOUNDS)

    def might_contain_secret(self, text: str) -> bool:
        """False when `text_` could not change `text` (a fast check)."""
        if self.user_patterns or self.user_keys:
            return True
        low = text.lower()
        return any(gate(text, low) for gate, _, _ in self._families)

    def _mask(self, match: re.Match[str]) -> str:
        self.masked += 1
        return (match.groupdict().get("pre") or "") + REDACTED

    def _mask_named(self, match: re.Match[str]) -> str:
        name = match["name"]
        if not self.is_secret_key(name):
            return match[0]
        if match["kq"] is None and match["sep"] == ":" and name.lower() in _PROSE_WORDS:
            return match[0]  # "the key: use a map" is prose, not a credential
        self.masked += 1
        # `"api_key": 123` stays valid JSON: an unquoted value becomes a quoted string.
        quote = match["kq"] if match["q"] is None and match["kq"] else ""
        return f"{match['pre']}{quote}{REDACTED}{quote}"

    def _mask_user(self, match: re.Match[str]) -> str:
        self.masked += 1
        return REDACTED

    def text(self, text: str) -> str:
        """`text` with every credential shape, named secret and user pattern masked."""
        low = text.lower()
        for gate, pattern, mask in self._families:
            if gate(text, low):
                text = pattern.sub(mask, text)
        for pattern in self.user_patterns:
            text = pattern.sub(self._mask_user, text)
        return text

    def scrub(self, text: str) -> str:
        """Text fit to print or write: secrets masked, NULs removed. Quarantine entries,
        their reasons and log lines go through this."""
        return self.text(text.replace("\x00", ""))

    def clean(self, value: Any, *, strip_nul: bool = True, text: bool = True) -> Any:
        """One walk, one copy: mask the values of secret keys and `[name, value]` pairs,
        remove NUL characters from keys and strings (`strip_nul`), and mask secrets inside
        strings (`text`)."""
        if isinstance(value, str):
            if strip_nul and "\x00" in value:
                value = value.replace("\x00", "")
            return self.text(value) if text else value
        if isinstance(value, dict):
            out: dict[Any, Any] = {}
            header_name = value.get("name", value.get("key"))
            named_secret = isinstance(header_name, str) and self.is_secret_key(header_name)
            for key, item in value.items():
                if isinstance(key, str):
                    if strip_nul and "\x00" in key:
                        key = key.replace("\x00", "")
                    if self.is_secret_key(key) or (named_secret and key == "value"):
                        out[key] = REDACTED
                        self.masked += 1
                        continue
                out[key] = self.clean(item, strip_nul=strip_nul, text=text)
            return out
        if isinstance(value, list | tuple):
            if len(value) == 2 and isinstance(value[0], str) and self.is_secret_key(value[0]):
                self.masked += 1
                return [self.clean(value[0], strip_nul=strip_nul, text=text), REDACTED]
            return [self.clean(item, strip_nul=strip_nul, text=text) for item in value]
        return value


_DEFAULT = Redactor()


def scrub(text: str) -> str:
    """`Redactor.scrub` with the built-in rules: for quarantine files, reasons and logs."""
    return _DEFAULT.scrub(text)


def might_contain_secret(text: str) -> bool:
    return _DEFAULT.might_contain_secret(text)


def clean(value: Any, *, strip_nul: bool = True, text: bool = True) -> Any:
    return _DEFAULT.clean(value, strip_nul=strip_nul, text=text)
