"""The Phoenix sender's retry policy, as pure functions (Phoenix itself is tested live)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from tenacity import RetryCallState, Retrying

from ingest.phoenix.client import PhoenixSettings, _retry_after_seconds, _Transient, _WaitRetryAfter


@pytest.mark.parametrize(
    ("endpoint", "base"),
    [("http://localhost:6006", "http://localhost:6006"),
     ("http://localhost:6006/", "http://localhost:6006"),
     ("http://localhost:6006/v1/traces", "http://localhost:6006"),
     ("https://phoenix.example/prefix/v1/traces/", "https://phoenix.example/prefix")],
)  # fmt: skip
def test_endpoint_with_or_without_the_traces_path(endpoint: str, base: str) -> None:
    settings = PhoenixSettings(endpoint=endpoint)
    assert settings.base_url == base
    assert settings.traces_url == f"{base}/v1/traces"


def test_retry_after_as_seconds_or_http_date() -> None:
    assert _retry_after_seconds("7") == 7.0
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (_retry_after_seconds(later) or 0) <= 31
    assert _retry_after_seconds("soon") is None
    assert _retry_after_seconds(None) is None


def _state_after(exc: Exception) -> RetryCallState:
    state = RetryCallState(Retrying(), fn=None, args=(), kwargs={})
    state.set_exception((type(exc), exc, None))
    return state


def test_the_wait_honours_retry_after_and_caps_it() -> None:
    wait = _WaitRetryAfter()
    assert wait(_state_after(_Transient("HTTP 503", retry_after=3))) == 3
    assert wait(_state_after(_Transient("HTTP 429", retry_after=3600))) == 60.0
    backoff = wait(_state_after(_Transient("connection refused")))
    assert 0 <= backoff <= 10


def test_the_api_key_wins_over_an_authorization_client_header() -> None:
    settings = PhoenixSettings(api_key="key", headers={"authorization": "Basic x", "X-A": "1"})
    assert settings.auth_headers() == {"X-A": "1", "Authorization": "Bearer key"}
