"""README.md (and cron/README.md) against the real CLI, so the two cannot drift apart.

Static checks resolve what the docs name with click and the source: commands and options,
environment variables, exit codes, the set-up commands CI runs, the troubleshooting messages,
the outcome labels. A few documented commands then run for real: `import sample_logs/` into the
session's Phoenix, `status`, `convert | head -1`, and a run against a Phoenix that is down.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from conftest import invoke_cli, run_cli
from logs_factory import make_log

from ingest.cli.main import cli
from ingest.phoenix.admin.local_server import LocalPhoenix, free_port
from ingest.phoenix.reader import outcome_label

REPO = Path(__file__).resolve().parent.parent.parent
README = (REPO / "README.md").read_text()
CRON_README = (REPO / "cron" / "README.md").read_text()
PROGRAM = "portkey-phoenix-ingest"

# Options of other programs the docs show next to ours (docker, kubectl, pip).
FOREIGN_OPTIONS = {"--env-file", "--from-env-file", "--rm", "--upgrade", "--check"}


# --------------------------------------------------------------------------- helpers


def section(text: str, title: str) -> str:
    """The body of a `## title` (or `### title`) section, up to the next heading of its level."""
    match = re.search(rf"^(#+) {re.escape(title)}\s*$", text, re.M)
    assert match, f"README has no section {title!r}"
    level = len(match.group(1))
    rest = text[match.end() :]
    end = re.search(rf"^#{{1,{level}}} ", rest, re.M)
    return rest[: end.start()] if end else rest


def table_rows(text: str) -> list[list[str]]:
    """The cells of every markdown table row (header and separator rows left out)."""
    rows = []
    for line in text.splitlines():
        if not line.startswith("|") or re.match(r"^\|[\s\-|]+\|$", line):
            continue
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    headers = ("variable", "option", "code", "command", "message", "annotation")
    return [row for row in rows if row and row[0] not in headers]


def commands() -> dict[str, click.Command]:
    """Every runnable command by its path ('sync', 'config show', 'prices plan')."""
    found: dict[str, click.Command] = {}

    def walk(command: click.Command, path: list[str]) -> None:
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                walk(sub, [*path, name])
        else:
            found[" ".join(path)] = command

    walk(cli, [])
    return found


def options_of(command: click.Command) -> set[str]:
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}


def all_options() -> set[str]:
    group = {opt for param in cli.params for opt in param.opts} | {"--help", "-h"}
    return group.union(*(options_of(command) for command in commands().values()))


def invocations(text: str) -> Iterator[list[str]]:
    """The arguments of every `portkey-phoenix-ingest ...` the text shows, up to the end of
    its code span, line, pipe, comment or shell operator."""
    start = r"(?:^|`|^\$ |&& |[A-Z_]+=\S+ )"  # where a command starts, not a mention
    for match in re.finditer(rf"{start}{PROGRAM} ([^`\n|#&;>]*)", text, re.M):
        args = match.group(1).replace("[", " ").replace("]", " ").replace("\\", " ")
        try:
            yield shlex.split(args)
        except ValueError:
            yield args.split()


def resolve(args: list[str]) -> tuple[str, click.Command | None, list[str]]:
    """(command path, command, the options given to it); command None when there is none."""
    table = commands()
    path: list[str] = []
    for index, word in enumerate(args):
        if word.startswith("-"):
            break
        candidate = " ".join([*path, word])
        rest = args[index + 1 :]
        if candidate == "config show" and rest and rest[0] in table:
            # `config show COMMAND --flag ...` reads the flags as COMMAND's.
            return candidate, table[rest[0]], [a for a in rest[1:] if a.startswith("--")]
        if candidate in table:
            return candidate, table[candidate], [a for a in args[index + 1 :] if a.startswith("--")]
        if any(name.startswith(candidate + " ") for name in table):
            path.append(word)
            continue
        break
    return " ".join(path), None, [a for a in args if a.startswith("--")]


def option_name(word: str) -> str:
    return word.split("=", 1)[0]


# --------------------------------------------------------------------------- commands, options


@pytest.mark.parametrize("doc", ["README.md", "cron/README.md"])
def test_every_documented_invocation_is_a_command_with_those_options(doc: str) -> None:
    text = README if doc == "README.md" else CRON_README
    problems = []
    seen = 0
    for args in invocations(text):
        if not args or args[0] in ("--version", "--help"):
            continue
        name, command, given = resolve(args)
        if command is None:
            problems.append(f"{PROGRAM} {' '.join(args)}: no such command {name or args[0]!r}")
            continue
        seen += 1
        unknown = {option_name(word) for word in given} - options_of(command) - {"--help"}
        if unknown:
            problems.append(f"{PROGRAM} {name}: no option {sorted(unknown)}")
    assert not problems, "\n".join(problems)
    assert seen >= (10 if doc == "README.md" else 1)  # the parser found the examples


def test_every_documented_option_exists() -> None:
    """Every `--option` README names in code (tables included) is an option of the CLI."""
    named = set(re.findall(r"`[^`\n]*?(--[a-z][a-z0-9-]*)", README))
    named |= {m for block in re.findall(r"```.*?```", README, re.S)
              for m in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", block)}  # fmt: skip
    unknown = named - all_options() - FOREIGN_OPTIONS
    assert not unknown, f"README names options the CLI does not have: {sorted(unknown)}"


def test_option_tables_belong_to_their_commands() -> None:
    tables = {
        "`sync` and `backfill`": ["sync", "backfill"],
        "`import`, and options every delivering command shares": ["import"],
    }
    table = commands()
    for title, names in tables.items():
        known = set().union(*(options_of(table[name]) for name in names))
        for row in table_rows(section(README, title)):
            for opt in re.findall(r"(--[a-z][a-z0-9-]*|-[a-z])\b", row[0]):
                assert opt in known, f"{title}: {opt} is not an option of {names}"


def test_the_delivering_options_of_the_cli_are_documented() -> None:
    """The reverse: an option import/sync/backfill has is in one of README's option tables."""
    documented = set()
    for title in ("`sync` and `backfill`", "`import`, and options every delivering command shares"):
        for row in table_rows(section(README, title)):
            documented |= set(re.findall(r"(?<![\w-])(--?[a-z][a-z0-9-]*)", row[0]))
    configured = {row[1].strip("`") for row in table_rows(section(README, "Install and configure"))
                  if len(row) > 1}  # fmt: skip
    table = commands()
    missing = set()
    for name in ("import", "sync", "backfill"):
        for param in table[name].params:
            if isinstance(param, click.Option) and not set(param.opts) & (documented | configured):
                missing.add(f"{name} {param.opts[-1]}")
    assert not missing, f"options without a row in README: {sorted(missing)}"


