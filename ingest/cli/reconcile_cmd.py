"""The `reconcile` command (registered in cli.py): Portkey analytics vs the Phoenix project."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime

import click

from ingest.cli.options import (
    UtcDateTime,
    phoenix_options,
    phoenix_settings,
    portkey_connection_options,
    project_option,
    start_logging,
    verbosity_options,
)
from ingest.cli.report import command_run
from ingest.errors import EXIT_FAILED, EXIT_OK, ConfigError


@click.command("reconcile")
@phoenix_options
@project_option
@portkey_connection_options
@click.option("--since", type=UtcDateTime(), required=True, help="Start of the range (inclusive).")
@click.option("--until", type=UtcDateTime(), required=True, help="End of the range (exclusive).")
@click.option(
    "--bucket",
    type=click.Choice(["day", "hour"]),
    default="day",
    show_default=True,
    help="Compare per UTC day or per UTC hour.",
)
@click.option(
    "--routed-project",
    "routed_projects",
    multiple=True,
    metavar="NAME",
    help="A project a routed run (--project-from) wrote to, besides --project "
    "(repeatable): each is listed, their total compared with Portkey.",
)
@click.option(
    "--sample",
    type=click.FloatRange(min=0, max=1, min_open=True),
    default=1.0,
    metavar="RATE",
    show_default=True,
    help="The --sample rate the logs were imported with: Phoenix's figures are divided by it.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@verbosity_options
def reconcile_command(
    endpoint: str, api_key: str | None, retry_deadline: float,
    client_headers: dict[str, str] | None, strict: bool, project: str,
    portkey_api_key: str | None, portkey_base_url: str, portkey_auth: str,
    workspace: str | None, portkey_retry_deadline: float, since: datetime, until: datetime,
    bucket: str,
    routed_projects: tuple[str, ...], sample: float, as_json: bool, verbose: int, quiet: bool,
) -> None:  # fmt: skip
    """Compare Portkey's analytics with the Phoenix project, per day or hour.

    For each bucket: requests, billed cost, tokens and cache hits from Portkey's analytics
    API next to the Portkey spans Phoenix holds, their billed cost, tokens and cache status,
    and Phoenix's own computed cost. Then, per model, Portkey's billed cost next to Phoenix's
    computed cost, and the models Phoenix could not price, with how to add a price.

    \b
    Exit codes: 0 no bucket is missing requests; 1 Phoenix holds fewer Portkey spans than
    Portkey logged in some bucket (listed); 2 usage or configuration error.
    Phoenix holding more spans than Portkey counted is flagged but is not a failure.

    \b
    Examples:
      portkey-phoenix-ingest reconcile --since 2026-07-01 --until 2026-07-08
      portkey-phoenix-ingest reconcile --since 2026-07-01 --until 2026-07-02 --bucket hour --json
      portkey-phoenix-ingest reconcile --since 2026-07-01 --until 2026-07-08 --project prod \
        --routed-project billing --routed-project search --sample 0.5
    """
    start_logging(verbose, quiet)

    def action() -> int:
        from ingest.ops.reconcile import reconcile
        from ingest.ops.reconcile_render import render, to_dict
        from ingest.phoenix.admin.totals import PhoenixTotals
        from ingest.sources.portkey.api import PortkeyApi, PortkeySettings

        if since >= until:
            raise ConfigError("--since must be before --until.")
        phoenix = phoenix_settings(endpoint, api_key, project, retry_deadline, client_headers,
                                   strict)  # fmt: skip
        options = {"portkey_api_key": portkey_api_key, "portkey_base_url": portkey_base_url,
                   "portkey_auth": portkey_auth, "workspace": workspace,
                   "portkey_retry_deadline": portkey_retry_deadline, "strict": strict}  # fmt: skip
        portkey = PortkeyApi(PortkeySettings.from_options(options, "the analytics.view scope"))
        names = [phoenix.project] + [n for n in dict.fromkeys(routed_projects)
                                     if n != phoenix.project]  # fmt: skip
        totals = [PhoenixTotals(replace(phoenix, project=name)) for name in names]
        report = reconcile(since, until, bucket, totals, portkey.analytics, sample)
        if as_json:
            click.echo(json.dumps(to_dict(report)))
        elif not quiet or not report.ok:
            click.echo(render(report))
        return EXIT_OK if report.ok else EXIT_FAILED

    with command_run() as run:
        run.done = action()
