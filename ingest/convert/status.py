"""The span status of a log: OK, UNSET, or ERROR with a message and the class of failure.

The message reads as the live instrumentation's would: the HTTP status, the provider's error
code and its text (`429 rate_limit_exceeded: Rate limit reached ...`). `exception.type`
names the class of failure with the OpenAI SDK's error class names, which the other SDKs
mirror (RateLimitError, AuthenticationError, ...), decided from the error's code or type,
else from the HTTP status; the provider's own code stays in the message.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.trace import StatusCode

from ingest.convert.common import get
from ingest.convert.records import LogRecord

# A word of the provider's error code/type (lowercased) -> class of failure. First match wins.
_BY_CODE: tuple[tuple[str, str], ...] = (
    ("rate_limit", "RateLimitError"),
    ("ratelimit", "RateLimitError"),
    ("resource_exhausted", "RateLimitError"),
    ("quota", "RateLimitError"),
    ("throttl", "RateLimitError"),
    ("permission", "PermissionDeniedError"),
    ("forbidden", "PermissionDeniedError"),
    ("auth", "AuthenticationError"),
    ("api_key", "AuthenticationError"),
    ("not_found", "NotFoundError"),
    ("timeout", "APITimeoutError"),
    ("timed_out", "APITimeoutError"),
    ("deadline", "APITimeoutError"),
    ("content_filter", "ContentFilterError"),
    ("safety", "ContentFilterError"),
    ("overloaded", "InternalServerError"),
    ("unavailable", "InternalServerError"),
    ("server_error", "InternalServerError"),
    ("internal", "InternalServerError"),
    ("context_length", "BadRequestError"),
    ("invalid", "BadRequestError"),
)
_BY_STATUS = {
    400: "BadRequestError",
    401: "AuthenticationError",
    403: "PermissionDeniedError",
    404: "NotFoundError",
    408: "APITimeoutError",
    409: "ConflictError",
    422: "UnprocessableEntityError",
    429: "RateLimitError",
    504: "APITimeoutError",
    524: "APITimeoutError",
}


def outcome(record: LogRecord, response: Any) -> tuple[StatusCode, str | None, str | None]:
    """(status, message, error type): ERROR when Portkey says it failed or the HTTP code does."""
    code = record.status_code
    if record.is_success is False or (code is not None and code >= 400):
        return StatusCode.ERROR, status_message(code, response), failure_class(code, response)
    if record.is_success or (code is not None and 200 <= code < 400):
        return StatusCode.OK, None, None
    return StatusCode.UNSET, None, None


def status_message(status: int | None, response: Any) -> str:
    """`429 rate_limit_exceeded: <provider text>`, each part when known; `HTTP 500` alone."""
    code, text = error_code(response), error_message(response)
    if text is None:
        head = " ".join(part for part in (_status(status), code) if part)
        return head or "request failed"
    head = " ".join(part for part in (str(status) if status is not None else None, code) if part)
    return f"{head}: {text}" if head else text


def _status(status: int | None) -> str | None:
    return None if status is None else f"HTTP {status}"


def failure_class(status: int | None, response: Any) -> str | None:
    """The class of failure (`RateLimitError`...), or None when nothing says what failed."""
    code = error_code(response)
    if code:
        low = code.lower()
        for word, name in _BY_CODE:
            if word in low:
                return name
    if status is not None:
        if status in _BY_STATUS:
            return _BY_STATUS[status]
        if status >= 500:
            return "InternalServerError"
        if status >= 400:
            return "APIStatusError"
    return "APIError" if code else None


def _error_body(response: Any) -> dict[str, Any] | None:
    if isinstance(response, list):  # Gemini streaming errors come as a one-item list
        response = next((item for item in response if isinstance(item, dict)), None)
    return response if isinstance(response, dict) else None


def error_message(response: Any) -> str | None:
    """The provider's error message: `error.message`, `error` (a string), `message`."""
    body = _error_body(response)
    if body is None:
        return None
    error = body.get("error")
    candidates = (get(error, "message"), error, body.get("message"))
    for candidate in candidates:
        if isinstance(candidate, str) and candidate.strip():
            return candidate.strip()
    return None


def error_code(response: Any) -> str | None:
    """The provider's error code as text: OpenAI `code`, Anthropic `type`, Gemini `status`.
    Numbers are skipped (Gemini's `code` repeats the HTTP status)."""
    error = get(_error_body(response), "error")
    for key in ("code", "type", "status"):
        value = get(error, key)
        if isinstance(value, str) and value.strip() and not value.strip().isdigit():
            return value.strip()
    return None
