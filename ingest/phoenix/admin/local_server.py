"""Start a local Phoenix server (the `server` extra) on a free loopback port.

Used by `demo`, the test suite and the benchmarks: one place that knows how to run Phoenix
quietly, wait until it answers, and stop it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

import requests

from ingest.errors import ConfigError, PhoenixError

STARTUP_TIMEOUT_S = 90.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def phoenix_command() -> list[str]:
    """The command that runs the Phoenix server, or a ConfigError saying how to install it."""
    # Look for the server package without importing it: importing `phoenix` runs its
    # `__init__`, which loads the whole server (seconds, and ~380 MB in this process).
    spec = importlib.util.find_spec("phoenix")
    locations = (spec.submodule_search_locations or []) if spec is not None else []
    installed = any((Path(location) / "server").is_dir() for location in locations)
    if not installed:
        raise ConfigError(
            "the Phoenix server is not installed. "
            "Install it with: pip install 'portkey-phoenix-ingest[server]'"
        )
    executable = shutil.which("phoenix", path=str(Path(sys.executable).parent)) or shutil.which(
        "phoenix"
    )
    if executable:
        return [executable, "serve"]
    return [sys.executable, "-m", "phoenix.server.main", "serve"]


_HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextmanager
def _signals_held() -> Iterator[None]:
    """Ignore Ctrl-C, SIGTERM and SIGHUP for a moment (only the main thread may do so)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in _HELD_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    """Signal the server and anything it started (its session's process group)."""
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass  # already gone
    except PermissionError:
        process.send_signal(signum)


class LocalPhoenix:
    """A Phoenix server process with its own working directory and loopback ports."""

    def __init__(
        self,
        working_dir: Path,
        port: int | None = None,
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
        command: list[str] | None = None,  # another Phoenix install, e.g. an older release
    ) -> None:
        self.working_dir = working_dir
        self.command = command
        self.port = port or free_port()
        self.grpc_port = free_port()
        self.extra_env = dict(env or {})
        self.log_path = log_path or working_dir / "phoenix.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = STARTUP_TIMEOUT_S) -> LocalPhoenix:
        self.working_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "PHOENIX_WORKING_DIR": str(self.working_dir),
            "PHOENIX_HOST": "127.0.0.1",
            "PHOENIX_PORT": str(self.port),
            "PHOENIX_GRPC_PORT": str(self.grpc_port),
            "PHOENIX_TELEMETRY_ENABLED": "false",
            **self.extra_env,
        }
        for name in ("PHOENIX_COLLECTOR_ENDPOINT", "PHOENIX_API_KEY", "PHOENIX_PROJECT_NAME"):
            if name not in self.extra_env:
                env.pop(name, None)  # the server must not pick up the client's settings
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command or phoenix_command(),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in a terminal reaches us, and we stop it
        )
        log.close()
        self._wait_healthy(timeout)
        return self

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise PhoenixError(
                    f"the local Phoenix server exited with code {self.process.returncode} "
                    f"during start-up; its log is {self.log_path}"
                )
            try:
                if requests.get(f"{self.url}/healthz", timeout=2).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.25)
        self.stop()
        raise PhoenixError(
            f"the local Phoenix server did not answer on {self.url} within {timeout:.0f} s; "
            f"its log is {self.log_path}"
        )

    def stop(self, kill: bool = False, timeout: float = 20.0) -> None:
        """Stop the server: SIGTERM (Phoenix drains its queue for 5 s), or SIGKILL.

        The signal goes to the server's whole process group (it runs in its own session), and
        a second Ctrl-C or SIGTERM meanwhile cannot cut the wait short and leave it running.
        """
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        with _signals_held():
            _signal_group(process, signal.SIGKILL if kill else signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait()

    def __enter__(self) -> LocalPhoenix:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
