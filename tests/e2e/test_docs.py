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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from conftest import run_cli
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
    result = run_cli("import", "sample_logs/", "--endpoint", url, "--retry-deadline", "1",
                     "--state-dir", str(state))  # fmt: skip
    assert result.returncode == 1, result.stderr
    read_error = result.stderr.splitlines()[0].removeprefix("Error: ")
    span = TracerProvider().get_tracer("docs").start_span("docs")
    span.end()
    settings = PhoenixSettings(endpoint=url, project="docs", retry_deadline_s=1)
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
    row = next(r for r in table_rows(section(README, "What lands in Phoenix"))
               if r[0] == "`portkey outcome`")  # fmt: skip
    documented = set(re.findall(r"`([a-z_]+)`", row[1]))
    cases = [(code, None) for code in (200, 400, 401, 403, 404, 408, 429, 500, 503, 504, 524)]
    cases += [(None, True), (None, False), (None, None), ("x", None)]
    produced = {outcome_label(code, ok) for code, ok in cases}
    assert produced == documented - {"is_success"}
    assert {"error", "unknown"} <= documented


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
    result = run_cli("convert", "sample_logs/")
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
    result = run_cli("convert", str(bad))
    assert result.returncode == 3
    assert f"{bad}:2: rejected: not valid JSON" in result.stderr
    assert "`FILE:LINE: rejected: REASON`" in section(README, "`convert`: the span format")
    quiet = run_cli("convert", "-q", str(bad))
    assert quiet.stderr.strip().splitlines() == [line for line in result.stderr.splitlines()
                                                 if ": rejected: " in line]  # fmt: skip


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
    result = run_cli("config", "show", "status")
    assert result.returncode == 0, result.stderr
    assert str(tmp_path / "xdg-state" / "portkey-phoenix-ingest") in result.stdout
    config = tmp_path / "xdg-config" / "portkey-phoenix-ingest" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('project = "from-xdg"\n')
    shown = run_cli("config", "show", "import")
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
