"""`doctor`'s checks of this machine: the state directory, its lock and state file, the
clock against the servers' `Date`, and the config file; and the `Check` they all return."""

from __future__ import annotations

import contextlib
import email.utils
import fcntl
import os
import stat
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from ingest.errors import StateError
from ingest.ops.config import ConfigInfo, readable_secrets_warning

OK, WARN, FAIL = "OK", "WARN", "FAIL"
MAX_CLOCK_SKEW_S = 60.0


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # OK, WARN or FAIL
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class ServerTime:
    """A server's `Date` header and our clock when its answer arrived."""

    server: str
    date_header: str | None
    local: datetime


def where_from(origin: str, env: str) -> str:
    """` (from --api-key)` when a setting did not come from its usual variable."""
    return "" if origin in (env, "the default") else f" (from {origin})"


# --------------------------------------------------------------------------- state directory


def exposed_state_dir(path: Path) -> str | None:
    """Why an existing state directory is readable by other users, or None when it is not
    (or does not exist yet). Pure: `doctor` prints it as a warning."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if not stat.S_ISDIR(mode) or not mode & (stat.S_IRWXG | stat.S_IRWXO):
        return None
    return (
        f"the state directory {path} can be read by other users (mode {stat.filemode(mode)}); "
        "it holds export downloads and quarantined request bodies. Run `chmod 700 "
        f"{path}`."
    )


def check_state_dir(state_dir: Path, origin: str = "the default") -> list[Check]:
    """Writable (create, write, fsync, delete), lock free, state file readable and known."""
    from ingest.run.state import (
        LOCK_FILE,
        STATE_VERSION,
        StateStore,
        make_private_dir,
    )

    where = where_from(origin, "INGEST_STATE_DIR")
    fix = "set --state-dir (or INGEST_STATE_DIR) to a directory this user can write"
    try:
        make_private_dir(state_dir)
        fd, tmp = tempfile.mkstemp(prefix=".doctor-", dir=state_dir)
        try:
            os.write(fd, b"doctor")
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(tmp)
    except OSError as exc:
        return [
            Check(
                "State directory",
                FAIL,
                f"{state_dir}{where} is not writable ({exc.strerror or exc}).",
                fix,
            )
        ]
    checks = [Check("State directory", OK, f"{state_dir} is writable")]
    if exposed := exposed_state_dir(state_dir):
        checks.append(Check("State directory", WARN, exposed, f"chmod 700 {state_dir}"))

    lock_path = state_dir / LOCK_FILE
    with contextlib.suppress(OSError), lock_path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            checks.append(
                Check(
                    "State lock",
                    WARN,
                    f"another run holds {lock_path} ({holder}); a run started now exits with 75.",
                    "wait for it to finish (or stop it); if that process is gone, the lock is "
                    "released automatically",
                )
            )
        else:
            fcntl.flock(handle, fcntl.LOCK_UN)
            checks.append(Check("State lock", OK, "free"))

    store = StateStore(state_dir)
    try:
        doc = store.load()
    except StateError as exc:
        checks.append(Check("State file", FAIL, str(exc), "move the state file aside and rerun"))
        return checks
    if not store.path.exists():
        checks.append(Check("State file", OK, "none yet (the first run creates it)"))
    else:
        detail = f"version {doc['version']} (this tool reads {STATE_VERSION}), "
        detail += f"{len(doc.get('files', {}))} file(s) recorded"
        watermark = (
            doc.get("sync", {}).get("watermark") if isinstance(doc.get("sync"), dict) else None
        )
        if watermark:
            detail += f", sync watermark {watermark}"
        checks.append(Check("State file", OK, detail))
    return checks


# --------------------------------------------------------------------------- clock, config file


def check_clock(observed: ServerTime) -> Check:
    """WARN when our clock and the server's `Date` differ by more than a minute: watermarks,
    the sync lag and the Phoenix time-range link all assume a correct clock."""
    name = f"Clock vs {observed.server}"
    if not observed.date_header:
        return Check(name, WARN, f"{observed.server} sent no Date header; skew not checked")
    try:
        server = email.utils.parsedate_to_datetime(observed.date_header)
    except (TypeError, ValueError):
        return Check(name, WARN, f"unreadable Date header {observed.date_header[:40]!r}")
    if server.tzinfo is None:
        server = server.replace(tzinfo=UTC)
    skew = (observed.local - server).total_seconds()
    if abs(skew) > MAX_CLOCK_SKEW_S:
        direction = "ahead of" if skew > 0 else "behind"
        return Check(
            name,
            WARN,
            f"this machine's clock is {abs(skew):.0f} s {direction} {observed.server}'s; "
            "watermarks and --lag assume a correct clock.",
            "synchronise the clock (NTP: `timedatectl set-ntp true`, chrony or ntpd)",
        )
    return Check(name, OK, f"within {MAX_CLOCK_SKEW_S:.0f} s ({skew:+.0f} s)")


def check_config_file(info: ConfigInfo | None) -> Check:
    if info is None:
        return Check("Config file", OK, "none (the --config option is not in use)")
    if not info.exists:
        return Check("Config file", OK, f"{info.path} not present; flags, env and defaults apply")
    warning = readable_secrets_warning(info.path, info.raw)
    if warning:
        return Check(
            "Config file", WARN, warning.removeprefix("warning: "), f"chmod 600 {info.path}"
        )
    return Check("Config file", OK, f"{info.path} loaded")
