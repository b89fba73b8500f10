"""`config show`: every option of a command, its effective value and where it came from."""

from __future__ import annotations

import json

import click

from ingest.cli.report import command_run
from ingest.ops.config import config_info, effective_settings


@click.group("config")
def config_group() -> None:
    """Inspect the settings: flags > environment variables > config file > defaults.

    \b
    The config file is TOML: top-level keys are option names in snake_case and apply to
    every command; a [sync], [backfill], [import], [prices], ... table overrides them for one
    command (or group), and [prices.plan] for one subcommand.
    Example ~/.config/portkey-phoenix-ingest/config.toml:
      endpoint = "https://phoenix.internal"
      project = "prod-llm"
      portkey_base_url = "https://api.portkey.ai/v1"
      [sync]
      lag = "10m"
    """


@config_group.command("show", context_settings={"ignore_unknown_options": True})
@click.argument("command_name", metavar="[COMMAND]", default="sync")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option("--json", "as_json", is_flag=True, help="Print the settings as one JSON object.")
@click.pass_context
def show_command(
    ctx: click.Context, command_name: str, args: tuple[str, ...], as_json: bool
) -> None:
    """Show every option of COMMAND (default: sync; a group's subcommand may follow, as in
    `config show prices remove`) with its effective value and its source
    (flag, env, file or default), as that command would see it. Secrets are masked.
    Options after COMMAND are read as that command's flags.

    \b
    Examples:
      portkey-phoenix-ingest config show
      portkey-phoenix-ingest --config ./prod.toml config show backfill --json
      PHOENIX_PROJECT_NAME=staging portkey-phoenix-ingest config show import --project test
    """
    with command_run() as run:
        run.done = _show(ctx, command_name, args, as_json)


def _show(ctx: click.Context, command_name: str, args: tuple[str, ...], as_json: bool) -> None:
    if command_name.startswith("-"):  # `config show --project x`: the command was left out
        args, command_name = (command_name, *args), "sync"
    root = ctx.find_root()
    command_name, rows = effective_settings(root, command_name, args)
    info = config_info(root)
    config_file = {
        "path": str(info.path) if info else None,
        "loaded": bool(info and info.exists),
    }
    if as_json:
        document = {
            "command": command_name,
            "config_file": config_file,
            "settings": {
                row["setting"]: {k: v for k, v in row.items() if k != "setting"} for row in rows
            },
        }
        click.echo(json.dumps(document, indent=2))
        return
    if info is None:
        where = "no config file option"
    else:
        where = f"{info.path} ({'loaded' if info.exists else 'not found'})"
    click.echo(f"Settings for `{command_name}`; config file: {where}")
    width = max(len(row["setting"]) for row in rows)
    for row in rows:
        source = row["source"]
        if source == "env":
            source = f"env {row['envvar']}"
        elif source == "file" and row.get("table"):
            source = f"file {row['table']}"
        value = row["value"]
        if isinstance(value, dict):
            value = ",".join(f"{k}={v}" for k, v in value.items()) or "(none)"
        shown = "(not set)" if value is None else json.dumps(value) if value == "" else value
        click.echo(f"  {row['setting']:<{width}}  {shown!s:<32}  {source}")
