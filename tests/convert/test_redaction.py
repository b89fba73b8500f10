"""Redaction rules (convert/redact.py): what is masked in bodies, metadata and free text,
what is left alone, user rules, and the count a span reports."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ingest.convert.records import parse_record
from ingest.convert.redact import REDACTED, Redactor, scrub
from ingest.convert.spans import ConversionOptions, make_resource, span_to_dict, to_span

BUILT_IN = Redactor()  # the built-in rules only


def redact(value: Any) -> Any:
    """A copy of `value` (dicts and lists walked recursively) with every secret masked."""
    return BUILT_IN.clean(value, strip_nul=False)


def redact_text(text: str) -> str:
    """Bearer and basic credentials, named secrets, signed-URL parameters, key shapes masked."""
    return BUILT_IN.text(text)


PROJECT = "test-project"
BASE: dict[str, Any] = {"id": "log-1", "created_at": "2026-07-25T11:14:18.123Z"}


def attrs(options: ConversionOptions | None = None, **fields: Any) -> dict[str, Any]:
    options = options or ConversionOptions(project=PROJECT)
    span = to_span(parse_record({**BASE, **fields}), options, make_resource(options.project))
    return span_to_dict(span)["attributes"]


def test_redact_returns_a_masked_copy() -> None:
    original = {"Authorization": "Bearer abc", "items": [{"SECRET": 1}, "Bearer xyz"], "n": 3}
    assert redact(original) == {
        "Authorization": REDACTED,
        "items": [{"SECRET": REDACTED}, "Bearer [REDACTED]"],
        "n": 3,
    }
    assert original["Authorization"] == "Bearer abc"


@pytest.mark.parametrize(
    "key",
    ["x-portkey-api-key", "virtualKey", "virtual_key", "aws_secret_access_key", "Set-Cookie",
     "cookie", "AWS_SESSION_TOKEN", "client-secret", "PASSWORD", "db_passwd", "credentials",
     "Proxy-Authorization", "x-amz-signature", "privateKey", "private_key_pem", "OPENAI_API_KEY",
     "apiKey", "auth", "refresh_token", "x-goog-api-key", "signature"],
)  # fmt: skip
def test_keys_that_name_a_secret_are_masked_in_any_case_and_separator(key: str) -> None:
    assert redact({key: "v4lue", "keep": 1}) == {key: REDACTED, "keep": 1}


@pytest.mark.parametrize(
    "key",
    ["max_tokens", "prompt_tokens", "promptTokenCount", "cached_tokens", "session_key",
     "cache_key", "key", "keyboard", "monkey", "tokenizer", "author", "design", "token_count"],
)  # fmt: skip
def test_keys_that_do_not_name_a_secret_are_kept(key: str) -> None:
    assert redact({key: "v"}) == {key: "v"}


def test_header_pairs_are_masked_by_their_name() -> None:
    body = {
        "headers": [["Authorization", "Bearer-less-value"], ["Accept", "json"]],
        "har": [{"name": "X-Api-Key", "value": "abc"}, {"name": "Accept", "value": "json"}],
        "kv": [{"key": "Cookie", "value": "s=1"}],
    }
    assert redact(body) == {
        "headers": [["Authorization", REDACTED], ["Accept", "json"]],
        "har": [{"name": "X-Api-Key", "value": REDACTED}, {"name": "Accept", "value": "json"}],
        "kv": [{"key": "Cookie", "value": REDACTED}],
    }


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("Authorization: Bearer abc.def", "Authorization: Bearer [REDACTED]"),
        ("x-portkey-api-key: fake-key-0000", "x-portkey-api-key: [REDACTED]"),
        ("PORTKEY_API_KEY=fake-key-0000", "PORTKEY_API_KEY=[REDACTED]"),
        ('{"api_key": "abc", "x": 1}', '{"api_key": "[REDACTED]", "x": 1}'),
        ('{"password": 1234}', '{"password": "[REDACTED]"}'),
        ('{\\"x-api-key\\": \\"abc\\"}', '{\\"x-api-key\\": \\"[REDACTED]\\"}'),
        (
            '{"virtualKey": "vk-1", "max_tokens": 5}',
            '{"virtualKey": "[REDACTED]", "max_tokens": 5}',
        ),
        ("Set-Cookie: session=abc", "Set-Cookie: [REDACTED]"),
        ("Authorization: Basic dXNlcjpwYXNz", "Authorization: [REDACTED]"),
        ("sent Basic dXNlcg== upstream", "sent Basic [REDACTED] upstream"),  # no colon inside
        ("Basic information about it", "Basic information about it"),
        ("id AKIAZZZZZZZZZZZZZZZZ here", "id [REDACTED] here"),
        ("ASIAZZZZZZZZZZZZZZZZ", "[REDACTED]"),
        ("my key is sk-proj-ABCDEFGHIJKLMNOPQRST", "my key is [REDACTED]"),
        ("pk-live-ABCDEFGHIJKLMNOPQRST", "[REDACTED]"),
        ("xai-ABCDEFGHIJKLMNOPQRSTUV gsk_ABCDEFGHIJKLMNOPQRSTUV", "[REDACTED] [REDACTED]"),
        (
            "https://h/m:generateContent?key=AIza1&alt=sse",
            "https://h/m:generateContent?key=[REDACTED]&alt=sse",
        ),
        (
            "https://b.s3.amazonaws.com/o?X-Amz-Credential=c1&X-Amz-Signature=s1&part=2",
            "https://b.s3.amazonaws.com/o?X-Amz-Credential=[REDACTED]"
            "&X-Amz-Signature=[REDACTED]&part=2",
        ),
        (
            "https://storage.googleapis.com/b/o?X-Goog-Signature=s2&alt=media",
            "https://storage.googleapis.com/b/o?X-Goog-Signature=[REDACTED]&alt=media",
        ),
        (
            "https://acct.blob.core.windows.net/c?sv=2024&sig=s3",
            "https://acct.blob.core.windows.net/c?sv=2024&sig=[REDACTED]",
        ),
        ("https://h/cb?token=t1&x=1", "https://h/cb?token=[REDACTED]&x=1"),
        ("max_tokens=5, nothing secret here", "max_tokens=5, nothing secret here"),
        ('{"prompt_tokens": 3, "key": "env"}', '{"prompt_tokens": 3, "key": "env"}'),
    ],
)
def test_redact_text(text: str, masked: str) -> None:
    assert redact_text(text) == masked


def test_user_rules_mask_keys_by_pattern_and_values_by_regex_and_are_counted() -> None:
    redactor = Redactor(keys=["email", "*phone*"], patterns=[r"\b\d{3}-\d{4}\b"])
    cleaned = redactor.clean({"Email": "a@b.c", "home_phone": "1", "note": "call 555-1234 now"})
    assert cleaned == {"Email": REDACTED, "home_phone": REDACTED, "note": f"call {REDACTED} now"}
    assert redactor.masked == 3


def test_user_rules_apply_to_spans_and_the_span_counts_what_was_masked() -> None:
    options = ConversionOptions(
        project=PROJECT, redact_keys=("customer_email",), redact_patterns=(r"ACCT-\d+",)
    )
    got = attrs(
        options,
        metadata={"customer_email": "a@b.c", "note": "for ACCT-991", "Set-Cookie": "s=1"},
        request={"messages": [{"role": "user", "content": "hi"}]},
    )
    metadata = json.loads(got["metadata"])
    assert metadata == {
        "customer_email": REDACTED,
        "note": f"for {REDACTED}",
        "Set-Cookie": REDACTED,
    }
    assert got["portkey.ingest.redacted"] == 3
    assert "portkey.ingest.redacted" not in attrs(metadata={"env": "prod"})


def test_scrub_masks_and_removes_nul_for_quarantine_and_logs() -> None:
    assert scrub('bad line {"api_key": "abc"}\x00 Bearer xyz') == (
        'bad line {"api_key": "[REDACTED]"} Bearer [REDACTED]'
    )


def test_quarantine_reasons_and_raw_lines_are_scrubbed(tmp_path: Any) -> None:
    from ingest.run.quarantine import Quarantine

    quarantine = Quarantine(tmp_path / "q.jsonl")
    quarantine.add("f.jsonl", 3, "not valid JSON near Bearer tok-123", b'{"password": "pw-1"')
    quarantine.close()
    entry = json.loads((tmp_path / "q.jsonl").read_text())
    assert "tok-123" not in entry["reason"] and "pw-1" not in entry["record"]
    assert "raw" not in entry, "the line as read only with --quarantine-raw"


def test_record_errors_and_warnings_quote_values_with_secrets_masked() -> None:
    with pytest.raises(Exception, match=r"'Bearer \[REDACTED\]'") as raised:
        parse_record({"id": "a", "created_at": "Bearer tok-in-a-date"})
    assert "tok-in-a-date" not in str(raised.value)
    record = parse_record({**BASE, "is_success": "api_key=not-a-bool-77"})
    assert "not-a-bool-77" not in record.warnings[0]