def test_the_commands_table_names_every_command() -> None:
    rows = table_rows(section(README, "Commands").split("###")[0])
    documented = {row[0].strip("`").split()[0] for row in rows}
    top_level = set(cli.commands)
    assert documented <= top_level, documented - top_level
    assert top_level <= documented, f"commands missing from README: {top_level - documented}"


# --------------------------------------------------------------------------- environment


def cli_envvars() -> tuple[set[str], set[str]]:
    """(explicit envvars of options, the auto INGEST_<CMD>_<OPT> names of the others)."""
    explicit, auto = set(), set()
    for path, command in commands().items():
        prefix = "INGEST_" + path.upper().replace(" ", "_").replace("-", "_")
        for param in command.params:
            if not isinstance(param, click.Option):
                continue
            if param.envvar:
                explicit.add(str(param.envvar))
            elif param.name:
                auto.add(f"{prefix}_{param.name.upper()}")
    return explicit, auto


def source_envvars() -> set[str]:
    """Variables the source reads by name (os.environ / getenv with a literal)."""
    names = set()
    for path in (REPO / "ingest").rglob("*.py"):
        names |= set(re.findall(r"environ(?:\.get)?[\[(]\s*\"([A-Z_]+)\"", path.read_text()))
        names |= set(re.findall(r"getenv\(\s*\"([A-Z_]+)\"", path.read_text()))
        names |= set(re.findall(r"^[A-Z_]+ = \"((?:INGEST|PHOENIX|PORTKEY|XDG)_[A-Z_]+)\"",
                                path.read_text(), re.M))  # fmt: skip
    return names


def test_every_documented_environment_variable_is_read() -> None:
    explicit, auto = cli_envvars()
    named = set(re.findall(r"\b((?:INGEST|PHOENIX|PORTKEY|XDG)_[A-Z][A-Z_]*[A-Z])\b", README))
    named -= {"INGEST_COMMAND_OPTION"}  # the placeholder of `INGEST_<COMMAND>_<OPTION>`
    unknown = named - explicit - auto - source_envvars() - {"XDG_CONFIG_HOME"}  # click's app dir
    assert not unknown, f"README names variables the tool does not read: {sorted(unknown)}"
    assert "INGEST_<COMMAND>_<OPTION>" in README


def test_every_explicit_environment_variable_is_in_the_settings_table() -> None:
    explicit, _ = cli_envvars()
    table = {row[0].strip("`") for row in table_rows(section(README, "Install and configure"))}
    assert explicit <= table, f"missing from README's settings table: {explicit - table}"
    for row in table_rows(section(README, "Install and configure")):
        if row[0].startswith("`") and len(row) > 1 and row[1].startswith("`--"):
            flag = row[1].strip("`")
            # check's --project reads no PHOENIX_PROJECT_NAME, by design (documented).
            owners = [c for n, c in commands().items() if flag in options_of(c)
                      and (n, flag) != ("check", "--project")]  # fmt: skip
            assert owners, f"{row[0]}: no command has {flag}"
            envvars = {p.envvar for c in owners for p in c.params if flag in p.opts}
            assert envvars == {row[0].strip("`")}, f"{flag} reads {envvars}, README: {row[0]}"


