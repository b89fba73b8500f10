"""The `doctor` command: the checks of `doctor.py` with sync's own options, printed with fixes."""

from __future__ import annotations

import json
from typing import Any

import click

from ingest.cli.options import phoenix_options, portkey_options, project_option, state_option
from ingest.cli.report import Done, command_run
from ingest.ops.config import config_info, origin
from ingest.ops.doctor import check_phoenix, check_portkey
from ingest.ops.doctor_local import (
    FAIL,
    WARN,
    Check,
    check_clock,
    check_config_file,
    check_state_dir,
)


@click.command("doctor")
@phoenix_options
@project_option
@portkey_options
@state_option
@click.option(
    "--require-portkey",
    is_flag=True,
    help="Fail (not just warn) when no Portkey key is set: for hosts that run sync/backfill.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the checks as a JSON list.")
@click.pass_context
def doctor_command(ctx: click.Context, **kw: Any) -> None:
    """Check the set-up end to end and say what to fix: Phoenix reachable, its version, the
    API key and OTLP; the Portkey key and its logs.export scope; the state directory, its
    lock and state file; clock skew. Exits 1 when a check fails (warnings do not fail).

    It takes the same options, environment variables and config file as sync.

    \b
    Examples:
      portkey-phoenix-ingest doctor
      PHOENIX_COLLECTOR_ENDPOINT=https://phoenix.internal portkey-phoenix-ingest doctor --json
      portkey-phoenix-ingest doctor --require-portkey   # on the host that runs sync
    """
    origins = {name: origin(ctx, name) for name in ctx.params}
    checks: list[Check] = [check_config_file(config_info(ctx))]

    phoenix, phoenix_time = check_phoenix(
        kw["endpoint"],
        kw["api_key"],
        kw["project"],
        headers=kw.get("client_headers") or {},  # --client-headers, once cli.py has it
        origins=origins,
    )
    checks += phoenix
    portkey, portkey_time = check_portkey(
        kw["portkey_api_key"],
        kw["portkey_base_url"],
        kw["workspace"],
        kw["gateway_url"],
        enrich=kw["enrich"],
        required=kw["require_portkey"],
        origins=origins,
        auth=kw["portkey_auth"],
    )
    checks += portkey

    from ingest.run.state import default_state_dir

    state_dir = kw["state_dir"] or default_state_dir()
    checks += check_state_dir(state_dir, origins.get("state_dir", "the default"))
    checks += [check_clock(seen) for seen in (phoenix_time, portkey_time) if seen is not None]

    failed = sum(check.status == FAIL for check in checks)
    warned = sum(check.status == WARN for check in checks)
    if kw["as_json"]:
        click.echo(json.dumps([check.as_dict() for check in checks], indent=2))
    else:
        width = max(len(check.name) for check in checks)
        for check in checks:
            click.echo(f"{check.status:<4}  {check.name:<{width}}  {check.detail}")
            if check.fix and check.status != "OK":
                click.echo(f"      {'':<{width}}  fix: {check.fix}")
        if failed:
            click.echo(f"\n{failed} problem(s) to fix, {warned} warning(s).")
        else:
            click.echo(f"\nAll checks passed ({warned} warning(s)).")
    with command_run() as run:
        run.done = Done(failed=bool(failed), fields={"failed": failed, "warned": warned})
