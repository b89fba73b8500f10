"""Shared fixtures: a real Phoenix server on a free loopback port, env isolation, helpers."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ingest.phoenix.admin.local_server import LocalPhoenix

REPO = Path(__file__).resolve().parent.parent
SAMPLE_LOGS = REPO / "sample_logs"

_ISOLATED_ENV = (
    "PHOENIX_COLLECTOR_ENDPOINT",
    "PHOENIX_API_KEY",
    "PHOENIX_PROJECT_NAME",
    "PHOENIX_CLIENT_HEADERS",
    "INGEST_SESSION_KEY",
    "INGEST_RETRY_DEADLINE",
    "PORTKEY_API_KEY",
    "PORTKEY_BASE_URL",
    "PORTKEY_WORKSPACE",
    "PORTKEY_GATEWAY_URL",
    "INGEST_CONFIG",
    "INGEST_LOG_FORMAT",
)


# Fixtures that start (or hand out) a Phoenix server: a test using one is in the slow tier.
PHOENIX_FIXTURES = frozenset(
    {"phoenix", "phoenix_oldest", "any_phoenix", "start_phoenix", "auth_phoenix"}
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that starts a Phoenix server `phoenix`, so `-m "not phoenix"` skips it."""
    for item in items:
        if PHOENIX_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.phoenix)


@pytest.fixture(autouse=True)
def fast_tier_starts_no_phoenix(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A test without the `phoenix` marker that starts a server in this process fails, so the
    fast tier (`-m "not phoenix"`) stays fast. Tests that start one in a subprocess (`demo`)
    carry the marker by hand."""
    if request.node.get_closest_marker("phoenix") is not None:
        return

    def refuse(self: LocalPhoenix, timeout: float = 0) -> LocalPhoenix:
        raise AssertionError(f"{request.node.nodeid} starts a Phoenix server: mark it phoenix")

    monkeypatch.setattr(LocalPhoenix, "start", refuse)


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No test reads the developer's settings or writes to their state directory."""
    for name in _ISOLATED_ENV:
        monkeypatch.delenv(name, raising=False)
    state_dir = tmp_path / "state"
    monkeypatch.setenv("INGEST_STATE_DIR", str(state_dir))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))  # no developer config file
    return state_dir


@pytest.fixture(scope="session")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPhoenix]:
    """One Phoenix for the tests that do not stop or reconfigure it."""
    server = LocalPhoenix(tmp_path_factory.mktemp("phoenix")).start()
    yield server
    server.stop()


OLDEST_PHOENIX = (REPO / "tests" / "phoenix_versions" / "oldest.txt").read_text().strip()


def oldest_phoenix_venv() -> Path:
    """Where tests/phoenix_versions/install.sh puts the oldest supported Phoenix server."""
    cache = os.environ.get("PHOENIX_VENVS_DIR") or Path.home() / ".cache/portkey-phoenix-ingest"
    return Path(cache) / f"phoenix-{OLDEST_PHOENIX}"


@pytest.fixture(scope="session")
def phoenix_oldest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPhoenix]:
    """The oldest supported Phoenix, when installed (skipped otherwise; CI sets
    PHOENIX_OLDEST_REQUIRED=1 so a failed install fails the tests instead)."""
    venv = oldest_phoenix_venv()
    if not (venv / ".installed").is_file():
        message = (
            f"Phoenix {OLDEST_PHOENIX} is not installed: run tests/phoenix_versions/install.sh"
        )
        if os.environ.get("PHOENIX_OLDEST_REQUIRED") == "1":
            pytest.fail(message)
        pytest.skip(message)
    command = [str(venv / "bin" / "phoenix"), "serve"]
    server = LocalPhoenix(tmp_path_factory.mktemp("phoenix-oldest"), command=command).start()
    yield server
    server.stop()


@pytest.fixture(params=["newest", "oldest"])
def any_phoenix(request: pytest.FixtureRequest) -> LocalPhoenix:
    """The `phoenix` fixture, once with the newest server and once with the oldest supported."""
    return request.getfixturevalue("phoenix" if request.param == "newest" else "phoenix_oldest")


@pytest.fixture
def start_phoenix(tmp_path: Path) -> Iterator[Callable[..., LocalPhoenix]]:
    """A factory for Phoenix servers a test may kill, restart or give special settings."""
    started: list[LocalPhoenix] = []

    def start(env: dict[str, str] | None = None, working_dir: Path | None = None,
              port: int | None = None) -> LocalPhoenix:  # fmt: skip
        server = LocalPhoenix(working_dir or tmp_path / f"phoenix-{len(started)}", port, env)
        started.append(server.start())
        return server

    yield start
    for server in started:
        server.stop(kill=True)


@pytest.fixture
def project(request: pytest.FixtureRequest) -> str:
    """A project name no other test uses (span ids are scoped by project)."""
    return f"{request.node.name[:40]}-{secrets.token_hex(3)}"


def read_spans(url: str, project: str, api_key: str | None = None) -> list[dict[str, Any]]:
    """Every span of a project, read through arize-phoenix-client."""
    import httpx

    from ingest.phoenix.api import import_phoenix_client

    client = import_phoenix_client()(base_url=url, api_key=api_key)
    try:
        return list(client.spans.get_spans(project_identifier=project, limit=1_000_000))
    except httpx.HTTPStatusError as exc:
        if exc.response.status_code == 404:
            return []
        raise


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300,
            ) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """Run the real console entry point in a subprocess (as cron would)."""
    return subprocess.run(
        [sys.executable, "-m", "ingest", *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def invoke_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`run_cli` in this process (click's CliRunner, the same group `main()` runs): the same
    exit code, stdout and stderr without starting an interpreter, for tests about what a
    command does rather than about the process. Logging, the redaction rules and the umask the
    run sets are put back afterwards, so nothing carries over to the next test."""
    from click.testing import CliRunner

    from ingest.cli import cli
    from ingest.convert.redact import use_rules

    root, ours = logging.getLogger(), logging.getLogger("ingest")
    saved = (list(root.handlers), root.level, ours.level)
    umask = os.umask(0o077)  # as main() sets it
    try:
        with contextlib.chdir(REPO):
            result = CliRunner().invoke(cli, args, env=env, prog_name="portkey-phoenix-ingest")
    finally:
        os.umask(umask)
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        ours.setLevel(saved[2])
        use_rules(None)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # the traceback a subprocess would have printed
    return subprocess.CompletedProcess(list(args), result.exit_code, result.stdout, result.stderr)
