"""Where Phoenix is and how to authenticate: endpoint, project, API key, client headers.

Keys and header values are stripped of surrounding whitespace when read (a key from a file
often ends in a newline); one that still is not a valid header value is a configuration error
that names the variable and never quotes the value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ingest.errors import ConfigError
from ingest.http import Service, valid_header_value

DEFAULT_ENDPOINT = "http://localhost:6006"
MAX_RETRY_AFTER_S = 60.0


@dataclass(frozen=True)
class PhoenixSettings:
    endpoint: str = DEFAULT_ENDPOINT
    project: str = "default"
    api_key: str | None = field(default=None, repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    retry_deadline_s: float = 120.0
    request_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        key = self.api_key.strip() if self.api_key else None
        if key and not valid_header_value(key):
            raise ConfigError(
                "PHOENIX_API_KEY (or --api-key) holds a line break or another character a "
                "header cannot carry: set it to the key alone."
            )
        object.__setattr__(self, "api_key", key or None)
        headers = {name: str(value).strip() for name, value in dict(self.headers).items()}
        for name, value in headers.items():
            if not valid_header_value(value):
                raise ConfigError(
                    f"PHOENIX_CLIENT_HEADERS (or --client-headers): the value of {name!r} holds "
                    "a line break or another character a header cannot carry: fix it."
                )
        object.__setattr__(self, "headers", headers)

    @property
    def base_url(self) -> str:
        """The server root, whether the endpoint was given with `/v1/traces` or without."""
        url = self.endpoint.strip().rstrip("/")
        for suffix in ("/v1/traces", "/v1"):
            if url.endswith(suffix):
                url = url[: -len(suffix)]
        return url

    @property
    def traces_url(self) -> str:
        return f"{self.base_url}/v1/traces"

    def auth_headers(self) -> dict[str, str]:
        """The extra client headers, and the API key as the one Authorization header (the
        key wins over an `authorization` entry in PHOENIX_CLIENT_HEADERS)."""
        headers = dict(self.headers)
        if self.api_key:
            for name in [name for name in headers if name.lower() == "authorization"]:
                del headers[name]
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def service(self, timeout_s: float | None = None) -> Service:
        return Service(
            name="Phoenix",
            base_url=self.base_url,
            headers=self.auth_headers(),
            retry_deadline_s=self.retry_deadline_s,
            request_timeout_s=self.request_timeout_s if timeout_s is None else timeout_s,
            max_retry_after_s=MAX_RETRY_AFTER_S,
            max_backoff_s=10.0,
        )