def test_check_ignores_the_project_setting_as_documented() -> None:
    check = commands()["check"]
    project = next(p for p in check.params if "--project" in p.opts)
    assert project.envvar is None
    assert "`check` ignores a top-level `project` (and `PHOENIX_PROJECT_NAME`)" in README


def test_documented_auto_envvar_examples_are_real() -> None:
    _, auto = cli_envvars()
    for name in re.findall(r"`(INGEST_[A-Z_]+)=", README):
        assert name in auto, name


# --------------------------------------------------------------------------- exit codes, set-up


def test_exit_code_table_is_the_codes_of_the_tool() -> None:
    from ingest import errors

    codes = {value for module in (errors,) for name, value in vars(module).items()
             if name.startswith("EXIT_") and isinstance(value, int)}  # fmt: skip
    documented = {int(row[0]) for row in table_rows(section(README, "Exit codes"))}
    assert documented == codes
    cron_line = re.search(r"Exit codes: (.*?)\.\n\n", CRON_README, re.S)
    assert cron_line, "cron/README.md lists the exit codes"
    assert {int(code) for code in re.findall(r"\b(\d+)\s", cron_line.group(1))} == codes


def test_first_two_commands_are_the_ones_ci_runs() -> None:
    block = re.search(r"```bash\n(.*?)```", README, re.S)
    assert block and README.index(block.group(0)) < README.index("## ")
    demo, tests = [line.split("#")[0].strip() for line in block.group(1).strip().splitlines()]
    install = "pip install -e '.[server,test]'"
    assert demo == f"{install} && {PROGRAM} demo"
    assert tests == f"{install} && pytest"
    ci = (REPO / ".ci" / "run").read_text()
    assert "pip install --quiet -e '.[server,test]'" in ci
    commands_run = [line.strip() for line in ci.splitlines()
                    if line.strip() and not line.lstrip().startswith("#")]  # fmt: skip
    assert commands_run[-1] == "pytest"  # "The test command from README.md"
    assert "demo" in cli.commands
    scripts = (REPO / "pyproject.toml").read_text()
    assert f'{PROGRAM} = "ingest.cli.main:main"' in scripts or f"{PROGRAM} =" in scripts


# --------------------------------------------------------------------------- messages


def source_strings() -> list[str]:
    """The fixed parts of every string literal in ingest/ (f-string holes split them)."""
    parts: list[str] = []
    for path in (REPO / "ingest").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                parts.append(node.value)
    return parts


def fixed_fragments(message: str) -> list[str]:
    """The pieces of a documented message that are not placeholders (…, N, numbers, names)."""
    pieces = re.split(r"…|\bN\b|\d+(?:\.\d+)?|[()'\"]", message)
    return [p.strip(" .,:;") for p in pieces if len(p.strip(" .,:;").split()) >= 2]


def troubleshooting_messages() -> list[str]:
    rows = table_rows(section(README, "Troubleshooting"))
    return [row[0][1:-1] for row in rows if row[0].startswith("`") and row[0].endswith("`")]


