"""Options shared by the commands, their parameter types, and the settings they build."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import click

from ingest.convert.redact import use_rules
from ingest.convert.spans import ConversionOptions
from ingest.errors import ConfigError
from ingest.ops.config import client_headers_option
from ingest.phoenix.api import DEFAULT_ENDPOINT, PhoenixSettings
from ingest.run.delivery import Tuning
from ingest.run.pull import PullSettings
from ingest.sources.portkey.api import (
    AUTH_MODES,
    DEFAULT_BASE_URL,
    PORTKEY_EXPORT_LIMIT,
    PortkeySettings,
)

F = TypeVar("F", bound=Callable[..., Any])


def default_of(settings: type, name: str) -> Any:
    """A settings dataclass's default for a field: the one place each default is written."""
    return next(f.default for f in dataclasses.fields(settings) if f.name == name)


DEFAULT_PROJECT = "portkey"


class EmptyEnvOption(click.Option):
    """An option whose environment variable, set but empty, counts as '' (click ignores
    it): `INGEST_SESSION_KEY=` disables sessions as `--session-key ''` does, and
    `PHOENIX_PROJECT_NAME=` is the same error as an empty --project."""

    def resolve_envvar_value(self, ctx: click.Context) -> str | None:
        value = super().resolve_envvar_value(ctx)
        if value is None and isinstance(self.envvar, str) and os.environ.get(self.envvar) == "":
            return ""
        return value


