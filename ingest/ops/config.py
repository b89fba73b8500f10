"""Settings from a TOML file, merged under flags and environment variables by click itself.

Precedence is flag > environment variable > config file > built-in default. The file is turned
into click's `default_map` ({command: {param: value}}), which click consults after the command
line and the environment, so every command resolves its options the same way and
`ctx.get_parameter_source` can tell where each value came from (`config show`, `doctor`).

File layout: top-level keys are option names in snake_case (`endpoint`, `api_key`, `project`,
`state_dir`, `portkey_base_url`, ...; the long flag without `--`) and apply to every command
that has the option; tables named after a command (`[sync]`, `[backfill]`, `[import]`, ...)
override them for that command only.
"""

from __future__ import annotations

import copy
import os
import stat
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import click
from click.core import ParameterSource

from ingest.errors import ConfigError
from ingest.http import split_userinfo

APP_NAME = "portkey-phoenix-ingest"
CONFIG_ENV = "INGEST_CONFIG"
SECRET_KEYS = frozenset({"api_key", "portkey_api_key", "client_headers"})

# Top-level keys that must not reach a command whose option means something else: `check`
# imports the sample logs into a fresh project unless told otherwise, and a production
# project named at the top of the file must not receive them.
_TOP_LEVEL_SKIPS = frozenset({("check", "project")})