@pytest.fixture(scope="module")
def phoenix_down_messages(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """What a user really gets from a Phoenix that is down: a run (it reads first) and a send."""
    from opentelemetry.sdk.trace import TracerProvider

    from ingest.errors import PhoenixUnreachableError
    from ingest.phoenix.api import PhoenixSettings, SpanSender

    url = f"http://127.0.0.1:{free_port()}"
    state = tmp_path_factory.mktemp("down")
    result = invoke_cli("import", "sample_logs/", "--endpoint", url, "--retry-deadline", "0.1",
                        "--state-dir", str(state))  # fmt: skip
    assert result.returncode == 1, result.stderr
    read_error = result.stderr.splitlines()[0].removeprefix("Error: ")
    span = TracerProvider().get_tracer("docs").start_span("docs")
    span.end()
    settings = PhoenixSettings(endpoint=url, project="docs", retry_deadline_s=0.1)
    with pytest.raises(PhoenixUnreachableError) as raised:
        SpanSender(settings).send([span])  # type: ignore[list-item]
    return [read_error, str(raised.value)]


def as_pattern(message: str) -> str:
    """A documented message as a regex: … is anything, numbers are any number."""
    parts = re.split(r"(…|\b\d+\b)", message)
    return "".join(".*?" if p == "…" else r"\d+" if p.isdigit() else re.escape(p) for p in parts)


def test_troubleshooting_messages_are_the_tools(phoenix_down_messages: list[str]) -> None:
    messages = troubleshooting_messages()
    assert len(messages) >= 8
    strings = source_strings()
    for message in messages:
        if message.startswith("Phoenix at … did not"):
            # Built from parts (the action is an argument): compare with the real text.
            assert any(re.fullmatch(as_pattern(message), real) for real in phoenix_down_messages), (
                message,
                phoenix_down_messages,
            )
            continue
        for fragment in fixed_fragments(message):
            assert any(fragment in s for s in strings), f"{fragment!r} (of {message!r})"


def test_phoenix_down_gives_the_documented_messages(phoenix_down_messages: list[str]) -> None:
    read, write = phoenix_down_messages
    documented = [m for m in troubleshooting_messages() if m.startswith("Phoenix at … did not")]
    assert len(documented) == 2
    assert re.match(as_pattern(documented[0]), read), read
    assert re.match(as_pattern(documented[1]), write), write
    assert "did not answer a read" in read and "did not accept spans" in write


# --------------------------------------------------------------------------- annotations


def test_outcome_labels_are_the_documented_ones() -> None:
    """The labels README lists are the ones written: logs go through the real conversion and
    the annotator's own choice of annotations, not through the label function alone."""
    from ingest.convert.records import parse_record
    from ingest.convert.spans import ConversionOptions, make_resource, to_span
    from ingest.phoenix.reader import OUTCOME, annotations_for

    row = next(r for r in table_rows(section(README, "What lands in Phoenix"))
               if r[0] == "`portkey outcome`")  # fmt: skip
    documented = set(re.findall(r"`([a-z_]+)`", row[1])) - {"is_success", "portkey outcome"}
    cases: list[dict[str, Any]] = [
        {"response_status_code": code}
        for code in (200, 400, 401, 403, 404, 408, 429, 500, 503, 504, 524)
    ]
    cases += [{"response_status_code": None, "is_success": ok} for ok in (True, False, None)]
    produced = set()
    for index, change in enumerate(cases):
        log = {**make_log(index, prefix="outcome"), **change}
        options = ConversionOptions(project="docs")
        span = to_span(parse_record(log), options, make_resource("docs"))
        produced |= {a["result"]["label"] for a in annotations_for(span) if a["name"] == OUTCOME}
    assert produced == documented
    assert outcome_label(None, None) not in produced  # "says neither": no annotation at all


# --------------------------------------------------------------------------- real runs


def shape_of(line: str) -> str:
    """A line README shows as a regex: paths, names, times and numbers may differ."""
    token = r"(\S+\.jsonl?|'[^']*'|\[[^\]]*\]|\d{4}-\d\d-\d\dT\S+Z|\d+)"
    parts = re.split(token, line)
    return "^" + "".join(".+?" if i % 2 else re.escape(p) for i, p in enumerate(parts)) + "$"


def test_import_sample_logs_prints_the_documented_summary(
    phoenix: LocalPhoenix, project: str, tmp_path: Path
) -> None:
    """`import sample_logs/` prints README's summary rows; `status` then shows the run."""
    state = str(tmp_path / "state")
    common = ("--endpoint", phoenix.url, "--project", project, "--state-dir", state)
    result = run_cli("import", "sample_logs/", *common)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"Imported into Phoenix project '{project}' at {phoenix.url}"
    example = section(README, "Three ways to run it")
    documented = re.findall(r"^  ([a-z][a-z -]+?)\s{2,}\S", example, re.M)
    printed = re.findall(r"^  ([a-z][a-z -]+?)\s{2,}\S", result.stdout, re.M)
    assert printed[: len(documented)] == documented
    assert lines[-1].startswith(f"Open in Phoenix: {phoenix.url}/projects/")
    assert "timeRangeStart=" in lines[-1]

    status = run_cli("status", "--state-dir", state)
    assert status.returncode == 0, status.stderr
    print(status.stdout)
    assert status.stdout.startswith(f"State file: {state}/state.json\n")
    assert "Files (6):" in status.stdout
    last = f"Last import: \\S+ into '{re.escape(project)}' \\(ok\\): read 70, delivered 69, "
    assert re.search(last + "already present 0, quarantined 0$", status.stdout, re.M)
    shown = re.search(r"\$ portkey-phoenix-ingest status\n(.*?)```", README, re.S)
    assert shown, "README shows a status"
    for line in shown.group(1).splitlines():
        if line.strip() != "...":  # each line README shows has a real line of its shape
            assert re.search(shape_of(line), status.stdout, re.M), (line, status.stdout)

    again = run_cli("import", "sample_logs/", *common, "--log-format", "json")
    events = [json.loads(line) for line in again.stderr.splitlines() if line.startswith("{")]
    assert events[-1]["event"] == "run_done" and events[-1]["outcome"] == "ok"
    # README's JSON log example: the run_done keys it shows are real.
    logs = section(README, "Logs and progress")
    shown_events = [json.loads(line) for line in re.findall(r"^\{.*\}$", logs, re.M)]
    keys = {key for key in shown_events[-1] if key != "..."}
    assert keys <= set(events[-1]) | {"time", "level", "logger"}, keys - set(events[-1])


def test_convert_first_line_has_the_documented_fields(tmp_path: Path) -> None:
    block = section(README, "`convert`: the span format")
    example = json.loads(re.search(r"```json\n(.*?)```", block, re.S).group(1))  # type: ignore[union-attr]
    result = invoke_cli("convert", "sample_logs/")
    assert result.returncode == 0, result.stderr
    first = json.loads(result.stdout.splitlines()[0])
    assert list(first) == list(example)
    assert set(first["status"]) == set(example["status"])
    assert first["status"]["code"] in ("OK", "ERROR", "UNSET")
    assert re.fullmatch(r"[0-9a-f]{32}", first["trace_id"])
    assert re.fullmatch(r"[0-9a-f]{16}", first["span_id"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", first["start_time"])
    assert first["resource"] == example["resource"]
    assert first["attributes"]["openinference.span.kind"] in ("LLM", "EMBEDDING", "RERANKER",
                                                               "GUARDRAIL")  # fmt: skip
    # Only spans on stdout; the counts README lists go to stderr, run_done last.
    assert all(line.startswith("{") for line in result.stdout.splitlines())
    for name in ("records read", "spans written", "duplicates skipped", "quarantined"):
        assert f"`{name}`" in block.replace("`records\nwith", "`records with")
        assert re.search(rf"^  {name}\s+\d+$", result.stderr, re.M), name
    assert "run_done" in result.stderr.strip().splitlines()[-1]


def test_convert_reports_rejected_lines_as_documented(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(make_log(1)) + "\nnot json\n")
    result = invoke_cli("convert", str(bad))
    assert result.returncode == 3
    assert f"{bad}:2: rejected: not valid JSON" in result.stderr
    assert "`FILE:LINE: rejected: REASON`" in section(README, "`convert`: the span format")
    quiet = invoke_cli("convert", "-q", str(bad))
    *rejected, last = quiet.stderr.strip().splitlines()
    assert rejected == [line for line in result.stderr.splitlines() if ": rejected: " in line]
    assert " run_done command=convert outcome=quarantined exit_code=3" in last
    assert "with `-q` only the rejected lines and `run_done`" in README


def test_convert_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """`convert ... | head -1`: the reader stops early; that is a normal end, not a failure."""
    export = tmp_path / "many.jsonl"
    export.write_text("".join(json.dumps(make_log(i)) + "\n" for i in range(3000)))
    shell = f"{shlex.quote(sys.executable)} -m ingest convert {shlex.quote(str(export))} | head -1"
    result = subprocess.run(["bash", "-o", "pipefail", "-c", shell], capture_output=True,
                            text=True, cwd=REPO, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["span_id"]
    assert "unexpected failure" not in result.stderr and "Error" not in result.stderr
    assert (
        "run_done command=convert outcome=ok exit_code=0 stdout_closed=True"
        in (result.stderr.strip().splitlines()[-1])
    )
    assert "(`convert ... | head -1`)" in README


def test_import_of_a_directory_reads_ndjson_as_documented(
    phoenix: LocalPhoenix, project: str, tmp_path: Path
) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "a.ndjson").write_text(json.dumps(make_log(1, prefix="nd")) + "\n")
    (folder / "b.txt").write_text(json.dumps(make_log(2, prefix="nd")) + "\n")
    result = run_cli("import", str(folder), "--endpoint", phoenix.url, "--project", project,
                     "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["files"], summary["read"], summary["delivered"]) == (1, 1, 1)
    assert "`*.ndjson`" in README


def test_state_and_config_follow_xdg_as_documented(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.delenv("INGEST_STATE_DIR")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    result = invoke_cli("config", "show", "status")
    assert result.returncode == 0, result.stderr
    assert str(tmp_path / "xdg-state" / "portkey-phoenix-ingest") in result.stdout
    config = tmp_path / "xdg-config" / "portkey-phoenix-ingest" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('project = "from-xdg"\n')
    shown = invoke_cli("config", "show", "import")
    assert "from-xdg" in shown.stdout, shown.stdout
    assert "`$XDG_STATE_HOME/portkey-phoenix-ingest`" in README
    assert "`$XDG_CONFIG_HOME/portkey-phoenix-ingest/config.toml`" in README


def test_bench_readme_describes_every_benchmark() -> None:
    bench = (REPO / "bench" / "README.md").read_text()
    scripts = sorted(path.name for path in (REPO / "bench").glob("bench_*.py"))
    missing = [name for name in scripts if f"bench/{name}" not in bench]
    assert not missing, f"bench/README.md does not describe {missing}"


def test_doctor_names_every_command_that_needs_the_portkey_key() -> None:
    """The commands README's troubleshooting says need a Portkey key are the ones doctor names."""
    from ingest.ops.doctor import check_portkey

    (warning,), _ = check_portkey(None, "https://api.portkey.ai/v1")
    (failure,), _ = check_portkey(None, "https://api.portkey.ai/v1", required=True)
    row = next(r for r in table_rows(section(README, "Troubleshooting"))
               if r[0].startswith("`no Portkey API key"))  # fmt: skip
    for name in ("sync", "backfill", "reconcile", "prices plan", "resync"):
        assert name.split()[0] in warning.detail, (name, warning.detail)
        assert name.split()[0] in row[1], (name, row[1])
    assert "reconcile" in failure.detail


def test_documented_option_defaults_are_the_cli_defaults() -> None:
    table = commands()
    tables = {
        "`sync` and `backfill`": ["sync", "backfill"],
        "`import`, and options every delivering command shares": ["import"],
    }
    checked = 0
    for title, names in tables.items():
        params = {opt: p for name in names for p in table[name].params for opt in p.opts}
        for row in table_rows(section(README, title)):
            flags = re.findall(r"--[a-z][a-z0-9-]*", row[0])
            values = re.findall(r"`?\b(\d+[smhd]|\d+(?:\.\d+)?)\b`?", row[1].split("(")[0])
            for flag, value in zip(flags, values, strict=False):
                default = params[flag].default
                if isinstance(default, int | float) and not isinstance(default, bool):
                    assert float(value) == float(default), (flag, value, default)
                else:
                    assert value == str(default), (flag, value, default)
                checked += 1
    assert checked >= 12


def test_the_provider_table_is_the_mapping() -> None:
    """README's `ai_org` -> llm.provider / llm.system rows, through the real conversion."""
    from ingest.convert.providers import provider_attributes

    def mapped(org: str, model: str = "some-model") -> tuple[str, str]:
        got = dict(provider_attributes(org, model))
        return got["llm.provider"], got["llm.system"]

    rows = [r for r in table_rows(section(README, "What lands in Phoenix"))
            if len(r) == 3 and r[0] != "`ai_org`"]  # fmt: skip
    checked = 0
    for org_cell, provider_cell, system_cell in rows:
        if org_cell == "anything else":
            assert mapped("My-LLM") == ("My-LLM", "My-LLM")
            continue
        groups = [group.split(", ") for group in org_cell.split(" / ")]
        providers = provider_cell.split(" / ")
        systems = system_cell.split(" / ")
        for index, orgs in enumerate(groups):
            provider_names = providers[min(index, len(providers) - 1)].split(", ")
            for position, org in enumerate(orgs):
                got_provider, got_system = mapped(org)
                if len(provider_names) == len(orgs):
                    assert got_provider == provider_names[position], (org, got_provider)
                else:  # several spellings of one provider
                    assert got_provider in provider_names, (org, got_provider, provider_cell)
                system = systems[min(index, len(systems) - 1)].split(" (")[0]
                if system == "the same as `llm.provider`":
                    assert got_system == got_provider, (org, got_system)
                elif not system.startswith("the model's family"):
                    assert got_system == system, (org, got_system, system_cell)
                checked += 1
    assert checked >= 20
    assert mapped("bedrock", "anthropic.claude-3-5-sonnet")[1] == "anthropic"
    assert mapped("bedrock", "meta.llama3-70b")[1] == "meta"
    assert mapped("azure-openai", "gpt-4o")[1] == "openai"
    # "(a Claude, Mistral or Cohere model: that family)" holds exactly for the rows that say so.
    for org_cell, _, system_cell in rows:
        if org_cell.startswith("azure"):
            family = "(a Claude, Mistral or Cohere model: that family)" in system_cell
            for org in org_cell.split(", "):
                expected = ("anthropic", "mistralai", "cohere") if family else ("openai",) * 3
                got = tuple(mapped(org, model)[1] for model in
                            ("claude-3-5-sonnet", "mistral-large", "cohere-command-r"))  # fmt: skip
                assert got == expected, (org, got, system_cell)
    assert mapped("vertex-ai", "claude-3-5-sonnet")[1] == "anthropic"


def test_shards_may_share_a_state_directory_as_documented(tmp_path: Path) -> None:
    """cron/ says shards may share one state directory: each has its own under shards/I-of-N
    (two shards running at once on one directory: tests/run/test_pull.py)."""
    from ingest.run.state import shard_dir

    job = (REPO / "cron" / "k8s-backfill-indexed-job.yaml").read_text()
    for text in (CRON_README, job, README):
        assert "STATE_DIR/shards/I-of-N" in text
        assert "would exit 75" not in text
    assert shard_dir(tmp_path, (2, 4)) == tmp_path / "shards" / "2-of-4"
    assert shard_dir(tmp_path, (1, 4)) != shard_dir(tmp_path, (2, 4))


# --------------------------------------------------------------------------- every command


DOWN = "http://127.0.0.1:{phoenix}"  # nothing listens on these ports: a run fails fast,
PORTKEY_DOWN = "http://127.0.0.1:{portkey}/v1"  # naming the address it was given
RANGE = 'since = "2026-01-01"\nuntil = "2026-01-02"\n'
PHOENIX = 'endpoint = "{down}"\nretry_deadline = 0\n'  # no retries: the run fails at once
PORTKEY = 'portkey_api_key = "pk-docs"\nportkey_base_url = "{portkey_down}"\n'
RETRY = "portkey_retry_deadline = 0.1\n"  # the least it takes: each run fails in ~0.1 s

# Each command run with only its own config-file table: (args, table body, what the output
# shows when the table was read). A command missing here fails the test below.
RUNS: dict[str, tuple[list[str], str, str]] = {
    "import": (["import", "sample_logs/"], PHOENIX, "{down}"),
    "convert": (["convert", "sample_logs/"], 'project = "from-its-table"\n',
                '"openinference.project.name": "from-its-table"'),
    "status": (["status"], 'state_dir = "{tmp}/from-its-table"\n',
               "State file: {tmp}/from-its-table/state.json"),
    "check": (["check"], PHOENIX, "{down}"),
    "demo": (["demo", "--no-serve"], 'state_dir = "{tmp}/a-file"\n', "{tmp}/a-file"),
    "sync": (["sync"], PHOENIX + PORTKEY + RETRY, "127.0.0.1:"),
    "backfill": (["backfill"], RANGE + PHOENIX + PORTKEY + RETRY, "127.0.0.1:"),
    "config show": (["config", "show"], "json = true\n", '"command": "sync"'),
    "doctor": (["doctor"], PHOENIX, "{down}"),
    "reconcile": (["reconcile"], RANGE + PHOENIX + PORTKEY, "127.0.0.1:"),
    "prices plan": (["prices", "plan"], RANGE + PHOENIX + PORTKEY + RETRY, "127.0.0.1:"),
    "prices apply": (["prices", "apply"], RANGE + PHOENIX + PORTKEY + RETRY + "yes = true\n",
                     "127.0.0.1:"),
    "prices remove": (["prices", "remove"], PHOENIX + "yes = true\n", "{down}"),
    "resync": (["resync"], RANGE + PHOENIX + PORTKEY + RETRY + "yes = true\n", "127.0.0.1:"),
}  # fmt: skip


def run_with_its_table(path: str, tmp_path: Path, monkeypatch: Any, *extra: str) -> tuple[
    Any, str
]:  # fmt: skip
    """Run `path` as README's config section says: its settings only in its own table."""
    monkeypatch.delenv("INGEST_STATE_DIR")  # the file must decide, not the test's environment
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    (tmp_path / "a-file").write_text("not a directory\n")
    args, body, shown = RUNS[path]
    values = {"down": DOWN.format(phoenix=free_port()), "tmp": str(tmp_path),
              "portkey_down": PORTKEY_DOWN.format(portkey=free_port())}  # fmt: skip
    config = tmp_path / "config.toml"
    config.write_text(f"[{path.replace(' ', '.')}]\n" + body.format(**values))
    config.chmod(0o600)
    result = invoke_cli("--config", str(config), *args, *extra)  # 36 runs: in this process
    return result, shown.format(**values)


@pytest.mark.parametrize("path", sorted(commands()))
def test_every_command_honours_its_table_in_the_config_file(
    path: str, tmp_path: Path, monkeypatch: Any
) -> None:
    """README: "a `[command]` table: that command"; `[prices.apply]`: one subcommand. Each
    command really runs with what its table says (not only `config show`'s view of it)."""
    assert set(RUNS) == set(commands()), "every command has a row in RUNS"
    result, shown = run_with_its_table(path, tmp_path, monkeypatch)
    output = result.stdout + result.stderr
    assert shown in output, output
    assert "unknown setting" not in output and "Missing option" not in output, output
    assert "Keys are option names with `_` (top level: every command; a `[command]` table" in (
        README.replace("\n", " ")
    )


QUIET = sorted(path for path, command in commands().items() if "--quiet" in options_of(command))


@pytest.mark.parametrize("log_format", ["text", "json"])
@pytest.mark.parametrize("path", QUIET)
def test_run_done_is_the_last_line_under_quiet(
    path: str, log_format: str, tmp_path: Path, monkeypatch: Any
) -> None:
    """README: `run_done` is the last line of every run of every command; `-q` leaves only
    errors and `run_done`."""
    result, _ = run_with_its_table(path, tmp_path, monkeypatch, "-q", "--log-format", log_format)
    last = result.stderr.strip().splitlines()[-1]
    if log_format == "json":
        event = json.loads(last)
        assert (event["event"], event["command"]) == ("run_done", path.split()[-1]), last
        assert event["exit_code"] == result.returncode
    else:
        assert f" run_done command={path.split()[-1]} " in last, result.stderr
        assert f" exit_code={result.returncode}" in last
    assert "`-q` leaves only errors and `run_done`" in README


# --------------------------------------------------------------------------- the repository


def tracked_text_files() -> dict[str, str]:
    """Every file git tracks in the repository that reads as text, by its path."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True)
    if listed.returncode != 0:  # not a git checkout (an sdist): the files on disk
        files = [p.relative_to(REPO) for p in REPO.rglob("*") if p.is_file()]
        names = [str(p) for p in files if not any(part.startswith(".") for part in p.parts)]
    else:
        names = [name for name in listed.stdout.split("\0") if name]
    texts = {}
    for name in names:
        try:
            texts[name] = (REPO / name).read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue
    return texts


DOCS = ["README.md", "cron/README.md", "bench/README.md", "bench/RESULTS.md", "tests/README.md",
        "sample_logs/README.md",
        *(str(p.relative_to(REPO)) for p in sorted((REPO / "docs").glob("*.md")))]  # fmt: skip


def test_no_absolute_machine_path_and_no_citation_outside_the_repository() -> None:
    """The repository stands alone: no developer's home or work directory, and no notes
    that live outside it (the design is docs/design.md)."""
    outside = re.compile("|".join([r"/wo" + r"rk/", r"/ho" + r"me/", r"/Us" + r"ers/",
                                   r"\bDES" + r"IGN\.md", r"\brefer" + r"ence/[\w-]+\.md",
                                   r"\bno" + r"tes/[\w-]+\.md"]))  # fmt: skip
    found = [f"{name}:{number}: {line.strip()}"
             for name, text in tracked_text_files().items()
             for number, line in enumerate(text.splitlines(), 1)
             if outside.search(line)]  # fmt: skip
    assert not found, "\n".join(found)


def test_documented_module_names_import() -> None:
    """`ingest.x.y` in the docs (and `ingest.x.y.name`) is a module of the package, or a
    name in one."""
    import importlib

    problems = []
    for doc in DOCS:
        for dotted in set(re.findall(r"`(ingest(?:\.\w+)+)`?", (REPO / doc).read_text())):
            parts = dotted.split(".")
            for cut in range(len(parts), 0, -1):
                try:
                    found: Any = importlib.import_module(".".join(parts[:cut]))
                except ModuleNotFoundError:
                    continue
                for name in parts[cut:]:
                    found = getattr(found, name, None)
                if found is None:
                    problems.append(f"{doc}: {dotted}")
                break
    assert not problems, "\n".join(problems)
    assert "ingest.phoenix.admin.local_server" in README


def cited_paths(text: str) -> set[str]:
    """Paths a text cites: markdown links, and `code` that names a file or folder of the
    repository (cron/crontab, tests/run/test_pull.py, convert/ids.py, docs/design.md)."""
    roots = {p.name for p in REPO.iterdir() if p.is_dir() and not p.name.startswith(".")}
    roots |= {p.name for p in (REPO / "ingest").iterdir() if p.is_dir()} | {".ci"}
    roots |= {p.name for p in (REPO / "tests").iterdir() if p.is_dir()}
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    code = re.findall(r"[`\s(\"]((?:\.ci|[a-z_]+)/[\w*./-]*[\w*/])", text)
    return {path for path in links if "://" not in path} | {
        path for path in code if path.split("/")[0] in roots and "<" not in path
    }


def exists(path: str, near: Path) -> bool:
    path = path.split(":")[0].rstrip("/.")
    for base in (near, REPO, REPO / "ingest", REPO / "tests"):
        if ("*" in path and list(base.glob(path))) or (base / path).exists():
            return True
        module = re.sub(r"\.\w+$", "", path) + ".py"  # `ops/config.mask`: a name in a module
        if path.count(".") == 1 and not path.endswith(".py") and (base / module).is_file():
            return True
    return False


def test_every_file_the_docs_cite_exists() -> None:
    missing = []
    for doc in DOCS:
        for path in cited_paths((REPO / doc).read_text()):
            if not exists(path, (REPO / doc).parent):
                missing.append(f"{doc}: {path}")
        for test_file in re.findall(r"`(test_\w+\.py)`", (REPO / doc).read_text()):
            if not list((REPO / "tests").rglob(test_file)):  # a test file named without its folder
                missing.append(f"{doc}: {test_file}")
    for name, text in tracked_text_files().items():  # the code's citations of the docs
        if name.endswith(".py"):
            for path in re.findall(r"\b((?:docs|bench|cron)/[\w.-]+\.(?:md|py|yaml|yml))", text):
                if not (REPO / path).exists():
                    missing.append(f"{name}: {path}")
            for title in re.findall(r"docs/design\.md[,\s(]+\"([^\"]+)\"", text):
                if not re.search(rf"^#+ {re.escape(title)}$", DESIGN, re.M):
                    missing.append(f"{name}: docs/design.md has no section {title!r}")
    assert not missing, "\n".join(sorted(missing))


DESIGN = (REPO / "docs" / "design.md").read_text()


def test_the_design_states_what_the_code_relies_on() -> None:
    for title in ("Spans are write-once", "Acknowledged is not stored",
                  "Endpoints and versions used", "Export jobs", "Record shapes", "Invariants",
                  "Attribute mapping"):  # fmt: skip
        assert re.search(rf"^#+ {title}$", DESIGN, re.M), title
    for number in range(1, 6):
        assert re.search(rf"^{number}\. \*\*", DESIGN, re.M), f"invariant {number}"
    from ingest.phoenix.capabilities import NEWEST_TESTED, OLDEST_SUPPORTED, format_version

    assert f"Phoenix {format_version(OLDEST_SUPPORTED)} to {format_version(NEWEST_TESTED)}" in (
        DESIGN
    )
