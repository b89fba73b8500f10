"""How a run ended: its outcome name and exit code, decided in one place.

The CLI runner turns this into the process's exit code and the `run_done` line; the run
itself records the same outcome in the state file (`status` shows it).
"""

from __future__ import annotations

from ingest.errors import EXIT_FAILED, EXIT_LOCKED, EXIT_OK, EXIT_QUARANTINED, IngestError

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C


def outcome_of(error: BaseException | None, quarantined: int = 0) -> tuple[str, int]:
    """(outcome, exit code): ok 0, quarantined 3, failed 1 (or the error's own code: 2 for
    configuration, 75 locked), interrupted 130."""
    if error is None:
        return ("quarantined", EXIT_QUARANTINED) if quarantined else ("ok", EXIT_OK)
    if isinstance(error, KeyboardInterrupt):
        return "interrupted", EXIT_INTERRUPTED
    if isinstance(error, IngestError):
        if error.exit_code == EXIT_LOCKED:
            return "locked", EXIT_LOCKED
        return ("usage_error" if error.exit_code == 2 else "failed"), error.exit_code
    return "failed", EXIT_FAILED
