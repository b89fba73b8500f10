"""Masking of secrets in records, bodies and free text (docs/design.md, invariant 5).

Portkey logs the provider request body, and clients put credentials into it (headers copied
into metadata, `api_key` fields, `Authorization: Bearer ...` strings, signed URLs, tool-call
arguments that are JSON inside a JSON string). Nothing that looks like a credential may reach
Phoenix, a quarantine file, a log line or the terminal.

`Redactor.clean` walks a decoded record: it decodes JSON held in strings (any depth, within
`MAX_DECODE_CHARS` and `MAX_NESTING`) and masks by key name and by value shape. Rules:
- key names (`is_secret_key`): a name whose last word is key, token, auth, signature or sig,
  or that holds password, passwd, pwd, passphrase, secret, credential(s), cookie(s) or
  authorization as any word, or api/private/access/secret key, client secret, access/refresh/
  auth/id token run together (any case and separator: `x-portkey-api-key`, `apiKey`,
  `db_password_old`, `Set-Cookie`); a few well-known non-secrets (`session_key`, `cache_key`,
  a bare `key`...) are exempt;
- `[name, value]` pairs and `{"name"|"key"|"header": ..., "value": ...}` objects whose name is
  such a key;
- in any text (`Redactor.text`): `name: value`, `name=value`, `name%3Dvalue` (the value quoted,
  escaped-quoted at any JSON depth, or bare; a cookie header's value is its whole line), URL
  userinfo (`http://user:X@host`), `Bearer`/`Basic` credentials, signed-URL query parameters,
  credential shapes (provider key prefixes, AWS key ids, JWTs);
- user rules: key names (`--redact-key`, shell-style) and value regexes (`--redact-pattern`).

Every scan is linear in the text: separators and prefixes are found by literal search, a name
is read backwards from its separator within `_NAME_WINDOW` characters, and every repetition
that can fail is bounded or skips past what it read. The one regex engine that can backtrack
is the user's own `--redact-pattern`.

Each redactor counts what it masked per output (`counts`: spans, quarantine, stderr, logs).
`active()` is the run's redactor (built-in plus user rules), used by writers outside the
conversion: quarantine, log lines, `Error:` lines.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

REDACTED = "[REDACTED]"
MAX_DECODE_CHARS = 4_000_000  # a JSON string longer than this is scanned as text
MAX_NESTING = 8  # JSON inside JSON strings, this many levels deep; deeper ones as text

# Secret words that name a secret wherever they are in a name, and those only at its end
# (`token_count`, `key_id` and `auth_mode` are not secrets).
_ANYWHERE = frozenset(
    {
        "password", "passwords", "passwd", "pwd", "passphrase", "secret", "secrets",
        "credential", "credentials", "cookie", "cookies", "authorization", "authorisation",
        "apikey", "apikeys",
    }
)  # fmt: skip
_LAST = frozenset({"key", "keys", "token", "auth", "signature", "sig"})
_COMPOUNDS = (
    "apikey", "privatekey", "accesskey", "secretkey", "clientsecret", "password", "passwd",
    "accesstoken", "refreshtoken", "authtoken", "idtoken", "sessiontoken", "bearertoken",
    "virtualkey", "signingkey", "masterkey", "encryptionkey", "adminkey", "servicekey",
)  # fmt: skip
# Names that end in a secret word but are not secrets (the session key names a metadata
# key; a bare `key` is the name half of a key/value pair, whose value rule covers it).
_NOT_SECRET = frozenset(
    {
        "sessionkey", "cachekey", "idempotencykey", "partitionkey", "sortkey", "primarykey",
        "foreignkey", "keyid", "key", "keys", "tokenizer", "tokentype", "pagetoken",
        "nextpagetoken",
    }
)  # fmt: skip
# Words after a secret word that only qualify it (`token_old`, `key_b64`).
_QUALIFIERS = frozenset(
    {
        "old", "new", "value", "val", "backup", "bak", "prod", "dev", "test", "staging",
        "current", "previous", "prev", "primary", "secondary", "raw", "str", "string", "b64",
        "base64", "enc", "encoded", "hex", "orig", "original", "tmp", "temp", "main", "alt",
        "override", "default", "env", "v",
    }
)  # fmt: skip
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")
_NAME_CHARS = 128  # a longer key is judged by its first and last 128 characters
# Bare words that are ordinary prose before a colon ("the key: ..."); as JSON keys, in
# assignments or as part of a longer name they still name a secret.
# Credential(s) and secret(s) are not among them: like password, they name a secret wherever
# they stand (the cost of "Credentials: see the vault" is one masked word).
_PROSE_WORDS = frozenset({"key", "keys", "token", "tokens", "auth", "sig", "signature"})
# Keys of a `{"name": ..., "value": ...}` header object that hold the header's name.
_HEADER_NAME_KEYS = ("name", "key", "header", "header_name", "headerName", "field")

# ---- text: named values ----------------------------------------------------------------------
_SEP = re.compile(r"[:=]|%3[dDaA]")
_NAME_WINDOW = 160
# Read backwards from a separator (on the reversed text): blanks, a closing quote with its
# escaping backslashes, the name.
_REV_NAME = re.compile(r"[ \t]{0,8}(?P<kq>[\"'][\\]{0,15}|[27]2%)?(?P<name>[\w.\-]{1,128})")
# Before a `"value"` key (reversed): `"name": "<header>", ` at any escaping depth.
_REV_HEADER = re.compile(
    r"(?:[\"'][\\]{0,15})?[ \t]{0,8},[ \t]{0,8}[\"'][\\]{0,15}(?P<hdr>[^\"'\\]{1,128})"
    r"[\"'][\\]{0,15}[ \t]{0,8}:[ \t]{0,8}[\"'][\\]{0,15}(?P<key>[A-Za-z_]{1,12})"
)
_VALUE_START = re.compile(r"[ \t]{0,16}(?P<q>[\\]{0,15}[\"'])?")
_BARE_VALUE = re.compile(
    r"(?P<scheme>(?:basic|digest|token|bearer)[ \t]{1,8})?[^\s\"'\\&,;{}\[\]()<>]+", re.I
)
_LINE_VALUE = re.compile(r"[^\r\n\"'\\]+")  # a cookie header's value: all its pairs
_PERCENT_END = re.compile(r"%2[267cC]|%3[bB]")  # &, ", ', comma, ; percent-encoded
_PERCENT_LEAD = re.compile(r"(?:%20|\+){0,8}(?:%2[27])?")

# ---- text: shapes ----------------------------------------------------------------------------
_BEARER = re.compile(r"\b(?P<pre>bearer[ \t]{1,16})(?!\[REDACTED\])[^\s\"'\\,;]+", re.I)
# `Basic <base64>`, with or without the colon inside: a base64 word that is not English (a
# digit, `+`, `/`, `=` or a capital after a small letter within its first 200 characters).
_BASIC = re.compile(
    r"\b(?P<pre>[Bb][Aa][Ss][Ii][Cc][ \t]{1,16})"
    r"(?=[A-Za-z0-9+/]{0,200}?(?:[0-9+/=]|[a-z][A-Z]))[A-Za-z0-9+/]{6,}={0,2}"
)
_QUERY = re.compile(
    r"(?P<pre>[?&;](?:sig|signature|token|key|api[_-]?key|access_token|auth|password|"
    r"credential|x-amz-[\w-]{1,64}|x-goog-[\w-]{1,64})=)(?!\[REDACTED\])[^&#\s\"'\\]+",
    re.I,
)
# Provider keys by prefix and AWS key ids: a failed attempt reads at most the shape's
# minimum length, a successful one is skipped past.
_SHAPES = re.compile(
    r"\b(?:(?:sk|pk|rk)-[A-Za-z0-9_-]{16,}|xai-[A-Za-z0-9]{20,}|gsk_[A-Za-z0-9]{20,}"
    r"|hf_[A-Za-z0-9]{20,}|pplx-[A-Za-z0-9]{20,}|r8_[A-Za-z0-9]{20,}|gh[pousr]_[A-Za-z0-9]{20,}"
    r"|github_pat_[A-Za-z0-9_]{20,}|xox[abposr]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{30,}"
    r"|ya29\.[0-9A-Za-z_-]{20,}|(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16})"
)
_SHAPE_GATE = re.compile(
    r"sk-|pk-|rk-|xai-|gsk_|hf_|pplx-|r8_|ghp_|gho_|ghu_|ghs_|ghr_|github_pat_|xox|AIza|ya29\."
    r"|AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA"
)
# A JWT: tried at each `eyJ`; when it fails, no `eyJ` before the end of the first segment
# can succeed, so the search goes on from there.
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}+\.eyJ[A-Za-z0-9_-]{8,}+\.[A-Za-z0-9_-]{8,}+")
_SEGMENT = re.compile(r"[A-Za-z0-9_-]*+")
_USERINFO = re.compile(r"[^\s/?#@\"'<>\\]{1,256}+@")
_WORDISH = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
# Without one of these (lowercased), no named rule can match.
_WORD_GATE = re.compile(
    r"key|token|secret|passw|pwd|passphrase|cookie|credential|auth|sig|bearer|basic"
)


def _words(name: str) -> list[str]:
    return [word.lower() for word in _WORD.findall(name)]


class Redactor:
    """Secret rules (the built-in ones plus a user's) and a count of what they masked."""

    def __init__(self, keys: Iterable[str] = (), patterns: Iterable[str] = ()) -> None:
        self.user_keys = tuple(key.lower() for key in keys if key)
        self.user_patterns = tuple(re.compile(pattern) for pattern in patterns if pattern)
        self.counts: Counter[str] = Counter()  # masked values per output
        self._secret_keys: dict[str, bool] = {}  # is_secret_key, by short name: keys repeat

    @property
    def masked(self) -> int:
        return sum(self.counts.values())

    # ---- key names ---------------------------------------------------------------------------

    def is_secret_key(self, name: str) -> bool:
        """Does this key (header, field or metadata name) name a secret?"""
        if len(name) > 2 * _NAME_CHARS:  # judged by its ends, never cached
            return self._names_a_secret(name[:_NAME_CHARS]) or self._names_a_secret(
                name[-_NAME_CHARS:]
            )
        known = self._secret_keys.get(name)
        if known is None:
            known = self._secret_keys[name] = self._names_a_secret(name)
            if len(self._secret_keys) > 10_000:  # bounded: keys may be anything
                self._secret_keys.clear()
        return known

    def _names_a_secret(self, name: str) -> bool:
        low = name.lower()
        if self.user_keys and any(fnmatch.fnmatchcase(low, k) for k in self.user_keys):
            return True
        compact = _NOT_ALNUM.sub("", low)
        if not compact or compact in _NOT_SECRET:
            return False
        words = _words(name)
        if not _ANYWHERE.isdisjoint(words):
            return True
        while words and (words[-1] in _QUALIFIERS or words[-1].isdigit()):
            words.pop()  # `token_old`, `api_key_2`: the last word that says what it is
        if words and words[-1] in _LAST and "".join(words) not in _NOT_SECRET:
            return True
        return any(compound in compact for compound in _COMPOUNDS)

    # ---- text --------------------------------------------------------------------------------

    def might_contain_secret(self, text: str) -> bool:
        """False when `text` could not change `text` (a fast, linear check)."""
        if self.user_patterns or self.user_keys:
            return True
        return (
            _WORD_GATE.search(text.lower()) is not None
            or _SHAPE_GATE.search(text) is not None
            or "eyJ" in text
            or ("://" in text and "@" in text)
        )

    def text(self, text: str, where: str = "spans") -> str:
        """`text` with every named secret, credential shape and user pattern masked."""
        text, masked = self._text(text)
        if masked:
            self.counts[where] += masked
        return text

    def scrub(self, text: str, where: str = "spans") -> str:
        """Text fit to print or write: secrets masked, NULs removed."""
        return self.text(text.replace("\x00", ""), where)

    def _text(self, text: str) -> tuple[str, int]:
        masked = 0
        if self.might_contain_secret(text):
            low = text.lower()
            if _WORD_GATE.search(low) or self.user_keys:
                text, masked = self._named(text)
                low = text.lower()
            if "bearer" in low:
                text, n = _BEARER.subn(_keep_pre, text)
                masked += n
            if "basic" in low:
                text, n = _BASIC.subn(_keep_pre, text)
                masked += n
            if "=" in text:
                text, n = _QUERY.subn(_keep_pre, text)
                masked += n
            if _SHAPE_GATE.search(text):
                text, n = _SHAPES.subn(REDACTED, text)
                masked += n
            if "eyJ" in text:
                text, n = _jwts(text)
                masked += n
            if "://" in text and "@" in text:
                text, n = _userinfo(text)
                masked += n
        for pattern in self.user_patterns:
            text, n = pattern.subn(REDACTED, text)
            masked += n
        return text, masked

    def _named(self, text: str) -> tuple[str, int]:
        """`name: value`, `name=value`, `name%3Dvalue` whose name is a secret's: one pass
        over the separators; each reads its name backwards within a bounded window and,
        only when masked, its value forwards (the scan then goes on after the value)."""
        out: list[str] = []
        done = 0  # text before this is in `out`
        pos = 0
        masked = 0
        anyname = bool(self.user_keys)  # a user's key may be any name
        while (sep := _SEP.search(text, pos)) is not None:
            pos = sep.end()
            start = sep.start()
            low = max(start - _NAME_WINDOW, done)
            # With the built-in rules a name holds a secret word: most separators have
            # none in the window before them and are passed by one bounded search.
            if not anyname and _WORD_GATE.search(text[low:start].lower()) is None:
                continue
            window = text[low:start][::-1]
            found = _REV_NAME.match(window)
            if found is None:
                continue
            name = found["name"][::-1]
            if window[found.end() : found.end() + 1] == "%":  # `%3Fapi_key`: not `3Fapi_key`
                name = name[2:]
            quoted_name = found["kq"] is not None
            if not self.is_secret_key(name) and not (
                name in ("value", "values") and self._header_before(window, found.end())
            ):
                continue
            if sep[0] == ":" and not quoted_name and name.lower() in _PROSE_WORDS:
                continue  # "the key: use a map" is prose, not a credential
            value = _value_span(text, pos, name, percent=sep[0] != ":" and sep[0] != "=")
            if value is None:
                continue
            head, end, bare = value
            # `"api_key": 123` stays valid JSON: a bare value becomes a quoted string.
            quote = found["kq"][::-1] if bare and quoted_name else ""
            out.append(text[done:head])
            out.append(f"{quote}{REDACTED}{quote}")
            masked += 1
            done = pos = end
        if not masked:
            return text, 0
        out.append(text[done:])
        return "".join(out), masked

    def _header_before(self, window: str, at: int) -> bool:
        """Is this `"value"` the second half of a `{"name": "<secret header>", ...}` object
        (read backwards from `at` in the reversed window)?"""
        header = _REV_HEADER.match(window, at)
        return (
            header is not None
            and header["key"][::-1] in _HEADER_NAME_KEYS
            and self.is_secret_key(header["hdr"][::-1])
        )

    # ---- structure ---------------------------------------------------------------------------

    def clean(
        self, value: Any, *, strip_nul: bool = True, text: bool = True, where: str = "spans"
    ) -> Any:
        """One walk, one copy: mask the values of secret keys, `[name, value]` pairs and
        header objects, decode JSON held in strings and walk it too, remove NUL characters
        from keys and strings (`strip_nul`), and mask secrets inside strings (`text`)."""
        masked = [0]
        cleaned = self._walk(value, strip_nul, text, 0, masked)
        if masked[0]:
            self.counts[where] += masked[0]
        return cleaned

    def _walk(self, value: Any, strip_nul: bool, text: bool, depth: int, masked: list[int]) -> Any:
        if isinstance(value, str):
            return self._string(value, strip_nul, text, depth, masked)
        if isinstance(value, dict):
            return self._object(value, strip_nul, text, depth, masked)
        if isinstance(value, list | tuple):
            if len(value) == 2 and isinstance(value[0], str) and self.is_secret_key(value[0]):
                masked[0] += 1
                return [self._walk(value[0], strip_nul, text, depth, masked), REDACTED]
            return [self._walk(item, strip_nul, text, depth, masked) for item in value]
        return value

    def _object(
        self, value: dict[Any, Any], strip_nul: bool, text: bool, depth: int, masked: list[int]
    ) -> dict[Any, Any]:
        named_secret = any(
            isinstance(name := value.get(key), str) and self.is_secret_key(name)
            for key in _HEADER_NAME_KEYS
            if key in value
        )
        out: dict[Any, Any] = {}
        for key, item in value.items():
            if isinstance(key, str):
                if strip_nul and "\x00" in key:
                    key = key.replace("\x00", "")
                if self.is_secret_key(key) or (named_secret and key in ("value", "values")):
                    out[key] = REDACTED
                    masked[0] += 1
                    continue
            out[key] = self._walk(item, strip_nul, text, depth, masked)
        return out

    def _string(
        self, value: str, strip_nul: bool, text: bool, depth: int, masked: list[int]
    ) -> str:
        if strip_nul and "\x00" in value:
            value = value.replace("\x00", "")
        if not text:
            return value
        decoded = _json_inside(value, depth)
        if decoded is not None:
            before = masked[0]
            cleaned = self._walk(decoded, strip_nul, text, depth + 1, masked)
            if masked[0] == before:
                return value
            return json.dumps(cleaned, ensure_ascii=False)
        value, n = self._text(value)
        masked[0] += n
        return value


def _json_inside(value: str, depth: int) -> Any:
    """The object or array a string holds as JSON text (a tool call's arguments, a body
    stored as text), within the caps; None otherwise."""
    if depth >= MAX_NESTING or len(value) > MAX_DECODE_CHARS or len(value) < 2:
        return None
    head = value.lstrip()[:1]
    if head not in ("{", "[") or value.rstrip()[-1:] not in ("}", "]"):
        return None
    try:
        decoded = json.loads(value)
    except (ValueError, RecursionError):
        return None
    return decoded if isinstance(decoded, dict | list) else None


def _value_span(text: str, pos: int, name: str, percent: bool) -> tuple[int, int, bool] | None:
    """Where the value after a separator at `pos` starts and ends, and whether it is bare
    (unquoted); None when there is no value."""
    if percent:  # `api_key%3D%22value%22`: an encoded quote or blank first
        pos = _PERCENT_LEAD.match(text, pos).end()  # type: ignore[union-attr]
    lead = _VALUE_START.match(text, pos)
    assert lead is not None  # every part is optional
    quote = lead["q"]
    start = lead.end()
    if quote is not None:
        end = _closing_quote(text, start, quote[-1], len(quote) - 1)
        return (start, end, False) if end > start else None
    if text.startswith(REDACTED, start):
        return None
    if name.lower().endswith(("cookie", "cookies")):
        bare = _LINE_VALUE.match(text, start)
        scheme = None
    else:
        bare = _BARE_VALUE.match(text, start)
        scheme = bare["scheme"] if bare is not None else None
    if bare is None:
        return None
    end = bare.end()
    if scheme and scheme[:6].lower() == "bearer":  # `Bearer [REDACTED]`, as in free text
        start += len(scheme)
    if percent and (cut := _PERCENT_END.search(text, start, end)) is not None:
        end = cut.start()
    return (start, end, True) if end > start else None


def _closing_quote(text: str, start: int, quote: str, escapes: int) -> int:
    """Where a value opened by `quote` after `escapes` backslashes ends (the text's end if
    it never does). At JSON depth d a quote is escaped by 2^d - 1 backslashes; the closing
    one of the value has exactly `escapes` modulo the next level's."""
    modulo = 2 * (escapes + 1)
    at = start
    while (found := text.find(quote, at)) != -1:
        run = 0
        while found - run - 1 >= start and text[found - run - 1] == "\\":
            run += 1
        if run % modulo == escapes:
            return found - escapes
        at = found + 1
    return len(text)


def _keep_pre(match: re.Match[str]) -> str:
    return match["pre"] + REDACTED


def _jwts(text: str) -> tuple[str, int]:
    out: list[str] = []
    done = pos = masked = 0
    while (at := text.find("eyJ", pos)) != -1:
        if at and text[at - 1] in _WORDISH:
            pos = at + 3
            continue
        found = _JWT.match(text, at)
        if found is None:  # skip the whole first segment: no later start in it can match
            segment = _SEGMENT.match(text, at + 3)
            pos = segment.end() if segment else at + 3
            continue
        out += [text[done:at], REDACTED]
        masked += 1
        done = pos = found.end()
    if not masked:
        return text, 0
    out.append(text[done:])
    return "".join(out), masked


def _userinfo(text: str) -> tuple[str, int]:
    """`scheme://user:password@host`: the password (or a lone token) masked."""
    out: list[str] = []
    done = pos = masked = 0
    while (at := text.find("://", pos)) != -1:
        pos = at + 3
        found = _USERINFO.match(text, pos)
        if found is None:
            continue
        info = found[0][:-1]
        if info == REDACTED or info.endswith(":" + REDACTED):
            continue
        user, colon, _ = info.partition(":")
        out += [text[done:pos], f"{user}:{REDACTED}@" if colon else f"{REDACTED}@"]
        masked += 1
        done = pos = found.end()
    if not masked:
        return text, 0
    out.append(text[done:])
    return "".join(out), masked


# ---- the run's rules -----------------------------------------------------------------------------

_BUILT_IN = Redactor()
_ACTIVE = [_BUILT_IN]


def use_rules(redactor: Redactor | None) -> None:
    """Make `redactor` the run's rules for every writer (None: the built-in rules)."""
    _ACTIVE[0] = redactor or Redactor()


def active() -> Redactor:
    """The run's redactor: quarantine entries, log lines and `Error:` lines go through it."""
    return _ACTIVE[0]


def scrub(text: str) -> str:
    """`Redactor.scrub` with the built-in rules, uncounted: for quotes inside reasons and
    warnings, which their writers scrub again with the run's rules."""
    return _BUILT_IN.scrub(text)