@dataclass(frozen=True)
class ConfigInfo:
    """What the --config callback loaded, for `config show` and `doctor`."""

    path: Path
    explicit: bool
    exists: bool
    raw: Mapping[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- the file


def default_config_path() -> Path:
    """`$INGEST_CONFIG`, else `<user config dir>/portkey-phoenix-ingest/config.toml`
    (`$XDG_CONFIG_HOME` or ~/.config on Linux)."""
    if explicit := os.environ.get(CONFIG_ENV):
        return Path(explicit).expanduser()
    return Path(click.get_app_dir(APP_NAME)) / "config.toml"


def load_config(
    path: Path | None,
    explicit: bool,
    warn: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The parsed file ({} when there is none). A missing default file is fine; a missing
    explicit one, an unreadable one or invalid TOML is a ConfigError naming the file (and the
    line, for TOML errors). Secrets in a file others can read are reported through `warn`."""
    if path is None:
        return {}
    path = Path(path).expanduser()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if explicit:
            raise ConfigError(
                f"config file {path} does not exist (given by --config or {CONFIG_ENV})."
            ) from None
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {path}: {exc.strerror}.") from None
    try:
        config = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text ({exc.reason}).") from None
    except tomllib.TOMLDecodeError as exc:
        # The message carries "(at line N, column M)".
        raise ConfigError(f"config file {path} is not valid TOML: {exc}.") from None
    if warn is not None and (message := readable_secrets_warning(path, config)):
        warn(message)
    return config


def readable_secrets_warning(path: Path, config: Mapping[str, Any]) -> str | None:
    """A warning when the file holds a secret and its group or others may read it."""
    if not _secret_keys_in(config):
        return None
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if not mode & (stat.S_IRWXG | stat.S_IRWXO):
        return None
    keys = ", ".join(sorted(_secret_keys_in(config)))
    return (
        f"warning: the config file {path} holds secrets ({keys}) but other users may read it "
        f"(mode {stat.filemode(mode)}): run `chmod 600 {path}`."
    )


def _secret_keys_in(config: Mapping[str, Any]) -> set[str]:
    found = {key for key in config if key in SECRET_KEYS}
    for value in config.values():
        if isinstance(value, Mapping):
            found |= {key for key in value if key in SECRET_KEYS}
    return found


# --------------------------------------------------------------------------- default_map


def option_keys(command: click.Command) -> dict[str, click.Option]:
    """Config-file key -> option: the first long flag in snake_case (`--api-key` -> api_key,
    `--json` -> json), or the parameter name when there is no long flag."""
    keys: dict[str, click.Option] = {}
    for param in command.params:
        if not isinstance(param, click.Option) or param.name in (None, "help") or param.hidden:
            continue
        longs = [opt for opt in param.opts if opt.startswith("--")]
        key = longs[0][2:].replace("-", "_") if longs else str(param.name)
        keys[key] = param
    return keys


def leaf_commands(group: click.Group) -> dict[str, click.Command]:
    """Every command that runs, by its path: `sync`, `prices plan`, `config show`, ..."""
    found: dict[str, click.Command] = {}
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found.update({f"{name} {sub}": leaf for sub, leaf in leaf_commands(command).items()})
        else:
            found[name] = command
    return found


def _table_name(path: str) -> str:
    return f"[{path.replace(' ', '.')}]"


def default_map_for(
    cli_group: click.Group, config: Mapping[str, Any], source: Path | None = None
) -> dict[str, Any]:
    """click's `default_map` ({command: {param name: value}}, nested for a group's
    subcommands: {"prices": {"plan": {...}}}) for every command: the top-level keys, then a
    group's table (`[prices]`), then the command's own (`[sync]`, `[prices.plan]`). Unknown
    keys and values the option cannot take are a ConfigError naming the file, the table and
    the valid keys."""
    where = f"config file {source}" if source else "the config file"
    commands = leaf_commands(cli_group)
    keys_of = {path: option_keys(command) for path, command in commands.items()}
    # A table may name a command or a group; a group's keys are those of its commands.
    scopes = {path: set(keys) for path, keys in keys_of.items()}
    for path in commands:
        for depth in range(1, path.count(" ") + 1):
            group = " ".join(path.split(" ")[:depth])
            scopes.setdefault(group, set()).update(keys_of[path])
    all_keys = sorted({key for keys in keys_of.values() for key in keys})
    top: dict[str, Any] = {}
    tables: dict[str, Mapping[str, Any]] = {}

    def read_table(path: str, table: Mapping[str, Any]) -> None:
        own: dict[str, Any] = {}
        for key, value in table.items():
            inner = f"{path} {key}"
            if inner in scopes and isinstance(value, Mapping):
                read_table(inner, value)
            elif key in scopes[path]:
                own[key] = value
            else:
                valid = ", ".join(sorted(scopes[path]))
                raise ConfigError(
                    f"{where}: unknown setting {key!r} in {_table_name(path)}. Valid settings "
                    f"for {path}: {valid}."
                )
        tables[path] = own

    for key, value in config.items():
        if key in scopes and isinstance(value, Mapping):
            read_table(key, value)
        elif key in all_keys:
            top[key] = value
        else:
            names = ", ".join(_table_name(path) for path in sorted(scopes))
            raise ConfigError(
                f"{where}: unknown setting {key!r}. Valid settings: {', '.join(all_keys)}; "
                f"valid tables: {names}."
            )

    result: dict[str, Any] = {}
    for path, keys in keys_of.items():
        parts = path.split(" ")
        layers = [" ".join(parts[:depth]) for depth in range(len(parts), 0, -1)]
        entries: dict[str, Any] = {}
        for key, option in keys.items():
            table = next((layer for layer in layers if key in tables.get(layer, {})), None)
            if table is not None:
                label, value = f"{_table_name(table)} ", tables[table][key]
            elif key in top and (path, key) not in _TOP_LEVEL_SKIPS:
                label, value = "", top[key]
            else:
                continue
            entries[str(option.name)] = _checked(option, value, f"{where}: {label}{key}")
        if entries:
            node = result
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = entries
    return result


def _checked(option: click.Option, value: Any, what: str) -> Any:
    """The value as the default_map will hold it, after making sure the option accepts it."""
    if isinstance(value, datetime | date):
        value = value.isoformat()  # TOML dates: the option's own parser applies time zones
    if isinstance(option.type, click.Path) and isinstance(value, str):
        value = os.path.expanduser(value)  # no shell expands `~` in a file
    if option.multiple:  # a repeatable option (`redact_key`) takes a list or one value
        items = value if isinstance(value, list) else [value]
        for item in items:
            try:
                option.type.convert(item, option, None)
            except click.BadParameter as exc:
                raise ConfigError(f"{what}: {exc.message.rstrip('.')}.") from None
        return items
    if isinstance(value, list) or (isinstance(value, Mapping) and option.name != "client_headers"):
        raise ConfigError(f"{what} must be a single value, not a TOML {type(value).__name__}.")
    try:
        option.type.convert(value, option, None)
    except click.BadParameter as exc:
        raise ConfigError(f"{what}: {exc.message.rstrip('.')}.") from None
    return value


def merge_default_maps(
    base: Mapping[str, Any] | None, overrides: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Per-command merge; `overrides` wins (a default_map given by the caller beats the file)."""
    merged: dict[str, Any] = {name: dict(values) for name, values in (base or {}).items()}
    for name, values in (overrides or {}).items():
        if isinstance(values, Mapping) and isinstance(merged.get(name), dict):
            merged[name].update(values)
        else:
            merged[name] = values
    return merged


def _load_into_context(ctx: click.Context, param: click.Parameter, value: Path | None) -> None:
    """The --config callback: read the file and put it under the command line and env."""
    if ctx.resilient_parsing:
        return
    explicit = value is not None
    path = Path(value).expanduser() if value is not None else default_config_path()
    group = ctx.command
    assert isinstance(group, click.Group)
    # A ConfigError here ends the run like any other (exit 2, in the CLI runner).
    raw = load_config(path, explicit, warn=lambda message: click.echo(message, err=True))
    loaded = default_map_for(group, raw, path)
    ctx.default_map = merge_default_maps(loaded, ctx.default_map)
    # The group's object (its subcommands inherit it): what `config show` and `doctor` report.
    ctx.obj = ConfigInfo(path=path, explicit=explicit, exists=path.is_file(), raw=raw)


config_option = click.option(
    "--config",
    "config_path",
    envvar=CONFIG_ENV,
    show_envvar=True,
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    is_eager=True,
    expose_value=False,
    callback=_load_into_context,
    help="TOML file of default settings "
    "[default: ~/.config/portkey-phoenix-ingest/config.toml]; flags and environment win.",
)


# --------------------------------------------------------------------------- client headers


def parse_headers(text: str | None) -> dict[str, str]:
    """PHOENIX_CLIENT_HEADERS: `name1=value1,name2=value2`, URL-encoded like OTEL headers.

    Names are lower-cased and values URL-decoded, as Phoenix's own client does; unlike it, a
    malformed entry is an error rather than silently dropped (it is usually a credential).
    The values are never quoted in errors.
    """
    headers: dict[str, str] = {}
    for index, entry in enumerate((text or "").split(","), start=1):
        if not entry.strip():
            continue
        name, sep, value = entry.partition("=")
        name = unquote(name).strip().lower()
        if not sep or not name or not _is_token(name):
            raise ConfigError(
                f"PHOENIX_CLIENT_HEADERS / --client-headers: entry {index} is not "
                "name=value (e.g. authorization=Bearer%20xyz,x-org=team; URL-encode "
                "commas, spaces and '=' inside values)."
            )
        headers[name] = unquote(value).strip()
    return headers


def _is_token(name: str) -> bool:
    """An HTTP header name (RFC 9110 token)."""
    return all(c.isascii() and (c.isalnum() or c in "!#$%&'*+-.^_`|~") for c in name)


class ClientHeaders(click.ParamType):
    """Extra HTTP headers for Phoenix: the PHOENIX_CLIENT_HEADERS format, or a TOML table."""

    name = "name=value,..."

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> dict[str, str]:
        if isinstance(value, Mapping):
            return {str(k).strip().lower(): str(v) for k, v in value.items()}
        try:
            return parse_headers(str(value))
        except ConfigError as exc:
            self.fail(str(exc), param, ctx)


client_headers_option = click.option(
    "--client-headers",
    envvar="PHOENIX_CLIENT_HEADERS",
    show_envvar=True,
    type=ClientHeaders(),
    default=None,
    help="Extra HTTP headers for every Phoenix request (e.g. for a proxy in front of it), "
    "as name=value pairs separated by commas, values URL-encoded. Values are never printed.",
)


# --------------------------------------------------------------------------- showing values


SECRET_SET = "(set)"


def mask(secret: str) -> str:
    """Enough of a secret to tell two apart, never the whole: `pk-…f42`, or `****` if short."""
    if len(secret) < 16:
        return "****"
    return f"{secret[:3]}…{secret[-3:]}"


def display_value(key: str, value: Any) -> Any:
    """A JSON-ready, secret-free rendering of an effective option value."""
    if value is None:
        return None
    # Secrets: only whether they are set (the source column says where from), not a character.
    if key == "client_headers" and isinstance(value, Mapping):
        return {name: SECRET_SET for name in value}
    if key in SECRET_KEYS:
        return SECRET_SET
    if isinstance(value, timedelta):
        return _duration(value)
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return f"{value[0]}/{value[1]}"  # --shard I/N
    if isinstance(value, str) and split_userinfo(value)[1]:  # a URL's user:pass@: only "set"
        return split_userinfo(value)[0].replace("://", f"://{SECRET_SET}@", 1)
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _duration(value: timedelta) -> str:
    seconds = value.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def source_name(source: ParameterSource | None) -> str:
    return {
        ParameterSource.COMMANDLINE: "flag",
        ParameterSource.ENVIRONMENT: "env",
        ParameterSource.DEFAULT_MAP: "file",
        ParameterSource.PROMPT: "prompt",
    }.get(source, "default")  # type: ignore[arg-type]


def envvar_used(option: click.Parameter, ctx: click.Context | None = None) -> str | None:
    """The environment variable the option read, else the first one it would read; for an
    option without its own, the INGEST_<COMMAND>_<OPTION> name click derives."""
    names = option.envvar if isinstance(option.envvar, list | tuple) else [option.envvar]
    names = [name for name in names if name]
    prefix = ctx.auto_envvar_prefix if ctx is not None else None
    if not names and prefix and option.name and getattr(option, "allow_from_autoenv", True):
        names = [f"{prefix}_{option.name.upper()}"]
    return next((name for name in names if name in os.environ), names[0] if names else None)


def origin(ctx: click.Context, name: str) -> str:
    """Where a setting's value came from, for messages: `--api-key`, `PHOENIX_API_KEY`,
    `api_key in <file>`, or `the default`."""
    option = next((p for p in ctx.command.params if p.name == name), None)
    if option is None:
        return "the default"
    source = ctx.get_parameter_source(name)
    key = next((k for k, o in option_keys(ctx.command).items() if o is option), name)
    if source == ParameterSource.COMMANDLINE:
        return next((o for o in option.opts if o.startswith("--")), option.opts[0])
    if source == ParameterSource.ENVIRONMENT:
        return envvar_used(option, ctx) or "the environment"
    if source == ParameterSource.DEFAULT_MAP:
        info = config_info(ctx)
        return f"{key} in {info.path}" if info else f"{key} in the config file"
    return "the default"


def config_info(ctx: click.Context) -> ConfigInfo | None:
    """The ConfigInfo the --config callback left on the root context, if it ran."""
    info = ctx.find_root().obj
    return info if isinstance(info, ConfigInfo) else None


def file_table(info: ConfigInfo | None, command: str, key: str) -> str | None:
    """`[sync]`, `[prices]` or `top level`: which part of the file set a key for a command
    (`command` is its path, e.g. `prices plan`; the innermost table wins)."""
    if info is None:
        return None
    parts = command.split(" ")
    for depth in range(len(parts), 0, -1):
        table: Any = info.raw
        for part in parts[:depth]:
            table = table.get(part) if isinstance(table, Mapping) else None
        if isinstance(table, Mapping) and key in table and not isinstance(table[key], Mapping):
            return _table_name(" ".join(parts[:depth]))
    return "top level" if key in info.raw else None


def effective_settings(
    root: click.Context, command_name: str, args: Iterable[str] = ()
) -> tuple[str, list[dict[str, Any]]]:
    """The command's path (`sync`, `prices plan`: a group's first subcommand when none is
    named) and every option of it with its effective value (secrets masked) and source, as
    click resolves them for `<command> <args>`, without running it."""
    group = root.command
    assert isinstance(group, click.Group)
    parent, args, path = root, list(args), [command_name]
    command = group.get_command(root, command_name)
    while isinstance(command, click.Group):  # `prices plan`: the subcommand follows the group
        names = command.list_commands(parent)
        sub_name = args.pop(0) if args and args[0] in names else names[0]
        parent = click.Context(command, info_name=command_name, parent=parent)
        command_name, command = sub_name, command.get_command(parent, sub_name)
        path.append(sub_name)
    if command is None:
        names = ", ".join(sorted(leaf_commands(group)))
        raise click.UsageError(f"no command {command_name!r}; choose one of: {names}.")
    # Resilient parsing: a missing required option (backfill --since) or a bad value is shown
    # as unset instead of stopping, and no command body runs. A copy of the command whose
    # options all expose their value (--log-format is not an argument) and run no callback.
    probe = copy.copy(command)
    probe.params = [copy.copy(param) for param in command.params]
    for param in probe.params:
        param.expose_value, param.callback = True, None
    sub = probe.make_context(command_name, args, parent=parent, resilient_parsing=True)
    info = config_info(root)
    rows = []
    for key, option in option_keys(command).items():
        name = str(option.name)
        source = sub.get_parameter_source(name)
        value = sub.params.get(name)
        if name == "state_dir" and value is None:
            from ingest.run.state import default_state_dir

            value = default_state_dir()
        row = {
            "setting": key,
            "value": display_value(key, value),
            "source": source_name(source),
            "envvar": envvar_used(option, sub),
        }
        if source == ParameterSource.DEFAULT_MAP:
            row["table"] = file_table(info, " ".join(path), key)
        rows.append(row)
    return " ".join(path), rows
