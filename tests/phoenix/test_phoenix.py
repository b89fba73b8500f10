"""The Phoenix sender's retry policy, as pure functions (Phoenix itself is tested live)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from ingest.errors import Transient
from ingest.http import Transport
from ingest.http import retry_after_seconds as _retry_after_seconds
from ingest.phoenix.api import PhoenixSettings


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


def test_the_wait_honours_retry_after_and_caps_it() -> None:
    sleeps: list[float] = []
    now = [0.0]

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    settings = PhoenixSettings(retry_deadline_s=1000)
    transport = Transport(settings.service(), sleep=sleep, clock=lambda: now[0])
    answers = iter([Transient("HTTP 503", retry_after=3), Transient("HTTP 429", retry_after=3600),
                    Transient("connection refused")])  # fmt: skip

    def attempt() -> str:
        exc = next(answers, None)
        if exc is not None:
            raise exc
        return "ok"

    assert transport.retrying(attempt) == "ok"
    assert sleeps[:2] == [3, 60.0]
    assert 0 <= sleeps[2] <= 10


def test_the_api_key_wins_over_an_authorization_client_header() -> None:
    settings = PhoenixSettings(api_key="key", headers={"authorization": "Basic x", "X-A": "1"})
    assert settings.auth_headers() == {"X-A": "1", "Authorization": "Bearer key"}
