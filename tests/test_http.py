"""The one HTTP transport: status classes, Retry-After, the retry deadline (injected clock, no
server), and redirects between two real loopback servers (no cross-host hop carries a secret)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from ingest.errors import ConfigError, PhoenixError, RedirectRefused, Transient
from ingest.http import (
    Outcome,
    Service,
    Transport,
    classify,
    describe_connection_error,
    retry_after_seconds,
    valid_header_value,
)
from ingest.phoenix.api import PhoenixSettings, SpanSender
from ingest.phoenix.reader import SpanReader
from ingest.sources.portkey.api import PortkeySettings

SECRET = "proxy-Secret-0123456789"


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(200, Outcome.OK), (204, Outcome.OK), (301, Outcome.REDIRECT), (307, Outcome.REDIRECT),
     (400, Outcome.FATAL), (401, Outcome.AUTH), (403, Outcome.AUTH), (404, Outcome.FATAL),
     (408, Outcome.RETRY), (409, Outcome.FATAL), (413, Outcome.FATAL), (422, Outcome.FATAL),
     (429, Outcome.RETRY), (500, Outcome.RETRY), (502, Outcome.RETRY),
     (503, Outcome.RETRY), (504, Outcome.RETRY)],
)  # fmt: skip
def test_status_classes(status: int, outcome: Outcome) -> None:
    assert classify(status) is outcome


NOW = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("7", 7.0), ("1.5", 1.5), (" 2 ", 2.0), ("0", 0.0), ("-1", None), ("-0.5", None),
     ("garbage", None), ("", None), (None, None), ("nan", None), ("inf", None),
     ("1e400", None), ("Mon, 32 Foo 2026 99:99:99 GMT", None),
     (format_datetime(NOW + timedelta(seconds=30), usegmt=True), 30.0),
     (format_datetime(NOW - timedelta(seconds=30), usegmt=True), 0.0)],
)  # fmt: skip
def test_retry_after(value: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(value, now=NOW.timestamp()) == seconds


@pytest.mark.parametrize(
    ("value", "valid"),
    [("pk-abc", True), ("Bearer x y", True), ("a\nb", False), ("a\r\nb", False),
     ("a\x00b", False), ("key\n", False)],
)  # fmt: skip
def test_header_values(value: str, valid: bool) -> None:
    assert valid_header_value(value) is valid


def test_a_connection_error_description_never_quotes_the_header_value() -> None:
    exc = requests.exceptions.InvalidHeader(f"Invalid leading whitespace in header value {SECRET}")
    assert SECRET not in describe_connection_error(exc)
    refused = requests.ConnectionError(f"Connection refused for http://u:{SECRET}@host/?k={SECRET}")
    assert describe_connection_error(refused) == "connection refused"
    assert describe_connection_error(requests.ReadTimeout(SECRET), 5) == "no answer within 5 s"


def test_an_invalid_header_is_a_config_error_at_once_never_quoting_it() -> None:
    service = Service("Test", "http://127.0.0.1:9", headers={"X-Proxy": f"{SECRET}\n"})
    with pytest.raises(ConfigError) as caught:
        Transport(service).send("GET", "/")
    assert SECRET not in str(caught.value)


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _always(exc: Transient) -> Callable[[], Any]:
    def attempt() -> Any:
        raise exc

    return attempt


def test_retries_stop_at_the_deadline_with_jittered_waits_that_never_pass_it() -> None:
    fake = FakeTime()
    service = Service("Test", "http://127.0.0.1:9", retry_deadline_s=30, max_backoff_s=10)
    transport = Transport(service, sleep=fake.sleep, clock=fake.clock)
    seen: list[float] = []
    with pytest.raises(Transient, match="connection refused"):
        transport.retrying(_always(Transient("connection refused")),
                           on_retry=lambda exc, wait: seen.append(wait))  # fmt: skip
    assert fake.now == pytest.approx(30)  # waited exactly up to the deadline, not beyond
    assert all(0 <= wait <= 10 for wait in fake.sleeps)
    assert seen == fake.sleeps and len(fake.sleeps) >= 3


def test_a_retry_after_beyond_the_deadline_gives_up_without_waiting() -> None:
    fake = FakeTime()
    service = Service("Test", "", retry_deadline_s=30, max_retry_after_s=float("inf"))
    transport = Transport(service, sleep=fake.sleep, clock=fake.clock)
    with pytest.raises(Transient):
        transport.retrying(_always(Transient("HTTP 429", 429, retry_after=600)))
    assert fake.sleeps == []


def test_a_long_retry_after_is_capped_and_success_ends_the_retries() -> None:
    fake = FakeTime()
    transport = Transport(Service("Test", "", retry_deadline_s=1000, max_retry_after_s=60),
                          sleep=fake.sleep, clock=fake.clock)  # fmt: skip
    answers = iter([Transient("HTTP 503", 503, retry_after=1.5),
                    Transient("HTTP 429", 429, retry_after=3600)])  # fmt: skip

    def attempt() -> str:
        if (exc := next(answers, None)) is not None:
            raise exc
        return "stored"

    assert transport.retrying(attempt) == "stored"
    assert fake.sleeps == [1.5, 60]


# --------------------------------------------------------------------------- redirects


class Recorder:
    """A loopback HTTP server that records what it was sent and answers with `reply`."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []
        self.reply: Callable[[str], tuple[int, dict[str, str], bytes]] = lambda path: (
            200,
            {},
            b"{}",
        )
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                recorder.seen.append((self.command, self.path, dict(self.headers), body))
                status, headers, payload = recorder.reply(self.path)
                self.send_response(status)
                for name, value in {**headers, "Content-Length": str(len(payload))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = _any

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.port = self.server.server_address[1]
        # A short poll: shutdown() waits up to one poll interval (0.5 s by default) per server.
        threading.Thread(target=self.server.serve_forever, args=(0.01,), daemon=True).start()

    def secrets_seen(self) -> list[str]:
        return [
            value for _, _, headers, body in self.seen
            for value in [*headers.values(), body.decode("latin-1")] if SECRET in value
        ]  # fmt: skip

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def servers() -> Iterator[tuple[Recorder, Recorder]]:
    first, second = Recorder(), Recorder()
    yield first, second
    first.close()
    second.close()


def _redirect_to(target: str, status: int = 307) -> Callable[[str], tuple[int, dict, bytes]]:
    return lambda path: (status, {"Location": target}, b"")


def test_a_cross_host_redirect_is_refused_naming_the_host(
    servers: tuple[Recorder, Recorder],
) -> None:
    first, second = servers
    first.reply = _redirect_to(f"http://localhost:{second.port}/v1/traces")
    service = Service("Test", f"http://127.0.0.1:{first.port}", headers={"X-Proxy": SECRET})
    with pytest.raises(RedirectRefused) as caught:
        Transport(service).send("POST", "/v1/traces", data=SECRET.encode())
    assert caught.value.host == "localhost"
    assert second.seen == []


def test_phoenix_never_sends_headers_or_spans_to_another_host(
    servers: tuple[Recorder, Recorder],
) -> None:
    first, second = servers
    first.reply = _redirect_to(f"http://localhost:{second.port}/elsewhere?sig={SECRET}")
    settings = PhoenixSettings(endpoint=f"http://127.0.0.1:{first.port}", project="p",
                               headers={"x-proxy": SECRET}, retry_deadline_s=1)  # fmt: skip
    sender = SpanSender(settings)
    with pytest.raises(PhoenixError) as caught:
        sender._api.request("POST", "/v1/traces", "accept spans", data=SECRET.encode())
    message = str(caught.value)
    assert "redirected a request to another host, localhost (HTTP 307)" in message
    assert SECRET not in message
    with pytest.raises(PhoenixError, match="another host, localhost"):
        SpanReader(settings).existing(["0123456789abcdef"])
    assert second.seen == []
    assert first.secrets_seen()  # the first (configured) host did get the header


def test_a_same_host_redirect_is_followed_with_its_body(servers: tuple[Recorder, Recorder]) -> None:
    first, _ = servers
    first.reply = lambda path: (
        (308, {"Location": "/new/v1/traces"}, b"") if path == "/v1/traces" else (200, {}, b"ok")
    )
    service = Service("Test", f"http://127.0.0.1:{first.port}", headers={"X-Proxy": SECRET})
    response = Transport(service).send("POST", "/v1/traces", data=b"spans")
    assert response.status_code == 200
    assert [(method, path, body) for method, path, _, body in first.seen] == [
        ("POST", "/v1/traces", b"spans"),
        ("POST", "/new/v1/traces", b"spans"),
    ]


def test_portkey_redirects_are_handed_back_not_followed(servers: tuple[Recorder, Recorder]) -> None:
    first, second = servers
    first.reply = _redirect_to(f"http://127.0.0.1:{first.port}/v2/logs/exports", 302)
    settings = PortkeySettings(api_key=SECRET, base_url=f"http://127.0.0.1:{first.port}/v1")
    response = Transport(settings.service()).send("GET", "/logs/exports")
    assert response.status_code == 302
    assert len(first.seen) == 1 and second.seen == []


def test_a_signed_url_may_redirect_to_another_host_carrying_no_key(
    servers: tuple[Recorder, Recorder],
) -> None:
    first, second = servers
    first.reply = _redirect_to(f"http://localhost:{second.port}/bucket/file.jsonl")
    second.reply = lambda path: (200, {}, b'{"id": 1}\n')
    storage = Service("object storage", "", follow_cross_host_redirects=True)
    response = Transport(storage).send("GET", f"http://127.0.0.1:{first.port}/signed?sig=x")
    assert response.content == b'{"id": 1}\n'
    assert not second.secrets_seen() and len(second.seen) == 1


# --------------------------------------------------------------------------- keys


@pytest.mark.parametrize("key", [f"{SECRET}\n", f"  {SECRET}\t", f"\r\n{SECRET}\r\n"])
def test_keys_are_stripped_when_read(key: str) -> None:
    assert PhoenixSettings(api_key=key).api_key == SECRET
    assert PortkeySettings(api_key=key).api_key == SECRET
    assert PhoenixSettings(headers={"x-proxy": key}).headers == {"x-proxy": SECRET}


@pytest.mark.parametrize(
    ("make", "variable"),
    [(lambda key: PhoenixSettings(api_key=key), "PHOENIX_API_KEY"),
     (lambda key: PortkeySettings(api_key=key), "PORTKEY_API_KEY"),
     (lambda key: PhoenixSettings(headers={"x-proxy": key}), "PHOENIX_CLIENT_HEADERS")],
)  # fmt: skip
def test_a_key_that_is_not_a_header_value_is_a_config_error_that_never_quotes_it(
    make: Callable[[str], Any], variable: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        make(f"{SECRET[:8]}\n{SECRET[8:]}")
    assert variable in str(caught.value)
    assert SECRET[:8] not in str(caught.value) and SECRET[8:] not in str(caught.value)
