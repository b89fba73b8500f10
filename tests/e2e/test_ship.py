"""Shipping: `check` tidies up after itself, `demo` stops Phoenix on every stop signal, the
container image runs commands the CLI accepts, and the built wheel installs and runs.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click
import httpx
import pytest

import ingest
from ingest.phoenix.admin.local_server import LocalPhoenix, free_port
from ingest.phoenix.api import import_phoenix_client
from tests.conftest import REPO, SAMPLE_LOGS, read_spans, run_cli

# ---- check: delete the project it created when it passes ------------------------------------


def _project_exists(url: str, name: str) -> bool:
    try:
        import_phoenix_client()(base_url=url).projects.get(project_name=name)
    except httpx.HTTPStatusError as exc:
        if exc.response.status_code == 404:
            return False
        raise
    return True


def _fresh_project(stdout: str) -> str:
    match = re.search(r"into project '(portkey-check-[^']+)'", stdout)
    assert match, stdout
    return match[1]


def test_a_passed_check_deletes_the_project_it_created(phoenix: LocalPhoenix) -> None:
    result = run_cli("check", "--endpoint", phoenix.url)
    assert result.returncode == 0, result.stdout + result.stderr
    name = _fresh_project(result.stdout)
    assert f"Deleted the check's project '{name}' (use --keep to keep it)." in result.stdout
    assert not _project_exists(phoenix.url, name)


def test_keep_keeps_the_passed_checks_project_and_prints_its_link(phoenix: LocalPhoenix) -> None:
    result = run_cli("check", "--endpoint", phoenix.url, "--keep")
    assert result.returncode == 0, result.stdout + result.stderr
    name = _fresh_project(result.stdout)
    assert _project_exists(phoenix.url, name)
    link = rf"Project '{name}' kept: {phoenix.url}/projects/\S+\?timeRange"
    assert re.search(link, result.stdout)
    expected = json.loads((SAMPLE_LOGS / "EXPECTED.json").read_text())
    assert len(read_spans(phoenix.url, name)) == len(expected["logs"])


def test_a_project_the_user_named_is_never_deleted(phoenix: LocalPhoenix, project: str) -> None:
    result = run_cli("check", "--endpoint", phoenix.url, "--project", project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Deleted" not in result.stdout
    assert _project_exists(phoenix.url, project)


def test_a_failed_check_keeps_its_project_and_prints_its_link(
    phoenix: LocalPhoenix, tmp_path: Path
) -> None:
    logs = shutil.copytree(
        SAMPLE_LOGS, tmp_path / "logs", ignore=shutil.ignore_patterns("malformed")
    )
    expected = json.loads((logs / "EXPECTED.json").read_text())
    expected["logs"][next(iter(expected["logs"]))]["model"] = "not-the-model"
    (logs / "EXPECTED.json").write_text(json.dumps(expected))
    result = run_cli("check", "--endpoint", phoenix.url, "--logs", str(logs))
    assert result.returncode == 1
    assert "check FAILED" in result.stdout
    name = _fresh_project(result.stdout)
    assert _project_exists(phoenix.url, name)
    link = re.search(rf"Project '{name}' kept: (\S+)", result.stdout)
    assert link, result.stdout
    project_id = import_phoenix_client()(base_url=phoenix.url).projects.get(project_name=name)["id"]
    # The id is base64 ("UHJvamVjdDo0NQ=="): quoted in the URL, as Phoenix's own links are.
    expected = f"{phoenix.url}/projects/{quote(project_id, safe='')}?timeRangeStart=2026-"
    assert link[1].startswith(expected)


# ---- demo: SIGTERM and SIGHUP stop the Phoenix child as Ctrl-C does --------------------------


def _children(pid: int) -> list[int]:
    """Processes whose parent is `pid` (read from /proc, as `ps` does)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended while we looked
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    """Running, and not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.phoenix  # the demo starts its own Phoenix
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_demo_stops_its_phoenix_on_a_stop_signal(signum: int, tmp_path: Path) -> None:
    port, state = free_port(), str(tmp_path / "state")
    demo = subprocess.Popen(
        [sys.executable, "-m", "ingest", "demo", "--port", str(port), "--state-dir", state],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
    )
    lines: list[str] = []
    try:
        assert demo.stdout is not None
        for line in demo.stdout:  # the server is up and the import done: now it serves
            lines.append(line)
            if "Phoenix keeps running" in line:
                break
        assert demo.poll() is None, "".join(lines)
        (child,) = _children(demo.pid)
        assert _port_open(port)
        demo.send_signal(signum)
        output, _ = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert "Stopping Phoenix ..." in output, "".join(lines) + output
    # The demo priced its own Phoenix first: its total is the bill, the image (billed per
    # image) included.
    [cost] = [line for line in lines if line.startswith("Phoenix's total cost of the project")]
    total, billed = (float(x) for x in re.findall(r"\$(\d+\.\d+)", cost))
    assert billed == pytest.approx(0.2043, abs=5e-5), cost
    assert total == pytest.approx(billed, rel=0.01), cost
    # Stopped while serving: the import's exit code, as after Ctrl-C.
    assert demo.returncode == 0, "".join(lines) + output
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(child), f"Phoenix (pid {child}) still runs after {signum!r}"
    assert not _port_open(port)


# ---- the container image ---------------------------------------------------------------------

PROGRAM = "portkey-phoenix-ingest"
K8S = [REPO / "cron" / "k8s-cronjob.yaml", REPO / "cron" / "k8s-backfill-indexed-job.yaml"]


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order; continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in (REPO / "Dockerfile").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, rest = (pending + line).partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def _last(keyword: str) -> str:
    values = [rest for name, rest in _dockerfile() if name == keyword]
    assert values, f"no {keyword} in the Dockerfile"
    return values[-1]


def _exec_form(keyword: str) -> list[str]:
    """ENTRYPOINT/CMD in JSON (exec) form: no shell in between, signals reach the tool."""
    value = json.loads(_last(keyword))
    assert isinstance(value, list) and all(isinstance(item, str) for item in value), value
    return value


def _parses(args: list[str]) -> None:
    """click parses `args` as at run time; --help/--version are resolved, not run."""
    from ingest.cli import cli

    try:
        if not args or args[0].startswith("-"):  # options of the group itself
            cli.make_context(PROGRAM, list(args), resilient_parsing=True)
            return
        group = cli.make_context(PROGRAM, args[:1])
        name, command, _ = cli.resolve_command(group, args[:1])
        assert command is not None and name is not None, args
        command.make_context(name, args[1:], parent=group)
    except click.UsageError as exc:
        pytest.fail(f"the CLI rejects {shlex.join([PROGRAM, *args])}: {exc.format_message()}")


def _base_image() -> str:
    """The run stage's base: FROM with the ARG's default substituted."""
    args = dict(rest.split("=", 1) for name, rest in _dockerfile() if name == "ARG" and "=" in rest)
    (stage_from,) = [rest for name, rest in _dockerfile() if name == "FROM"][-1:]
    return re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], stage_from.split()[0])


def test_image_entrypoint_is_the_console_script_and_cmd_is_accepted() -> None:
    entrypoint = _exec_form("ENTRYPOINT")
    assert entrypoint == [PROGRAM]
    assert _pyproject()["project"]["scripts"][PROGRAM] == "ingest.cli:main"
    _parses(_exec_form("CMD"))
    _parses(["--version"])  # what the image test runs


def test_image_is_multi_stage_on_a_pinned_slim_python_without_the_server() -> None:
    froms = [rest for name, rest in _dockerfile() if name == "FROM"]
    assert len(froms) >= 2, "build the wheel in one stage, install it in another"
    base = _base_image()
    assert re.fullmatch(r"python:3\.\d+\.\d+-slim(-\w+)?", base), f"not pinned: {base}"
    installs = [rest for name, rest in _dockerfile() if name == "RUN" and "pip install" in rest]
    assert len(installs) == 1 and "/dist/*.whl" in installs[0], installs
    assert "[server]" not in installs[0] and "arize-phoenix " not in installs[0]
    assert _last("VOLUME") == '["/state"]'
    assert "INGEST_STATE_DIR=/state" in " ".join(
        rest for name, rest in _dockerfile() if name == "ENV"
    )


def test_the_documented_docker_run_keeps_its_state_in_the_volume() -> None:
    """README's `docker run --env-file ENV -v VOLUME:/state ...` with ENV made from
    cron/*.env.example: the file must not move the state away from the image's volume
    (`--env-file` beats the image's ENV), where uid 10001 owns the directory."""
    env = {"INGEST_STATE_DIR": "/state"}  # the image's ENV ...
    for name, rest in _dockerfile():
        if name == "ENV":
            env.update(dict(re.findall(r"(\w+)=(\S+)", rest)))
    example = (REPO / "cron" / "portkey-phoenix-ingest.env.example").read_text(encoding="utf-8")
    for line in example.splitlines():  # ... then the env file over it, as docker reads them
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    volume = json.loads(_last("VOLUME"))
    assert env["INGEST_STATE_DIR"] in volume, env["INGEST_STATE_DIR"]
    assert "chown 10001:10001 /state" in " ".join(rest for name, rest in _dockerfile())
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    runs = re.findall(r"docker run [^\n]*--env-file[^\n]*\\\n[^\n]*", readme)
    assert runs, "README shows a docker run with --env-file"
    for run in runs:
        mounts = re.findall(r"-v \S+:(\S+)", run)
        assert mounts == volume, (run, volume)


def test_image_bakes_in_no_secret_and_copies_only_the_sources() -> None:
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    for name in ("PORTKEY_API_KEY", "PHOENIX_API_KEY", "PHOENIX_CLIENT_HEADERS"):
        assert name not in text, f"{name} must come at run time, not from the image"
    ignore = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    patterns = [line.strip() for line in ignore if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*", "an allowlist: nothing enters the context unless named"
    allowed = {pattern[1:].rstrip("/") for pattern in patterns if pattern.startswith("!")}
    copied = {
        source.rstrip("/")
        for name, rest in _dockerfile()
        if name == "COPY" and "--from" not in rest
        for source in rest.split()[:-1]
    }
    assert copied == allowed, (copied, allowed)
    assert not allowed & {".venv", ".git", "state", "dist", "tests", ".pytest_cache", ".env"}


def _security_context(path: Path) -> dict[str, int]:
    """runAsUser/runAsGroup/fsGroup of the pod (the manifests hold exactly one of each)."""
    text = path.read_text(encoding="utf-8")
    found = {}
    for key in ("runAsUser", "runAsGroup", "fsGroup"):
        (value,) = re.findall(rf"^\s*{key}:\s*(\d+)\s*$", text, re.MULTILINE)
        found[key] = int(value)
    assert re.search(r"^\s*runAsNonRoot:\s*true\s*$", text, re.MULTILINE), path.name
    return found


@pytest.mark.parametrize("manifest", K8S, ids=lambda path: path.name)
def test_manifests_run_the_image_as_its_uid_with_its_version_tag(manifest: Path) -> None:
    uid, _, gid = _last("USER").partition(":")
    assert uid.isdigit() and gid.isdigit(), "numeric, so runAsNonRoot can check it"
    assert _security_context(manifest) == {
        "runAsUser": int(uid),
        "runAsGroup": int(gid),
        "fsGroup": int(gid),
    }
    text = manifest.read_text(encoding="utf-8")
    images = re.findall(r"^\s*(?:- )?image:\s*(\S+)\s*$", text, re.MULTILINE)
    version = _pyproject()["project"]["version"]
    assert images == [f"ghcr.io/your-org/{PROGRAM}:{version}"], images
    assert version == ingest.__version__
    assert f":{version} ." in text or "k8s-cronjob.yaml" in text, "the build command is named"


@pytest.mark.parametrize("manifest", K8S, ids=lambda path: path.name)
def test_manifest_commands_run_the_images_program_with_arguments_the_cli_accepts(
    manifest: Path,
) -> None:
    text = manifest.read_text(encoding="utf-8")
    (command,) = [json.loads(m) for m in re.findall(r"^\s*command:\s*(\[.*\])\s*$", text, re.M)]
    if command[:2] == ["/bin/sh", "-c"]:  # the slim base has /bin/sh; expand as the shell would
        script = re.sub(r"\$\(\(\s*JOB_COMPLETION_INDEX\s*\+\s*1\s*\)\)", "1", command[2])
        command = shlex.split(script.replace("$JOB_COMPLETION_INDEX", "0"))
        assert command[0] == "exec", command
        command = command[1:]
    assert command[0] == _exec_form("ENTRYPOINT")[0], "the program the image installs"
    if "--shard" in command and not any(
        "--shard" in param.opts for param in _cli_commands()["backfill"].params
    ):
        pytest.xfail("--shard lands with the sharded backfill (see tests/cli/test_cron.py)")
    _parses(command[1:])


def _cli_commands() -> dict[str, click.Command]:
    from ingest.cli import cli

    return dict(cli.commands)


def _docker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_image_builds_and_runs_version_as_its_uid() -> None:
    """Builds the image and runs it. Skipped, with the reason, where no container engine can."""
    if shutil.which("docker") is None:
        pytest.skip("image build not tested: no `docker` command on this machine")
    info = _docker("info", "--format", "{{.ServerVersion}}")
    if info.returncode != 0:
        reason = (info.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"image build not tested: the docker daemon does not answer ({reason})")
    base = _base_image()
    if _docker("image", "inspect", base).returncode != 0:
        pull = _docker("pull", base, timeout=600)
        if pull.returncode != 0:
            reason = (pull.stderr.strip().splitlines() or ["no output"])[-1]
            pytest.skip(f"image build not tested: cannot pull the base image {base} ({reason})")
    version = _pyproject()["project"]["version"]
    tag = f"{PROGRAM}:{version}-test"
    build = _docker("build", "-t", tag, str(REPO), timeout=1200)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    try:
        # As the manifests run it: non-root, read-only root filesystem, no capabilities.
        run = _docker("run", "--rm", "--read-only", "--cap-drop", "ALL", tag, "--version")
        assert run.returncode == 0, run.stderr
        assert run.stdout.strip() == f"{PROGRAM}, version {version}"
        uid = _docker("run", "--rm", "--entrypoint", "id", tag)
        assert uid.stdout.startswith("uid=10001(ingest) gid=10001(ingest)"), uid.stdout
        demo = _docker("run", "--rm", tag, "demo", "--no-serve")
        assert demo.returncode == 2 and "pip install 'portkey-phoenix-ingest[server]'" in (
            demo.stderr
        ), "the image has no Phoenix server (the server extra is not installed)"
    finally:
        _docker("image", "rm", "-f", tag)


# ---- packaging: the wheel and the sdist install and run in a fresh virtualenv ----------------


def _fresh_venv(path: Path) -> Path:
    """A new virtualenv that sees the project venv's packages (the dependencies and the Phoenix
    server, already installed: no download, no network) after its own, so the tool itself can
    only come from what is installed into it. Returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    # A plain path line: the project venv's own .pth files (its editable install) stay unread.
    (Path(site) / "project-venv-packages.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return python


def _install(python: Path, artifact: Path) -> None:
    """pip (the project venv's) installs the artifact alone into the venv of `python`, offline;
    an sdist is built on the way, with the hatchling the venv sees."""
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
         "--no-deps", "--no-index", "--ignore-installed", "--no-build-isolation", str(artifact)],
        check=True, env=_clean_env(python), timeout=300,
    )  # fmt: skip


def _clean_env(python: Path) -> dict[str, str]:
    """No PYTHONPATH (it would put the checkout first); the fresh venv's bin first on PATH."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    env["PATH"] = f"{python.parent}:/usr/local/bin:/usr/bin:/bin"
    return env


def _run_installed(python: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python.parent / PROGRAM), *args],
        capture_output=True, text=True, timeout=300, cwd=cwd, env=_clean_env(python),
    )  # fmt: skip


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """`python -m build` of the checkout: one wheel and one sdist (offline: no isolation)."""
    pytest.importorskip("build", reason="`build` is in the test extra: pip install -e '.[test]'")
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(REPO)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    version = _pyproject()["project"]["version"]
    wheel = dist / f"portkey_phoenix_ingest-{version}-py3-none-any.whl"
    sdist = dist / f"portkey_phoenix_ingest-{version}.tar.gz"
    assert sorted(dist.iterdir()) == sorted([wheel, sdist])
    return {"wheel": wheel, "sdist": sdist}


def _installed_from(python: Path, venv: Path, cwd: Path) -> None:
    """The tool, its sample logs and its version metadata come from the fresh venv."""
    probe = subprocess.run(
        [str(python), "-c", "import ingest, importlib.metadata as m; "
         "from ingest.sources.samples import sample_logs_dir as s; "
         "print(ingest.__file__, s(), m.version('portkey-phoenix-ingest'))"],
        capture_output=True, text=True, check=True, cwd=cwd, env=_clean_env(python),
    ).stdout.split()  # fmt: skip
    module, samples, version = probe
    assert Path(module).is_relative_to(venv) and Path(samples).is_relative_to(venv), probe
    assert version == _pyproject()["project"]["version"]
    # The declared dependencies are satisfied by what the venv sees (the metadata is right).
    check = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "check"],
                           capture_output=True, text=True, env=_clean_env(python))  # fmt: skip
    assert "portkey-phoenix-ingest" not in check.stdout, check.stdout


@pytest.mark.phoenix  # the demo starts its own Phoenix
def test_the_wheel_installs_and_runs_version_and_demo(
    built: dict[str, Path], tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    python = _fresh_venv(venv)
    _install(python, built["wheel"])
    _installed_from(python, venv, tmp_path)
    version = _run_installed(python, "--version", cwd=tmp_path)
    assert version.stdout.strip() == f"{PROGRAM}, version {_pyproject()['project']['version']}"
    demo = _run_installed(python, "demo", "--no-serve", "--state-dir", str(tmp_path / "s"),
                          cwd=tmp_path)  # fmt: skip
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert re.search(r"delivered\s+69", demo.stdout), demo.stdout


def test_the_sdist_installs_and_runs(built: dict[str, Path], tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    python = _fresh_venv(venv)
    _install(python, built["sdist"])
    _installed_from(python, venv, tmp_path)
    version = _run_installed(python, "--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith(f"{PROGRAM}, version "), version
