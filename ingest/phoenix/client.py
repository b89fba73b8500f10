"""The Phoenix client in one import: settings, the OTLP sender and the span reader."""

from __future__ import annotations

from ingest.phoenix.reader import VERIFY_CHUNK, SpanReader, import_phoenix_client
from ingest.phoenix.sender import SpanSender
from ingest.phoenix.settings import DEFAULT_ENDPOINT, PhoenixSettings

__all__ = [
    "DEFAULT_ENDPOINT",
    "VERIFY_CHUNK",
    "PhoenixSettings",
    "SpanReader",
    "SpanSender",
    "import_phoenix_client",
]
