"""Portkey settings (from the environment), and what a run's Portkey client reports back.

The API key is stripped of surrounding whitespace when read; one that still is not a valid
header value is a configuration error naming the variable, never quoting the key.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ingest.errors import ConfigError
from ingest.http import Service, valid_header_value
from ingest.sources.windows import Window

DEFAULT_BASE_URL = "https://api.portkey.ai/v1"
PORTKEY_EXPORT_LIMIT = 50_000  # logs per export job (reference 2.10)
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


@dataclass(frozen=True)
class PortkeySettings:
    api_key: str = field(repr=False)
    base_url: str = DEFAULT_BASE_URL  # self-hosted control planes use their own URL
    workspace: str | None = None  # the workspace SLUG (a UUID silently matches nothing)
    gateway_url: str | None = None  # for GET /logs/{id}; default base_url
    retry_deadline_s: float = 300.0
    poll_interval_s: float = 5.0
    job_timeout_s: float = 3600.0  # a job still in_progress after this: error
    export_limit: int = PORTKEY_EXPORT_LIMIT
    max_job_restarts: int = 3
    request_timeout_s: float = 60.0
    max_download_attempts: int = 5  # signed URL + GET, per export
    enrich_concurrency: int = 4  # GET /logs/{id} in flight at once
    enrich_rate_per_s: float = 10.0  # GET /logs/{id} started per second

    def __post_init__(self) -> None:
        key = (self.api_key or "").strip()
        if not key:
            raise ConfigError(
                "PORTKEY_API_KEY is empty: set it to a Portkey API key with the logs.export scope."
            )
        if not valid_header_value(key):
            raise ConfigError(
                "PORTKEY_API_KEY (or --portkey-api-key) holds a line break or another character "
                "a header cannot carry: set it to the key alone."
            )
        object.__setattr__(self, "api_key", key)
        for name, env in (("base_url", "PORTKEY_BASE_URL"), ("gateway_url", "PORTKEY_GATEWAY_URL")):
            url = getattr(self, name)
            if url is None:
                continue
            parts = urlsplit(url.strip())
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(
                    f"{env} must be an http(s) URL such as {DEFAULT_BASE_URL}, got {url!r}."
                )
            object.__setattr__(self, name, url.strip().rstrip("/"))
        if self.workspace is not None and _UUID.match(self.workspace.strip()):
            raise ConfigError(
                "PORTKEY_WORKSPACE must be the workspace slug (like "
                "ws-example-a1b2c3), not its UUID: Portkey silently exports "
                "nothing for a UUID."
            )
        positive = (
            "retry_deadline_s",
            "poll_interval_s",
            "job_timeout_s",
            "request_timeout_s",
            "export_limit",
            "max_download_attempts",
            "enrich_concurrency",
            "enrich_rate_per_s",
        )
        for name in positive:
            if not getattr(self, name) > 0:
                raise ConfigError(f"Portkey setting {name} must be positive.")
        if self.max_job_restarts < 0:
            raise ConfigError("Portkey setting max_job_restarts must be 0 or more.")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> PortkeySettings:
        """PORTKEY_API_KEY (required), PORTKEY_BASE_URL, PORTKEY_WORKSPACE, PORTKEY_GATEWAY_URL."""
        env = os.environ if env is None else env
        key = (env.get("PORTKEY_API_KEY") or "").strip()
        if not key:
            raise ConfigError(
                "PORTKEY_API_KEY is not set: create a Portkey API key with the "
                "logs.export scope (and logs.view for enrichment) and export it."
            )
        values: dict[str, Any] = {
            "api_key": key,
            "base_url": (env.get("PORTKEY_BASE_URL") or "").strip() or DEFAULT_BASE_URL,
            "workspace": (env.get("PORTKEY_WORKSPACE") or "").strip() or None,
            "gateway_url": (env.get("PORTKEY_GATEWAY_URL") or "").strip() or None,
        }
        return cls(**{**values, **overrides})

    def service(self, base_url: str | None = None) -> Service:
        """The Portkey API (or the gateway, for `GET /logs/{id}`) for the shared transport."""
        return Service(
            name="Portkey",
            base_url=base_url or self.base_url,
            headers={"x-portkey-api-key": self.api_key, "Accept": "application/json"},
            retry_deadline_s=self.retry_deadline_s,
            request_timeout_s=self.request_timeout_s,
            max_retry_after_s=float("inf"),  # a longer wait than the deadline gives up at once
            follow_same_host_redirects=False,  # a redirect is an error naming the final URL
            pool_size=max(10, self.enrich_concurrency),
        )


@dataclass(frozen=True)
class WindowFile:
    window: Window
    path: Path  # the downloaded JSONL, complete
    total: int  # Portkey's count; == number of records (non-blank lines) in the file


@dataclass
class PortkeyStats:
    """What the client did, for the run summary."""

    retries: int = 0
    drafts_created: int = 0
    drafts_reused: int = 0
    jobs_started: int = 0
    job_restarts: int = 0
    downloads: int = 0
    splits: int = 0
    logs_fetched: int = 0