def option_group(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    def apply(fn: F) -> F:
        for decorator in reversed(decorators):
            fn = decorator(fn)
        return fn

    return apply


phoenix_options = option_group(
    click.option(
        "--endpoint",
        envvar="PHOENIX_COLLECTOR_ENDPOINT",
        show_envvar=True,
        default=DEFAULT_ENDPOINT,
        show_default=True,
        help="Phoenix server URL (with or without /v1/traces).",
    ),
    click.option(
        "--api-key",
        envvar="PHOENIX_API_KEY",
        show_envvar=True,
        default=None,
        help="Phoenix API key, sent as 'Authorization: Bearer'. Never printed.",
    ),
    click.option(
        "--retry-deadline",
        envvar="INGEST_RETRY_DEADLINE",
        show_envvar=True,
        type=click.FloatRange(min=0),
        default=default_of(PhoenixSettings, "retry_deadline_s"),
        show_default=True,
        help="Seconds to keep retrying Phoenix (503, 429, 5xx, connection errors) "
        "before giving up.",
    ),
    client_headers_option,
    click.option(
        "--strict",
        is_flag=True,
        envvar="INGEST_STRICT",
        show_envvar=True,
        help="Refuse to send an API key over plain http:// to a host that is not this machine "
        "(without it: a warning).",
    ),
)

project_option = click.option(
    "--project",
    cls=EmptyEnvOption,
    envvar="PHOENIX_PROJECT_NAME",
    show_envvar=True,
    default=DEFAULT_PROJECT,
    show_default=True,
    help="Phoenix project the spans go to (created on first use).",
)


def _regexes(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    for pattern in value:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise click.BadParameter(f"{pattern!r} is not a regular expression: {exc}") from None
    return value


def _route_only(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    from ingest.convert.ids import project_name_problem

    names = tuple(str(name).strip() for name in value or ())
    for name in names:
        problem = project_name_problem(name)
        if problem:
            raise click.BadParameter(f"{name!r} cannot be a project name: it {problem}")
    return names


def project_from_callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    from ingest.convert.ids import check_project_from

    if value is None or value == "":
        return None
    try:
        return check_project_from(str(value))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


routing_options = option_group(
    click.option("--project-from", "project_from", default=None, callback=project_from_callback,
                 metavar="FIELD",
                 help="Route each log to the Phoenix project its FIELD names: metadata.<key> "
                 "or workspace; logs without a usable value go to --project."),
    click.option("--route-only", "route_only", multiple=True, metavar="PROJECT",
                 callback=_route_only,
                 help="With --project-from: route only to these projects (repeatable); a log "
                 "whose value names another goes to --project, as one without a value does."),
    click.option("--sample", type=click.FloatRange(min=0, max=1, min_open=True), default=1.0,
                 metavar="RATE", show_default=True,
                 help="Keep this share of traces, chosen by a hash of the trace: the same "
                 "traces on every run and shard; the others count as done."),
)  # fmt: skip

conversion_options = option_group(
    routing_options,
    click.option(
        "--session-key",
        cls=EmptyEnvOption,
        envvar="INGEST_SESSION_KEY",
        show_envvar=True,
        default=default_of(ConversionOptions, "session_key"),
        show_default=True,
        help="Portkey metadata key whose value becomes session.id ('' to disable).",
    ),
    click.option(
        "--max-messages",
        type=click.IntRange(min=1),
        default=default_of(ConversionOptions, "max_messages"),
        show_default=True,
        help="Input/output messages kept per span (the most recent); the cut is recorded.",
    ),
    click.option(
        "--max-value-chars",
        type=click.IntRange(min=1000),
        default=default_of(ConversionOptions, "max_value_chars"),
        show_default=True,
        help="Longest attribute string; longer ones end with a truncation marker.",
    ),
    click.option("--max-span-bytes", type=click.IntRange(min=10_000),
                 default=default_of(ConversionOptions, "max_span_bytes"), show_default=True,
                 help="Most attribute text one span may carry; the longest values are cut."),
    click.option("--max-line-bytes", type=click.IntRange(min=1_000),
                 default=default_of(ConversionOptions, "max_line_bytes"), show_default=True,
                 help="Longest export line read; a longer one is skipped and quarantined."),
    click.option("--redact-key", multiple=True,
                 help="Also mask the value of this metadata/body key (shell-style pattern, "
                 "any case; repeatable)."),
    click.option("--redact-pattern", multiple=True, callback=_regexes,
                 help="Also mask text matching this regular expression (repeatable)."),
    click.option("--drop-content", is_flag=True, envvar="INGEST_DROP_CONTENT", show_envvar=True,
                 help="Spans without what was said: no messages, bodies, tool-call arguments "
                 "or results, embedded texts, prompt templates or error texts; model, tokens, "
                 "cost, latency, status and metadata stay. Named in "
                 "portkey.ingest.content_dropped."),
    click.option("--quarantine-raw", is_flag=True,
                 help="Also write each rejected line unmasked (\"raw\") into the quarantine "
                 "file: it then holds secrets in clear."),
)  # fmt: skip

state_option = click.option(
    "--state-dir",
    envvar="INGEST_STATE_DIR",
    show_envvar=True,
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where progress, lock and quarantine files live "
    "[default: ~/.local/state/portkey-phoenix-ingest].",
)

delivery_options = option_group(
    click.option(
        "--no-annotations",
        is_flag=True,
        help="Do not write the gateway annotations (billed cost, cache, routing, outcome).",
    ),
    click.option(
        "--batch-size",
        type=click.IntRange(min=1, max=5000),
        default=Tuning.batch_size,
        show_default=True,
        help="Spans per OTLP request.",
    ),
    click.option(
        "--max-in-flight",
        type=click.IntRange(min=1),
        default=Tuning.max_in_flight,
        show_default=True,
        help="Spans sent but not yet read back from Phoenix; keeps its queue from overflowing.",
    ),
    click.option(
        "--verify-grace",
        type=click.FloatRange(min=0.5),
        default=Tuning.grace_s,
        show_default=True,
        help="Seconds without progress before acknowledged-but-missing spans are sent again.",
    ),
)

_LOG_FORMAT: list[str] = []  # set by --log-format before the command body runs


def _remember_log_format(ctx: click.Context, param: click.Parameter, value: str) -> str:
    _LOG_FORMAT[:] = [value]
    return value


def log_format() -> str:
    """--log-format of this run; INGEST_LOG_FORMAT when the run stopped before reading it."""
    if _LOG_FORMAT:
        return _LOG_FORMAT[0]
    return "json" if os.environ.get("INGEST_LOG_FORMAT", "").strip() == "json" else "text"


def forget_log_format(args: list[str] | None = None) -> None:
    """A new run: its `--log-format`, as `args` give it, holds even when the run stops
    before the option is parsed (a refused config-file value)."""
    _LOG_FORMAT.clear()
    for index, word in enumerate(args or []):
        value = args[index + 1] if word == "--log-format" and index + 1 < len(args) else None
        value = word.partition("=")[2] if word.startswith("--log-format=") else value
        if value in ("text", "json"):
            _LOG_FORMAT[:] = [value]


verbosity_options = option_group(
    click.option("-v", "--verbose", count=True, help="More log output (-vv for debug)."),
    click.option(
        "-q", "--quiet", is_flag=True, help="Only errors and the run_done line; no summary."
    ),
    click.option(
        "--log-format",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        envvar="INGEST_LOG_FORMAT",
        show_envvar=True,
        expose_value=False,
        is_eager=True,
        callback=_remember_log_format,
        help="Log lines as text, or one JSON object per line (event, counts, duration) for "
        "log shippers. Off a terminal, progress is logged instead of drawn.",
    ),
)


def start_logging(verbose: int, quiet: bool) -> None:
    from ingest.run.logs import setup_logging

    setup_logging(verbose, quiet, log_format())


def resolve_state_dir(value: Path | None) -> Path:
    from ingest.run.state import default_state_dir

    return value or default_state_dir()


def phoenix_settings(
    endpoint: str,
    api_key: str | None,
    project: str,
    deadline: float,
    headers: dict[str, str] | None = None,
    strict: bool = False,
) -> PhoenixSettings:
    options = {"endpoint": endpoint, "api_key": api_key, "project": project,
               "retry_deadline": deadline, "client_headers": headers, "strict": strict}  # fmt: skip
    return PhoenixSettings.from_options(options)


def conversion_settings(project: str, p: Mapping[str, Any]) -> ConversionOptions:
    """The conversion settings from the `conversion_options` of a command; their redaction
    rules become the run's."""
    if p.get("route_only") and not p.get("project_from"):
        raise ConfigError("--route-only names the projects --project-from may route to: give "
                          "--project-from too (metadata.<key> or workspace).")  # fmt: skip
    options = ConversionOptions(
        project=project,
        project_from=p.get("project_from"),
        route_only=frozenset(p.get("route_only") or ()),
        sample=p.get("sample", 1.0),
        session_key=p["session_key"] or None,
        max_messages=p["max_messages"],
        max_value_chars=p["max_value_chars"],
        max_span_bytes=p["max_span_bytes"],
        max_line_bytes=p["max_line_bytes"],
        redact_keys=tuple(p["redact_key"]),
        redact_patterns=tuple(p["redact_pattern"]),
        drop_content=p["drop_content"],
        quarantine_raw=p.get("quarantine_raw", False),
    )
    use_rules(options.redactor)  # the run's rules, for every output (quarantine, logs, errors)
    return options


class Duration(click.ParamType):
    """`90s`, `15m`, `2h`, `1d`, or plain seconds."""

    name = "duration"
    _units: ClassVar[dict[str, int]] = {"s": 1, "m": 60, "h": 3600, "d": 86400}

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> timedelta:
        if isinstance(value, timedelta):
            return value
        text = str(value).strip().lower()
        unit = self._units.get(text[-1:], None)
        number = text[:-1] if unit else text
        try:
            seconds = float(number) * (unit or 1)
        except ValueError:
            self.fail(f"{value!r} is not a duration like 90s, 15m, 2h or 1d", param, ctx)
        if seconds < 0:
            self.fail(f"{value!r} is negative", param, ctx)
        return timedelta(seconds=seconds)


class UtcDateTime(click.ParamType):
    """An ISO-8601 date or date-time; without a time zone it is taken as UTC."""

    name = "datetime"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            self.fail(f"{value!r} is not an ISO-8601 date or date-time (e.g. 2026-07-01 or "
                      "2026-07-01T12:00:00Z)", param, ctx)  # fmt: skip
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class Shard(click.ParamType):
    """`I/N`: this worker's share of a backfill (1 <= I <= N)."""

    name = "I/N"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[int, int]:
        if isinstance(value, tuple):
            return value
        index, _, count = str(value).partition("/")
        try:
            shard = int(index), int(count)
        except ValueError:
            self.fail(f"{value!r} is not I/N, e.g. 1/4", param, ctx)
        if not 1 <= shard[0] <= shard[1]:
            self.fail(f"{value!r}: I must be between 1 and N", param, ctx)
        return shard


# What every command that talks to Portkey's API takes (reconcile: only these).
portkey_connection_options = option_group(
    click.option("--portkey-api-key", envvar="PORTKEY_API_KEY", show_envvar=True,
                 help="Portkey API key (logs.export scope; analytics.view for reconcile). "
                 "Never printed."),
    click.option("--portkey-base-url", envvar="PORTKEY_BASE_URL", show_envvar=True,
                 default=DEFAULT_BASE_URL, show_default=True,
                 help="Portkey API (control plane) URL; self-hosted: your control plane URL."),
    click.option("--portkey-auth", envvar="PORTKEY_AUTH", show_envvar=True,
                 type=click.Choice(AUTH_MODES, case_sensitive=False),
                 default=default_of(PortkeySettings, "auth"), show_default=True,
                 help="How the key is sent: x-portkey-api-key (Portkey's API) or bearer "
                 "(Authorization: Bearer, as the Prisma AIRS AI Gateway's API reads it)."),
    click.option("--workspace", envvar="PORTKEY_WORKSPACE", show_envvar=True, default=None,
                 help="Portkey workspace slug [default: the key's workspace]."),
    click.option("--portkey-retry-deadline", type=click.FloatRange(min=0.1),
                 default=default_of(PortkeySettings, "retry_deadline_s"),
                 show_default=True, envvar="INGEST_PORTKEY_RETRY_DEADLINE", show_envvar=True,
                 help="Seconds to keep retrying Portkey (429, 5xx, dropped connections)."),
)  # fmt: skip

portkey_options = option_group(
    portkey_connection_options,
    click.option("--gateway-url", envvar="PORTKEY_GATEWAY_URL", show_envvar=True, default=None,
                 help="Data plane URL for GET /logs/{id} (--enrich) [default: the base URL]."),
    click.option("--window", type=Duration(), default="1d", show_default=True,
                 help="Size of the export windows the range is cut into."),
    click.option("--concurrency", type=click.IntRange(min=1, max=16),
                 default=default_of(PullSettings, "concurrency"),
                 show_default=True, help="Export jobs in flight at once."),
    click.option("--export-limit", type=click.IntRange(min=1, max=PORTKEY_EXPORT_LIMIT),
                 default=default_of(PortkeySettings, "export_limit"),
                 show_default=True, help="Logs per export job; bigger windows are split."),
    click.option("--poll-interval", type=click.FloatRange(min=0.01),
                 default=default_of(PortkeySettings, "poll_interval_s"),
                 show_default=True, help="Seconds between export status polls."),
    click.option("--max-download-mib", type=click.IntRange(min=1),
                 default=default_of(PortkeySettings, "max_download_mib"), show_default=True,
                 help="Largest export file to download (MiB); a bigger one stops the run."),
    click.option("--max-duration", type=Duration(), default=None,
                 help="Start no new window after this long (e.g. 50m); the next run continues."),
    click.option("--enrich", is_flag=True,
                 help="Add span ids, cache status, retries and virtual key from GET /logs/{id}."),
    click.option("--enrich-concurrency", type=click.IntRange(min=1, max=32),
                 default=default_of(PortkeySettings, "enrich_concurrency"),
                 show_default=True, help="Parallel GET /logs/{id} requests."),
    click.option("--enrich-rate", type=click.FloatRange(min=0.1),
                 default=default_of(PortkeySettings, "enrich_rate_per_s"),
                 show_default=True, help="At most this many GET /logs/{id} per second."),
)  # fmt: skip


def pull_settings(phoenix: PhoenixSettings, tuning: Tuning, kw: Mapping[str, Any]
                  ) -> PullSettings:  # fmt: skip
    """The settings of a `sync`, `backfill` or ranged `resync` invocation."""
    return PullSettings(
        phoenix=phoenix,
        options=conversion_settings(phoenix.project, kw),
        portkey=PortkeySettings.from_options(kw),
        state_dir=resolve_state_dir(kw["state_dir"]),
        tuning=tuning,
        window=kw["window"],
        concurrency=kw["concurrency"],
        max_duration_s=kw["max_duration"].total_seconds()
        if kw["max_duration"] is not None
        else None,
        enrich=kw["enrich"],
        annotate=not kw["no_annotations"],
        quarantine_path=kw["quarantine_file"],
    )


pull_delivery_options = option_group(
    conversion_options,
    state_option,
    delivery_options,
    click.option(
        "--quarantine-file",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="JSONL file for rejected records [default: STATE_DIR/quarantine/].",
    ),
    click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object."),
    verbosity_options,
)


def pull_settings_from(kw: dict[str, Any]) -> tuple[PhoenixSettings, PullSettings]:
    """The Phoenix settings and the PullSettings of a `sync` or `backfill` invocation."""
    phoenix = phoenix_settings(kw["endpoint"], kw["api_key"], kw["project"], kw["retry_deadline"],
                               kw["client_headers"], kw["strict"])  # fmt: skip
    return phoenix, pull_settings(phoenix, tuning_from(kw), kw)


def tuning_from(kw: Mapping[str, Any]) -> Tuning:
    """The delivery tuning from the `delivery_options` of a command."""
    return Tuning(batch_size=kw["batch_size"], max_in_flight=kw["max_in_flight"],
                  grace_s=kw["verify_grace"])  # fmt: skip
