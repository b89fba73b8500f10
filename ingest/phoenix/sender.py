"""Send spans to Phoenix over OTLP/HTTP protobuf.

The OTel SDK's protobuf encoder, but our own HTTP call, because the exporter swallows status
codes: we must tell "queue full, retry" (503/429/5xx/connection) from "wrong key" (401/403)
from "bad request" (other 4xx), and honour Retry-After. An OTLP 200 only means "queued in
memory" (DESIGN.md): reading back is what proves storage.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan

from ingest.phoenix.api import PhoenixApi
from ingest.phoenix.settings import PhoenixSettings


class SpanSender:
    """POSTs batches of spans to Phoenix's OTLP/HTTP endpoint, retrying transient failures."""

    def __init__(
        self,
        settings: PhoenixSettings,
        session: Any = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self._api = PhoenixApi(settings, session, sleep)

    @property
    def retries(self) -> int:
        return self._api.retries

    def send(self, spans: Sequence[ReadableSpan]) -> int:
        """Deliver one batch into Phoenix's queue (not yet durable: verify afterwards).
        Returns the size of the request body in bytes."""
        if not spans:
            return 0
        body = encode_spans(spans).SerializeToString()
        self._api.request(
            "POST",
            "/v1/traces",
            "accept spans",
            data=body,
            headers={"Content-Type": "application/x-protobuf"},
        )
        return len(body)
