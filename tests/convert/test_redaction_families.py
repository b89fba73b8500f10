"""The bypass families of issue 22, each as a property: Hypothesis writes variants of the
family (names in every case and separator, positions, nesting, encodings) around a secret,
and the secret must not survive the text rules (`Redactor.text`: quarantine lines, reasons,
log lines), the structure walk (`Redactor.clean`: spans) nor a converted span. Then the cost:
1 MB of adversarial text of each pattern family is redacted in linear time."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ingest.convert.records import parse_record
from ingest.convert.redact import Redactor
from ingest.convert.spans import ConversionOptions, make_resource, span_to_dict, to_span

PROPERTY = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
secrets = st.text(ALNUM, min_size=10, max_size=24).map(lambda s: f"Lk{s}")
prose = st.sampled_from(["", "see the log. ", "Note: retry later, ", "ok ", "{}\n", "a=1, "])

SECRET_WORDS = [
    "password", "passwd", "secret", "api key", "apiKey", "private key", "access token",
    "client secret", "credential", "credentials", "authorization", "auth token", "token",
    "session token", "pwd", "passphrase", "x api key", "virtual key",
]  # fmt: skip
HEADERS = ["Authorization", "X-Api-Key", "Cookie", "x-portkey-virtual-key",
           "Proxy-Authorization", "X-Auth-Token", "apiKey"]  # fmt: skip
# Bare words that are prose before a colon ("the token: ..."), not names (redact.py).
PROSE_WORDS = {"token"}
AROUND = ["", "db", "my", "user", "primary", "x portkey", "OPENAI"]
AFTER = ["", "old", "value", "2", "backup", "prod"]


def _styled(words: list[str], style: str) -> str:
    parts = [part for word in words for part in word.split()]
    if style == "camel":
        return parts[0].lower() + "".join(p[:1].upper() + p[1:] for p in parts[1:])
    if style == "pascal":
        return "".join(p[:1].upper() + p[1:] for p in parts)
    if style == "upper":
        return "_".join(parts).upper()
    return {"snake": "_", "kebab": "-", "dot": "."}[style].join(parts)


secret_names = st.builds(
    lambda before, word, after, style: _styled([w for w in (before, word, after) if w], style),
    st.sampled_from(AROUND),
    st.sampled_from(SECRET_WORDS),
    st.sampled_from(AFTER),
    st.sampled_from(["snake", "kebab", "dot", "camel", "pascal", "upper"]),
)


def masks(secret: str, text: str) -> None:
    """The secret is gone from the text rules and from the structure walk of a string."""
    redactor = Redactor()
    assert secret not in redactor.text(text), text
    assert secret not in json.dumps(redactor.clean({"content": text})), text
    assert redactor.counts["spans"] >= 2


def span_text(record: dict[str, Any]) -> str:
    options = ConversionOptions(project="p")
    base = {"id": "log-1", "created_at": "2026-07-25T11:14:18.123Z"}
    span = to_span(parse_record({**base, **record}), options, make_resource("p"))
    return json.dumps(span_to_dict(span))


@PROPERTY
@given(
    header=st.sampled_from(["Cookie", "cookie", "COOKIE", "Set-Cookie", "set-cookie"]),
    before=st.lists(st.from_regex(r"[a-z_]{1,8}=[A-Za-z0-9]{1,8}", fullmatch=True), max_size=4),
    name=st.sampled_from(["sessionid", "sid", "_ga", "csrftoken", "remember_me", "x"]),
    secret=secrets,
    sep=st.sampled_from(["; ", ";"]),
    lead=prose,
)
def test_every_pair_of_a_cookie_header(
    header: str, before: list[str], name: str, secret: str, sep: str, lead: str
) -> None:
    value = sep.join([*before, f"{name}={secret}", "theme=dark"])
    masks(secret, f"{lead}{header}: {value}\nnext line")
    record = {"metadata": {"headers": {header: value}}, "request": {"headers": [[header, value]]}}
    assert secret not in span_text(record)


@PROPERTY
@given(name=secret_names, secret=secrets, form=st.integers(0, 4), lead=prose)
def test_secret_words_in_any_case_and_position_of_a_name(
    name: str, secret: str, form: int, lead: str
) -> None:
    assume(not (form == 1 and name.lower() in PROSE_WORDS))
    text = [
        f"{name}={secret}",
        f"{name}: {secret}",
        json.dumps({name: secret}),
        f"export {name}='{secret}'",
        json.dumps({"wrapped": json.dumps({name: secret})}),
    ][form]
    masks(secret, lead + text)
    assert secret not in span_text({"metadata": {name: secret}, "request": {name: secret}})


@PROPERTY
@given(
    scheme=st.sampled_from(["http", "https", "postgres", "redis", "socks5", "ftp"]),
    user=st.from_regex(r"[a-z][a-z0-9_.-]{0,10}", fullmatch=True),
    secret=secrets,
    host=st.sampled_from(["proxy", "db.internal:5432", "10.0.0.7", "example.com"]),
    path=st.sampled_from(["", "/", "/v1/chat?x=1", "/db"]),
    lead=prose,
    with_user=st.booleans(),
)
def test_url_userinfo(
    scheme: str, user: str, secret: str, host: str, path: str, lead: str, with_user: bool
) -> None:
    info = f"{user}:{secret}" if with_user else secret
    url = f"{scheme}://{info}@{host}{path}"
    masks(secret, f"{lead}connect to {url} now")
    assert secret not in span_text({"metadata": {"upstream": url}})


@PROPERTY
@given(
    name=secret_names,
    secret=secrets,
    tool=st.sampled_from(["login", "call_api", "get_weather"]),
    depth=st.integers(1, 3),
)
def test_tool_call_arguments_and_json_nested_in_strings(
    name: str, secret: str, tool: str, depth: int
) -> None:
    inner: Any = {name: secret, "city": "Paris"}
    for _ in range(depth):  # JSON inside a JSON string, `depth` strings deep
        inner = json.dumps({"payload": inner} if not isinstance(inner, dict) else inner)
    call = {"id": "c1", "type": "function", "function": {"name": tool, "arguments": inner}}
    response = {"choices": [{"message": {"role": "assistant", "tool_calls": [call]}}]}
    redactor = Redactor()
    assert secret not in json.dumps(redactor.clean(response))
    assert secret not in redactor.text(json.dumps(response)), "as text (a quarantined line)"
    assert secret not in span_text({"response": response, "request": {"messages": []}})


@PROPERTY
@given(
    name=secret_names,
    secret=secrets,
    lead=st.sampled_from(["", "q=1%26", "https%3A%2F%2Fh%2Fcb%3F", "redirect="]),
    tail=st.sampled_from(["", "%26next%3D1", "%22%7D", " and more"]),
    quoted=st.booleans(),
)
def test_percent_encoded_pairs(name: str, secret: str, lead: str, tail: str, quoted: bool) -> None:
    pair = f"%22{quote(name)}%22%3A%22{secret}%22" if quoted else f"{quote(name)}%3D{secret}"
    masks(secret, f"{lead}{pair}{tail}")


@PROPERTY
@given(
    name_key=st.sampled_from(["name", "key", "header", "header_name", "headerName", "field"]),
    header=st.sampled_from(HEADERS),
    secret=secrets,
    value_key=st.sampled_from(["value", "values"]),
)
def test_header_value_objects(name_key: str, header: str, secret: str, value_key: str) -> None:
    headers = [{name_key: "Accept", value_key: "json"}, {name_key: header, value_key: secret}]
    redactor = Redactor()
    cleaned = redactor.clean({"headers": headers})
    assert secret not in json.dumps(cleaned)
    assert cleaned["headers"][0][value_key] == "json", "a header that is no secret stays"
    assert secret not in redactor.text(json.dumps({"headers": headers}))
    assert secret not in span_text({"metadata": {"headers": headers}})


@PROPERTY
@given(
    name=secret_names,
    secret=secrets,
    before=st.sampled_from(["I set ", "Debug: ", "(", "then ", "- ", ""]),
    after=st.sampled_from(["", " and retried", ", thanks", ")", ".\nNext"]),
    sep=st.sampled_from(["=", ": ", " = ", ":"]),
)
def test_name_value_in_prose(name: str, secret: str, before: str, after: str, sep: str) -> None:
    assume(not (":" in sep and name.lower() in PROSE_WORDS))  # "the token: ..." is prose
    masks(secret, f"{before}{name}{sep}{secret}{after}")
    request = {"messages": [{"role": "user", "content": f"{before}{name}{sep}{secret}{after}"}]}
    assert secret not in span_text({"request": request})


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ('{"max_tokens": 5, "prompt_tokens": 3, "cached_tokens": 1}', 'cached_tokens": 1'),
        ("The key point: use a map.", "use a map"),
        ("token_count=12 and key_id=7", "token_count=12"),
        ("see http://example.com/a?b=1 (no userinfo)", "http://example.com/a?b=1"),
        ('{"name": "Accept", "value": "application/json"}', "application/json"),
    ],
)
def test_ordinary_text_is_left_alone(text: str, kept: str) -> None:
    redactor = Redactor()
    assert kept in redactor.text(text)
    assert kept in json.dumps(redactor.clean(json.loads(text) if text[0] == "{" else text))


ADVERSARIAL = {
    "secret word repeated": "password",
    "secret word and separator repeated": "password=x ",
    "quoted name repeated": "'password':'",
    "bare key repeated": "key=",
    "JWT-like segments": "eyJaaaaaaaaa-",
    "provider prefix repeated": "sk-",
    "bearer repeated": "Bearer ",
    "cookie header repeated": "Cookie: a=1; ",
    "userinfo without @": "http://admin:",
    "percent pairs": "api_key%3D",
    "escaped quotes": 'password=\\\\"',
    "nested JSON openers": '{"a":"',
}


@pytest.mark.parametrize("unit", ADVERSARIAL.values(), ids=ADVERSARIAL.keys())
def test_a_megabyte_of_adversarial_text_is_redacted_in_linear_time(unit: str) -> None:
    text = (unit * (1_000_000 // len(unit) + 1))[:1_000_000]
    started = time.perf_counter()
    Redactor().scrub(text)
    elapsed = time.perf_counter() - started
    # Generous for a loaded machine; the quadratic rules this replaced took hours.
    assert elapsed < 5, f"{elapsed:.1f} s for 1 MB"
