"""Every exception of the tool, grouped by what the caller does next:

- retry later: `Transient` (retried by the transport until its deadline), `StateLockedError`
  (exit 75: the next cron run tries again), `RunStopped`;
- fix the configuration: `ConfigError` (exit 2), `PhoenixAuthError`, `PortkeyAuthError`,
  `FutureWatermarkError`, `RedirectRefused`;
- skip the record: `RecordError` (quarantined with its reason, counted; exit 3);
- stop the run: the other `IngestError`s (exit 1); nothing past the last verified batch is
  committed, so a rerun continues.

Only the CLI runner maps these to exit codes (`outcome_of`); everything else raises.
"""

from __future__ import annotations

# Exit codes, documented in README.md ("Exit codes").
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_QUARANTINED = 3
EXIT_LOCKED = 75  # EX_TEMPFAIL: another run holds the state lock; try again later.
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C


class IngestError(Exception):
    """Base class: the run cannot go on. The message says what to do next."""

    exit_code = EXIT_FAILED


class ConfigError(IngestError):
    """A setting is missing or wrong; the user must fix it before rerunning."""

    exit_code = EXIT_USAGE


class SourceError(IngestError):
    """An input file or the Portkey API could not be read."""


class DamagedFile(SourceError):
    """A file cannot be read past `offset` (of its decompressed data), after line `line`:
    truncated or corrupt gzip, a read error, a file that vanished. What came before is good."""

    def __init__(self, message: str, *, offset: int, line: int) -> None:
        super().__init__(message)
        self.offset, self.line = offset, line


class PhoenixError(IngestError):
    """Phoenix refused, failed or could not be reached."""


class PhoenixAuthError(PhoenixError):
    """Phoenix answered 401/403: the API key is missing or wrong."""


class PhoenixUnreachableError(PhoenixError):
    """Phoenix did not answer within the retry deadline."""


class VerificationError(PhoenixError):
    """Phoenix acknowledged spans but did not store them, even after re-sending."""


class StateError(IngestError):
    """The state file is unreadable, corrupt or from an unknown version."""


class FutureWatermarkError(StateError):
    """The stored watermark is ahead of the clock (accept it with --accept-future-watermark)."""


class StateLockedError(IngestError):
    """Another run holds the state lock."""

    exit_code = EXIT_LOCKED


class Transient(Exception):
    """Worth retrying: connection trouble, timeout, 408/429/5xx. The text is safe to print."""

    def __init__(
        self,
        reason: str,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(reason)
        self.status, self.code, self.retry_after = status, code, retry_after


class RedirectRefused(Exception):
    """A redirect to another host; `host` is where it pointed (never its query string)."""

    def __init__(self, status: int, host: str) -> None:
        super().__init__(f"HTTP {status} redirect to another host ({host})")
        self.status, self.host = status, host


class RunStopped(Exception):
    """Raised in an export worker's wait once the run is stopping; nobody reads its result."""


class RecordError(ValueError):
    """One record cannot become a span; it is quarantined with this reason."""


class PortkeyError(SourceError):
    """Portkey refused a request or answered something unusable (the message names the endpoint).

    `status` is the HTTP status and `code` Portkey's errorCode (e.g. AB01), when there was one.
    """

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.code = status, code


class PortkeyAuthError(PortkeyError):
    """Portkey answered 401/403: the key is wrong or lacks a scope (`logs.export`, ...)."""


class PortkeyUnavailableError(PortkeyError):
    """Portkey kept failing (429, 5xx, connection trouble) until the retry deadline."""


class PortkeyExportError(PortkeyError):
    """An export job failed, stopped, hung, or could not be downloaded or understood."""


class PortkeyLogNotFoundError(PortkeyError):
    """`GET /logs/{id}` answered 404: Portkey has no log with that id (yet)."""


def outcome_of(error: BaseException | None, quarantined: int = 0) -> tuple[str, int]:
    """How a run ended, decided in one place: (outcome, exit code): ok 0, quarantined 3,
    failed 1 (or the error's own code: 2 for configuration, 75 locked), interrupted 130. The
    CLI runner turns it into the exit code and the `run_done` line; the run records the same
    outcome in the state file (`status` shows it)."""
    if error is None:
        return ("quarantined", EXIT_QUARANTINED) if quarantined else ("ok", EXIT_OK)
    if isinstance(error, KeyboardInterrupt):
        return "interrupted", EXIT_INTERRUPTED
    if isinstance(error, IngestError):
        if error.exit_code == EXIT_LOCKED:
            return "locked", EXIT_LOCKED
        return ("usage_error" if error.exit_code == EXIT_USAGE else "failed"), error.exit_code
    return "failed", EXIT_FAILED
