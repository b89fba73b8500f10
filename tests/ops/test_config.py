"""Settings: flag > environment > config file > default, `config show`, and file errors."""

from __future__ import annotations

import json
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from ingest.cli import cli
from ingest.cli.config_cmd import config_group
from ingest.errors import ConfigError
from ingest.ops.config import (
    ClientHeaders,
    client_headers_option,
    config_option,
    default_config_path,
    display_value,
    leaf_commands,
    mask,
    option_keys,
    parse_headers,
)
from tests.logs_factory import write_logs

FILE_KEY = "phx-file-key-0123456789-abcdef"
ENV_KEY = "phx-env-key-0123456789-ghijkl"
FLAG_KEY = "phx-flag-key-0123456789-mnopqr"
PORTKEY_KEY = "pk-live-0123456789-abcdefghijklmn"


@pytest.fixture(autouse=True)
def no_user_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Neither the developer's config file nor INGEST_CONFIG reaches a test."""
    monkeypatch.delenv("INGEST_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "portkey-phoenix-ingest" / "config.toml"


@pytest.fixture
def app() -> click.Group:
    """The CLI, with --config, `config` and `doctor` wired in."""
    return cli


def write_config(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def show(app: click.Group, *args: str, env: dict[str, str | None] | None = None) -> dict[str, Any]:
    result = CliRunner().invoke(app, [*args, "--json"], env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["settings"]


# --------------------------------------------------------------------------- precedence

LAYERS = {
    "endpoint": ("http://file.example:6006", "http://env.example:6006", "http://flag.example:6006",
                 "http://localhost:6006", "PHOENIX_COLLECTOR_ENDPOINT", "--endpoint"),
    "project": ("from-file", "from-env", "from-flag", "portkey", "PHOENIX_PROJECT_NAME",
                "--project"),
    "api_key": (FILE_KEY, ENV_KEY, FLAG_KEY, None, "PHOENIX_API_KEY", "--api-key"),
}  # fmt: skip


@pytest.mark.parametrize("setting", sorted(LAYERS))
def test_flag_beats_env_beats_file_beats_default(
    app: click.Group, tmp_path: Path, setting: str
) -> None:
    file_value, env_value, flag_value, default, envvar, flag = LAYERS[setting]
    secret = setting == "api_key"

    def shown(value: str | None) -> str | None:
        return "(set)" if secret and value else value

    config = write_config(tmp_path / "c.toml", f'{setting} = "{file_value}"\n')
    cases = [
        ([], {}, default, "default"),
        (["--config", str(config)], {}, file_value, "file"),
        (["--config", str(config)], {envvar: env_value}, env_value, "env"),
        (["--config", str(config)], {envvar: env_value}, flag_value, "flag"),
    ]
    for group_args, env, value, source in cases:
        command_args = [flag, flag_value] if source == "flag" else []
        got = show(app, *group_args, "config", "show", "sync", *command_args, env=env)[setting]
        assert (got["value"], got["source"]) == (shown(value), source), (group_args, env)
        assert got["envvar"] == envvar


def test_a_real_command_resolves_flag_env_file_default(app: click.Group, tmp_path: Path) -> None:
    """`convert` writes the project into every span: watch the value the command really used."""
    export = tmp_path / "export.jsonl"
    write_logs(export, 1)
    config = write_config(tmp_path / "c.toml", 'project = "from-file"\n')

    def project_used(args: list[str], env: dict[str, str] | None = None) -> str:
        result = CliRunner().invoke(app, [*args], env=env)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)["resource"]["openinference.project.name"]

    assert project_used(["convert", str(export)]) == "portkey"
    assert project_used(["--config", str(config), "convert", str(export)]) == "from-file"
    env = {"PHOENIX_PROJECT_NAME": "from-env"}
    assert project_used(["--config", str(config), "convert", str(export)], env) == "from-env"
    flagged = ["--config", str(config), "convert", str(export), "--project", "from-flag"]
    assert project_used(flagged, env) == "from-flag"


def test_click_default_map_sits_between_env_and_default(tmp_path: Path) -> None:
    """What the --config option builds on: click's own order on the unmodified `cli`."""
    export = tmp_path / "export.jsonl"
    write_logs(export, 1)
    runner = CliRunner()

    def project_used(env: dict[str, str] | None = None, *extra: str) -> str:
        result = runner.invoke(cli, ["convert", str(export), *extra], env=env,
                               default_map={"convert": {"project": "from-map"}})  # fmt: skip
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)["resource"]["openinference.project.name"]

    assert project_used() == "from-map"
    assert project_used({"PHOENIX_PROJECT_NAME": "from-env"}) == "from-env"
    assert project_used({"PHOENIX_PROJECT_NAME": "from-env"}, "--project", "f") == "f"


def test_command_table_overrides_the_top_level_for_that_command_only(
    app: click.Group, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "c.toml", """
project = "everywhere"
window = "6h"
state_dir = "~/ingest-state"
[sync]
project = "sync-only"
lag = "10m"
[backfill]
window = "1h"
""")  # fmt: skip
    sync = show(app, "--config", str(config), "config", "show", "sync")
    assert sync["project"] == {"value": "sync-only", "source": "file", "table": "[sync]",
                               "envvar": "PHOENIX_PROJECT_NAME"}  # fmt: skip
    assert (sync["lag"]["value"], sync["window"]["value"]) == ("10m", "6h")
    backfill = show(app, "--config", str(config), "config", "show", "backfill")
    assert backfill["project"]["value"] == "everywhere"
    assert backfill["project"]["table"] == "top level"
    assert backfill["window"]["value"] == "1h"
    no_env = {"INGEST_STATE_DIR": None}  # which the test fixtures set
    imported = show(app, "--config", str(config), "config", "show", "import", env=no_env)
    assert imported["project"]["value"] == "everywhere"
    assert imported["state_dir"]["value"] == str(Path.home() / "ingest-state")
    # `check` imports the sample logs into a fresh project: never into the one of the file.
    check = show(app, "--config", str(config), "config", "show", "check")
    assert check["project"] == {
        "value": None,
        "source": "default",
        "envvar": "INGEST_CHECK_PROJECT",
    }


def test_default_location_and_ingest_config(
    app: click.Group, tmp_path: Path, no_user_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert default_config_path() == no_user_config
    result = CliRunner().invoke(app, ["config", "show", "sync"])
    assert result.exit_code == 0
    assert f"config file: {no_user_config} (not found)" in result.output

    no_user_config.parent.mkdir(parents=True)
    write_config(no_user_config, 'project = "from-default-file"\n')
    assert show(app, "config", "show", "sync")["project"]["value"] == "from-default-file"

    other = write_config(tmp_path / "other.toml", 'project = "from-ingest-config"\n')
    monkeypatch.setenv("INGEST_CONFIG", str(other))
    assert default_config_path() == other
    assert show(app, "config", "show", "sync")["project"]["value"] == "from-ingest-config"


# --------------------------------------------------------------------------- masking


def test_config_show_masks_every_secret_and_names_sources(app: click.Group, tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", f'portkey_api_key = "{PORTKEY_KEY}"\n')
    runner = CliRunner()
    for as_json in (False, True):
        result = runner.invoke(
            app,
            ["--config", str(config), "config", "show", "sync", "--project", "p"]
            + (["--json"] if as_json else []),
            env={"PHOENIX_API_KEY": ENV_KEY},
        )
        assert result.exit_code == 0, result.output
        assert ENV_KEY not in result.output and PORTKEY_KEY not in result.output
        if not as_json:
            lines = {line.split()[0]: line.split()[1:] for line in result.output.splitlines()[1:]}
            assert lines["api_key"] == ["(set)", "env", "PHOENIX_API_KEY"]
            assert lines["portkey_api_key"] == ["(set)", "file", "top", "level"]
            assert lines["project"] == ["p", "flag"]
            assert lines["endpoint"] == ["http://localhost:6006", "default"]
            assert lines["workspace"] == ["(not", "set)", "default"]
        else:
            settings = json.loads(result.stdout)["settings"]
            assert settings["api_key"]["value"] == "(set)"
            assert settings["portkey_api_key"]["source"] == "file"


def test_short_secrets_are_hidden_entirely() -> None:
    assert mask("sk-0123456789") == "****"
    assert mask(PORTKEY_KEY) == "pk-…lmn"


def test_client_header_values_are_parsed_and_masked(tmp_path: Path) -> None:
    assert parse_headers("Authorization=Bearer%20tok-0123456789abcdef, X-Org=team%2C1") == {
        "authorization": "Bearer tok-0123456789abcdef",
        "x-org": "team,1",
    }
    with pytest.raises(ConfigError) as caught:
        parse_headers("authorization=ok,secret-without-equals-sign")
    assert "entry 2 is not name=value" in str(caught.value)
    assert "secret-without" not in str(caught.value)

    @config_option
    @click.group()
    def app() -> None:
        pass

    @app.command("probe")
    @client_headers_option
    def probe(**kw: Any) -> None:
        click.echo(json.dumps(kw["client_headers"]))

    app.add_command(config_group)
    token = "Bearer tok-0123456789abcdef"
    env = {"PHOENIX_CLIENT_HEADERS": "authorization=Bearer%20tok-0123456789abcdef,x-org=team"}
    assert json.loads(CliRunner().invoke(app, ["probe"], env=env).stdout)["authorization"] == token
    result = CliRunner().invoke(app, ["config", "show", "probe"], env=env)
    assert result.exit_code == 0, result.output
    assert "tok-0123456789abcdef" not in result.output
    assert "authorization=(set),x-org=(set)   env PHOENIX_CLIENT_HEADERS" in result.output

    config = write_config(tmp_path / "c.toml", '[probe]\nclient_headers = {"X-Proxy" = "p"}\n')
    result = CliRunner().invoke(app, ["--config", str(config), "probe"])
    assert json.loads(result.stdout) == {"x-proxy": "p"}
    bad = CliRunner().invoke(app, ["probe"], env={"PHOENIX_CLIENT_HEADERS": "novalue-secret"})
    assert bad.exit_code == 2 and "novalue-secret" not in bad.output
    assert isinstance(ClientHeaders().convert({"A": 1}, None, None)["a"], str)


# --------------------------------------------------------------------------- file errors


def invoke(app: click.Group, *args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def test_unknown_key_is_a_usage_error_listing_the_valid_ones(
    app: click.Group, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "c.toml", 'endpont = "http://x"\n')
    result = invoke(app, "--config", str(config), "config", "show")
    assert result.exit_code == 2
    assert f"Error: config file {config}: unknown setting 'endpont'." in result.output
    assert "Valid settings: " in result.output and "endpoint, " in result.output
    assert "[sync]" in result.output

    config = write_config(tmp_path / "c.toml", '[sync]\nsince_date = "2026-01-01"\n')
    result = invoke(app, "--config", str(config), "sync")
    assert result.exit_code == 2
    assert "unknown setting 'since_date' in [sync]. Valid settings for sync: " in result.output


def test_invalid_toml_names_the_file_and_line(app: click.Group, tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", 'project = "p"\nwindow = 1d\n')
    result = invoke(app, "--config", str(config), "import", str(tmp_path))
    assert result.exit_code == 2
    assert f"Error: config file {config} is not valid TOML: " in result.output
    assert "line 2" in result.output


def test_a_value_the_option_refuses_names_file_and_key(app: click.Group, tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", '[backfill]\nwindow = "1x"\n')
    result = invoke(app, "--config", str(config), "config", "show", "backfill")
    assert result.exit_code == 2
    assert f"config file {config}: [backfill] window: '1x' is not a duration" in result.output
    config = write_config(tmp_path / "c.toml", 'project = ["a", "b"]\n')
    result = invoke(app, "--config", str(config), "config", "show")
    assert "project must be a single value, not a TOML list" in result.output


def test_missing_explicit_file_is_an_error(app: click.Group, tmp_path: Path) -> None:
    result = invoke(app, "--config", str(tmp_path / "nope.toml"), "status")
    assert result.exit_code == 2
    assert f"config file {tmp_path / 'nope.toml'} does not exist" in result.output


def test_secrets_in_a_file_others_can_read_draw_a_warning(app: click.Group, tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", f'api_key = "{FILE_KEY}"\n', mode=0o644)
    result = invoke(app, "--config", str(config), "config", "show")
    assert result.exit_code == 0
    assert f"warning: the config file {config} holds secrets (api_key)" in result.stderr
    assert f"chmod 600 {config}" in result.stderr
    assert FILE_KEY not in result.output
    os.chmod(config, 0o600)
    assert "warning" not in invoke(app, "--config", str(config), "config", "show").stderr


# --------------------------------------------------------------------------- README's promises


def test_config_show_log_format_and_automatic_env_variables(app: click.Group) -> None:
    shown = show(app, "config", "show", "sync", env={"INGEST_SYNC_WINDOW": "6h",
                                                     "INGEST_LOG_FORMAT": "json"})  # fmt: skip
    assert shown["log_format"] == {"value": "json", "source": "env", "envvar": "INGEST_LOG_FORMAT"}
    assert shown["window"] == {"value": "6h", "source": "env", "envvar": "INGEST_SYNC_WINDOW"}
    assert show(app, "config", "show", "sync")["log_format"]["value"] == "text"
    flagged = show(app, "config", "show", "sync", "--log-format", "json")["log_format"]
    assert (flagged["value"], flagged["source"]) == ("json", "flag")
    text = CliRunner().invoke(app, ["config", "show", "sync"], env={"INGEST_SYNC_WINDOW": "6h"})
    assert re.search(r"window\s+6h\s+env INGEST_SYNC_WINDOW", text.stdout)
    assert "env None" not in text.stdout


def test_empty_environment_variables_mean_what_an_empty_flag_means(
    app: click.Group, tmp_path: Path
) -> None:
    export = tmp_path / "export.jsonl"
    write_logs(export, 1)
    log = json.loads(export.read_text())
    log["metadata"] = {"session_id": "s-1"}
    export.write_text(json.dumps(log) + "\n")

    def attributes(env: dict[str, str], *args: str) -> dict[str, Any]:
        result = CliRunner().invoke(app, ["convert", str(export), *args], env=env)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)["attributes"]

    assert attributes({})["session.id"] == "s-1"
    assert "session.id" not in attributes({}, "--session-key", "")
    assert "session.id" not in attributes({"INGEST_SESSION_KEY": ""}), "'' disables sessions"
    by_flag = CliRunner().invoke(app, ["import", str(export), "--project", ""])
    by_env = CliRunner().invoke(app, ["import", str(export)], env={"PHOENIX_PROJECT_NAME": ""})
    for result in (by_flag, by_env):
        assert result.exit_code == 2
        assert "the Phoenix project name (--project / PHOENIX_PROJECT_NAME) is empty" in (
            result.stderr
        )


# --------------------------------------------------------------------------- every command


def _sample(key: str, option: click.Option, folder: Path) -> Any:
    """A value the option accepts, as a config file would hold it."""
    if isinstance(option.type, click.Path) and option.type.exists:
        (folder / "sample.jsonl").touch()
        return str(folder if option.type.dir_okay else folder / "sample.jsonl")
    if option.is_flag:
        return True
    if option.multiple:
        return ["sample.*"]  # a key pattern and a regular expression alike
    if isinstance(option.default, str | int | float | Path | timedelta):  # not click's UNSET
        return display_value(key, option.default)
    samples = {"Duration": "1h", "UtcDateTime": "2026-01-01", "Shard": "1/2",
               "ClientHeaders": "x-team=sample"}  # fmt: skip
    name = type(option.type).__name__
    if name in samples:
        return samples[name]
    if isinstance(option.type, click.IntRange | click.FloatRange):
        return option.type.min if option.type.min is not None else 1
    if isinstance(option.type, click.types.IntParamType | click.types.FloatParamType):
        return 1
    return "sample"


def _toml(values: dict[str, Any]) -> str:
    return "".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items())


@pytest.mark.parametrize("path", sorted(leaf_commands(cli)))
def test_every_command_takes_every_option_from_its_table_and_the_top_level(
    path: str, tmp_path: Path
) -> None:
    """Walks the whole command tree, so a new command or subcommand is covered at once: each
    option set in the command's own table ([sync], [prices.plan], ...), in its group's table
    ([prices]) or at the top level reaches the command as the file's value."""
    keys = option_keys(leaf_commands(cli)[path])
    values = {key: _sample(key, option, tmp_path) for key, option in keys.items()}
    parts = path.split(" ")
    unset: dict[str, str | None] = {
        name: None
        for option in keys.values()
        for name in ([option.envvar] if isinstance(option.envvar, str) else option.envvar or [])
    }  # the file is what this test reads, not the test run's environment
    layouts = {f"[{'.'.join(parts)}]": f"[{'.'.join(parts)}]\n" + _toml(values),
               "top level": _toml({k: v for k, v in values.items()
                                   if (path, k) != ("check", "project")})}  # fmt: skip
    if len(parts) > 1:
        layouts[f"[{parts[0]}]"] = f"[{parts[0]}]\n" + _toml(values)
    for table, text in layouts.items():
        config = write_config(tmp_path / "c.toml", text)
        settings = show(cli, "--config", str(config), "config", "show", *parts, env=unset)
        assert set(settings) == set(keys)
        for key, row in settings.items():
            if table == "top level" and (path, key) == ("check", "project"):
                continue  # `check` never imports into a project named for every command
            assert (key, row["source"], row.get("table")) == (key, "file", table), text


def test_prices_subcommands_take_the_top_level_endpoint_and_their_tables(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", 'endpoint = "http://127.0.0.1:9"\n'
                          '[prices]\nportkey_base_url = "http://127.0.0.1:8/v1"\n'
                          '[prices.remove]\nretry_deadline = 3\n')  # fmt: skip
    for sub in ("plan", "apply", "remove"):
        settings = show(cli, "--config", str(config), "config", "show", "prices", sub)
        assert settings["endpoint"]["value"] == "http://127.0.0.1:9"
        assert settings["retry_deadline"]["value"] == (3 if sub == "remove" else 120.0)
        if sub != "remove":
            assert settings["portkey_base_url"]["table"] == "[prices]"
    unknown = write_config(tmp_path / "u.toml", "[prices]\nlag = 1\n")
    result = invoke(cli, "--config", str(unknown), "prices", "remove")
    assert result.exit_code == 2
    assert "unknown setting 'lag' in [prices]. Valid settings for prices: " in result.output
