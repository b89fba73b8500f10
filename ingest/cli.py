"""The command line: parse options, call the pipeline, print results, map errors to exit codes."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import click

from . import __version__
from .config import client_headers_option, config_option
from .delivery import Tuning
from .errors import EXIT_FAILED, EXIT_LOCKED, EXIT_OK, EXIT_QUARANTINED, ConfigError, IngestError
from .phoenix import DEFAULT_ENDPOINT, PhoenixSettings
from .spans import ConversionOptions

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_PROJECT = "portkey"


def _options(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    def apply(fn: F) -> F:
        for decorator in reversed(decorators):
            fn = decorator(fn)
        return fn

    return apply


phoenix_options = _options(
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
        default=120.0,
        show_default=True,
        help="Seconds to keep retrying Phoenix (503, 429, 5xx, connection errors) "
        "before giving up.",
    ),
    client_headers_option,
)

project_option = click.option(
    "--project",
    envvar="PHOENIX_PROJECT_NAME",
    show_envvar=True,
    default=DEFAULT_PROJECT,
    show_default=True,
    help="Phoenix project the spans go to (created on first use).",
)

conversion_options = _options(
    click.option(
        "--session-key",
        envvar="INGEST_SESSION_KEY",
        show_envvar=True,
        default="session_id",
        show_default=True,
        help="Portkey metadata key whose value becomes session.id ('' to disable).",
    ),
    click.option(
        "--max-messages",
        type=click.IntRange(min=1),
        default=200,
        show_default=True,
        help="Input/output messages kept per span (the most recent); the cut is recorded.",
    ),
    click.option(
        "--max-value-chars",
        type=click.IntRange(min=1000),
        default=50_000,
        show_default=True,
        help="Longest attribute string; longer ones end with a truncation marker.",
    ),
)

state_option = click.option(
    "--state-dir",
    envvar="INGEST_STATE_DIR",
    show_envvar=True,
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where progress, lock and quarantine files live "
    "[default: ~/.local/state/portkey-phoenix-ingest].",
)

delivery_options = _options(
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

_LOG_FORMAT = ["text"]  # set by --log-format before the command body runs


def _remember_log_format(ctx: click.Context, param: click.Parameter, value: str) -> str:
    _LOG_FORMAT[0] = value
    return value


verbosity_options = _options(
    click.option("-v", "--verbose", count=True, help="More log output (-vv for debug)."),
    click.option("-q", "--quiet", is_flag=True, help="Only errors; no summary on success."),
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


def _setup_logging(verbose: int, quiet: bool) -> None:
    from .logs import setup_logging

    setup_logging(verbose, quiet, _LOG_FORMAT[0])


def _state_dir(value: Path | None) -> Path:
    from .state import default_state_dir

    return value or default_state_dir()


def _settings(
    endpoint: str,
    api_key: str | None,
    project: str,
    deadline: float,
    headers: dict[str, str] | None = None,
) -> PhoenixSettings:
    if not endpoint.startswith(("http://", "https://")):
        raise ConfigError(
            f"PHOENIX_COLLECTOR_ENDPOINT / --endpoint must be an http(s) URL, got {endpoint!r}."
        )
    if not project.strip():
        raise ConfigError("the Phoenix project name (--project / PHOENIX_PROJECT_NAME) is empty.")
    return PhoenixSettings(
        endpoint=endpoint,
        project=project.strip(),
        api_key=api_key or None,
        headers=headers or {},
        retry_deadline_s=deadline,
    )


def _conversion(project: str, session_key: str, max_messages: int, max_chars: int) -> Any:
    return ConversionOptions(
        project=project,
        session_key=session_key or None,
        max_messages=max_messages,
        max_value_chars=max_chars,
    )


def _run(action: Callable[[], int]) -> None:
    """Run a command body; IngestError -> its message on stderr and its exit code."""
    try:
        code = action()
    except IngestError as exc:
        click.echo(f"Error: {exc}", err=True)
        _run_done("locked" if exc.exit_code == EXIT_LOCKED else "failed", exc.exit_code,
                  error=str(exc))  # fmt: skip
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted: progress up to the last verified batch is saved.", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug of ours: say so, keep secrets and tracebacks out
        logging.getLogger("ingest").debug("unexpected failure", exc_info=True)
        click.echo(
            f"Error: unexpected failure ({type(exc).__name__}). Progress up to the last "
            "verified batch is saved. Please report this, with the output of -vv.",
            err=True,
        )
        _run_done("failed", EXIT_FAILED, error=type(exc).__name__)
        sys.exit(EXIT_FAILED)
    sys.exit(code)


def _run_done(outcome: str, exit_code: int, **fields: Any) -> None:
    """The run's last log line: one event a monitoring check can parse."""
    from .logs import event

    command = click.get_current_context(silent=True)
    name = command.info_name if command is not None else None
    event("run_done", command=name, outcome=outcome, exit_code=exit_code, **fields)


@click.group(
    context_settings={
        "help_option_names": ["-h", "--help"],
        # Every option also reads INGEST_<COMMAND>_<OPTION> (e.g. INGEST_SYNC_WINDOW=6h);
        # options with a documented variable (PHOENIX_*, PORTKEY_*) keep theirs.
        "auto_envvar_prefix": "INGEST",
    }
)
@click.version_option(__version__, prog_name="portkey-phoenix-ingest")
@config_option
def cli() -> None:
    """Move Portkey AI Gateway logs into Arize Phoenix as verified OpenInference spans.

    \b
    Exit codes: 0 all delivered; 3 finished, some records quarantined;
    1 failed (nothing past the last verified record is counted as done);
    2 usage or configuration error; 75 another run holds the state lock.
    """


@cli.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@phoenix_options
@project_option
@conversion_options
@state_option
@delivery_options
@click.option(
    "--quarantine-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="JSONL file for rejected records [default: STATE_DIR/quarantine/<time>-<pid>.jsonl].",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@verbosity_options
def import_command(
    files: tuple[Path, ...],
    endpoint: str,
    api_key: str | None,
    retry_deadline: float,
    client_headers: dict[str, str] | None,
    project: str,
    session_key: str,
    max_messages: int,
    max_value_chars: int,
    state_dir: Path | None,
    batch_size: int,
    max_in_flight: int,
    verify_grace: float,
    no_annotations: bool,
    quarantine_file: Path | None,
    as_json: bool,
    verbose: int,
    quiet: bool,
) -> None:
    """Import Portkey export files (JSONL or .jsonl.gz) into Phoenix and verify every span.

    FILES may be files or directories (their *.jsonl, *.jsonl.gz and *.ndjson files).
    Re-running is safe: finished files are skipped, interrupted ones resume after their
    last verified line, and spans Phoenix already holds are not sent again.

    \b
    Examples:
      portkey-phoenix-ingest import export-2026-07.jsonl
      portkey-phoenix-ingest import exports/ --project prod-llm
      PHOENIX_COLLECTOR_ENDPOINT=https://phoenix.internal PHOENIX_API_KEY=... \\
        portkey-phoenix-ingest import logs.jsonl.gz --json
    """
    _setup_logging(verbose, quiet)

    def action() -> int:
        from .pipeline import import_files
        from .report import print_summary
        from .sources import expand_paths

        settings = _settings(endpoint, api_key, project, retry_deadline, client_headers)
        options = _conversion(settings.project, session_key, max_messages, max_value_chars)
        paths = expand_paths(list(files))
        if not paths:
            raise ConfigError(f"no export files (*.jsonl, *.jsonl.gz) found in {files[0]}.")
        tuning = Tuning(batch_size=batch_size, max_in_flight=max_in_flight, grace_s=verify_grace)
        summary = import_files(
            paths, settings, options, _state_dir(state_dir), tuning, quarantine_file,
            annotate=not no_annotations,
        )  # fmt: skip
        print_summary(summary, settings, as_json=as_json, quiet=quiet)
        return EXIT_QUARANTINED if summary.quarantined else EXIT_OK

    _run(action)


@cli.command("convert")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@project_option
@conversion_options
@click.option(
    "--quarantine-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write rejected records here (they are always reported on stderr).",
)
@verbosity_options
def convert_command(
    files: tuple[Path, ...],
    project: str,
    session_key: str,
    max_messages: int,
    max_value_chars: int,
    quarantine_file: Path | None,
    verbose: int,
    quiet: bool,
) -> None:
    """Convert export files to spans without sending them: one JSON span per line on stdout.

    \b
    Each line is {"trace_id", "span_id", "parent_span_id", "name", "start_time",
    "end_time", "status": {"code", "message"}, "attributes", "resource"}; see README.md.
    Rejected records are reported on stderr; the exit code is 3 when there were any.

    \b
    Examples:
      portkey-phoenix-ingest convert export.jsonl | jq '.attributes["llm.model_name"]'
      portkey-phoenix-ingest convert sample_logs/ --project demo > spans.jsonl
    """
    _setup_logging(verbose, quiet)

    def action() -> int:
        from .convert import convert_files
        from .sources import expand_paths

        options = _conversion(project, session_key, max_messages, max_value_chars)
        rejected = convert_files(expand_paths(list(files)), options, sys.stdout, quarantine_file)
        return EXIT_QUARANTINED if rejected else EXIT_OK

    _run(action)


@cli.command("status")
@state_option
@click.option("--json", "as_json", is_flag=True, help="Print the state as JSON.")
def status_command(state_dir: Path | None, as_json: bool) -> None:
    """Show what the state file records: files imported, their progress, the last run.

    \b
    Example:
      portkey-phoenix-ingest status --state-dir /var/lib/portkey-phoenix-ingest
    """

    def action() -> int:
        from .report import print_status
        from .state import StateStore

        store = StateStore(_state_dir(state_dir))
        store.load()
        print_status(store, as_json=as_json)
        return EXIT_OK

    _run(action)


@cli.command("check")
@phoenix_options
@click.option(
    "--project",
    default=None,
    help="Project to import into [default: a fresh 'portkey-check-<time>' project].",
)
@click.option(
    "--logs",
    "logs_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="Directory of export files with an EXPECTED.json [default: the bundled sample_logs].",
)
@verbosity_options
def check_command(
    endpoint: str,
    api_key: str | None,
    retry_deadline: float,
    client_headers: dict[str, str] | None,
    project: str | None,
    logs_dir: Path | None,
    verbose: int,
    quiet: bool,
) -> None:
    """CI smoke check: import the sample logs into a fresh project, read every span back
    and compare the essentials with sample_logs/EXPECTED.json. Exits 1 on any mismatch.

    \b
    Example (in CI, with a Phoenix service container):
      PHOENIX_COLLECTOR_ENDPOINT=http://localhost:6006 portkey-phoenix-ingest check
    """
    _setup_logging(verbose, quiet)

    def action() -> int:
        from .check import run_check

        settings = _settings(endpoint, api_key, project or "check", retry_deadline, client_headers)
        ok = run_check(settings, logs_dir, fresh_project=project is None)
        return EXIT_OK if ok else EXIT_FAILED

    _run(action)


@cli.command("demo")
@click.option("--no-serve", is_flag=True, help="Exit after the import instead of serving Phoenix.")
@click.option(
    "--port",
    type=click.IntRange(min=0, max=65535),
    default=0,
    help="Port for the local Phoenix [default: a free one].",
)
@state_option
@verbosity_options
def demo_command(
    no_serve: bool, port: int, state_dir: Path | None, verbose: int, quiet: bool
) -> None:
    """Start a local Phoenix, import the bundled sample logs, and print a link to them.

    Phoenix keeps its data under STATE_DIR/demo-phoenix, so a second demo shows the
    idempotency: nothing is sent twice. Press Ctrl-C to stop the server.

    \b
    Example:
      portkey-phoenix-ingest demo
    """
    _setup_logging(verbose, quiet)

    def action() -> int:
        from .demo import run_demo

        return run_demo(_state_dir(state_dir), port or None, serve=not no_serve)

    _run(action)


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


portkey_options = _options(
    click.option("--portkey-api-key", envvar="PORTKEY_API_KEY", show_envvar=True,
                 help="Portkey API key with the logs.export scope. Never printed."),
    click.option("--portkey-base-url", envvar="PORTKEY_BASE_URL", show_envvar=True,
                 default="https://api.portkey.ai/v1", show_default=True,
                 help="Portkey API (control plane) URL; self-hosted: your control plane URL."),
    click.option("--workspace", envvar="PORTKEY_WORKSPACE", show_envvar=True, default=None,
                 help="Portkey workspace slug to export from."),
    click.option("--gateway-url", envvar="PORTKEY_GATEWAY_URL", show_envvar=True, default=None,
                 help="Data plane URL for GET /logs/{id} (--enrich) [default: the base URL]."),
    click.option("--window", type=Duration(), default="1d", show_default=True,
                 help="Size of the export windows the range is cut into."),
    click.option("--concurrency", type=click.IntRange(min=1, max=16), default=2,
                 show_default=True, help="Export jobs in flight at once."),
    click.option("--export-limit", type=click.IntRange(min=1, max=50_000), default=50_000,
                 show_default=True, help="Logs per export job; bigger windows are split."),
    click.option("--poll-interval", type=click.FloatRange(min=0.01), default=5.0,
                 show_default=True, help="Seconds between export status polls."),
    click.option("--portkey-retry-deadline", type=click.FloatRange(min=0.1), default=300.0,
                 show_default=True, envvar="INGEST_PORTKEY_RETRY_DEADLINE", show_envvar=True,
                 help="Seconds to keep retrying Portkey (429, 5xx, dropped connections)."),
    click.option("--max-duration", type=Duration(), default=None,
                 help="Start no new window after this long (e.g. 50m); the next run continues."),
    click.option("--enrich", is_flag=True,
                 help="Add span ids, cache status, retries and virtual key from GET /logs/{id}."),
    click.option("--enrich-concurrency", type=click.IntRange(min=1, max=32), default=4,
                 show_default=True, help="Parallel GET /logs/{id} requests."),
    click.option("--enrich-rate", type=click.FloatRange(min=0.1), default=10.0,
                 show_default=True, help="At most this many GET /logs/{id} per second."),
)  # fmt: skip


def _pull_settings(
    phoenix: PhoenixSettings, state_dir: Path | None, tuning: Tuning, p: dict[str, Any],
    session_key: str, max_messages: int, max_value_chars: int, quarantine_file: Path | None,
    annotate: bool = True,
) -> Any:  # fmt: skip
    from .portkey import PortkeySettings
    from .pull import PullSettings

    if not p["portkey_api_key"]:
        raise ConfigError(
            "no Portkey API key: set PORTKEY_API_KEY (or --portkey-api-key) to a key with "
            "the logs.export scope."
        )
    portkey = PortkeySettings(
        api_key=p["portkey_api_key"],
        base_url=p["portkey_base_url"].rstrip("/"),
        workspace=p["workspace"] or None,
        gateway_url=(p["gateway_url"] or "").rstrip("/") or None,
        export_limit=p["export_limit"],
        poll_interval_s=p["poll_interval"],
        retry_deadline_s=p["portkey_retry_deadline"],
        enrich_concurrency=p["enrich_concurrency"],
        enrich_rate_per_s=p["enrich_rate"],
    )
    return PullSettings(
        phoenix=phoenix,
        options=_conversion(phoenix.project, session_key, max_messages, max_value_chars),
        portkey=portkey,
        state_dir=_state_dir(state_dir),
        tuning=tuning,
        window=p["window"],
        concurrency=p["concurrency"],
        max_duration_s=p["max_duration"].total_seconds() if p["max_duration"] is not None else None,
        enrich=p["enrich"],
        annotate=annotate,
        quarantine_path=quarantine_file,
    )


pull_delivery_options = _options(
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


def _pull_from_options(kw: dict[str, Any]) -> tuple[PhoenixSettings, Any]:
    """The Phoenix settings and the PullSettings of a `sync` or `backfill` invocation."""
    phoenix = _settings(kw["endpoint"], kw["api_key"], kw["project"], kw["retry_deadline"],
                        kw["client_headers"])  # fmt: skip
    tuning = Tuning(batch_size=kw["batch_size"], max_in_flight=kw["max_in_flight"],
                    grace_s=kw["verify_grace"])  # fmt: skip
    pull = _pull_settings(
        phoenix, kw["state_dir"], tuning, {k: kw[k] for k in _PORTKEY_KEYS},
        kw["session_key"], kw["max_messages"], kw["max_value_chars"], kw["quarantine_file"],
        not kw["no_annotations"],
    )  # fmt: skip
    return phoenix, pull


_PORTKEY_KEYS = ("portkey_api_key", "portkey_base_url", "workspace", "gateway_url", "window",
                 "concurrency", "export_limit", "poll_interval", "portkey_retry_deadline",
                 "max_duration", "enrich",
                 "enrich_concurrency", "enrich_rate")  # fmt: skip


def _report_pull(summary: Any, result: Any, info: dict[str, Any], phoenix: PhoenixSettings,
                 as_json: bool, quiet: bool) -> int:  # fmt: skip
    from .report import print_pull

    print_pull(summary, result, info, phoenix, as_json=as_json, quiet=quiet)
    return EXIT_QUARANTINED if summary.quarantined else EXIT_OK


@cli.command("sync")
@phoenix_options
@project_option
@portkey_options
@click.option(
    "--since",
    type=UtcDateTime(),
    default=None,
    help="Start here instead of at the watermark [first run default: 24 hours ago].",
)
@click.option(
    "--overlap",
    type=Duration(),
    default="15m",
    show_default=True,
    help="Re-read this much before the watermark, for logs Portkey indexed late.",
)
@click.option(
    "--lag",
    type=Duration(),
    default="5m",
    show_default=True,
    help="Stay this far behind now: Portkey's export index lags by minutes.",
)
@pull_delivery_options
def sync_command(**kw: Any) -> None:
    """The cron job: export new logs from Portkey and deliver them to Phoenix.

    Reads the watermark from the state file, exports [watermark - overlap, now - lag),
    delivers and verifies every span, then moves the watermark past each verified window.
    A second sync started while one runs exits at once with code 75.

    \b
    Examples:
      PORTKEY_API_KEY=... portkey-phoenix-ingest sync
      portkey-phoenix-ingest sync --since 2026-07-01 --max-duration 50m
    """  # fmt: skip
    _setup_logging(kw["verbose"], kw["quiet"])

    def action() -> int:
        from .pull import sync

        phoenix, pull = _pull_from_options(kw)
        summary, result, info = sync(pull, kw["since"], kw["overlap"], kw["lag"])
        return _report_pull(summary, result, info, phoenix, kw["as_json"], kw["quiet"])

    _run(action)


@cli.command("backfill")
@phoenix_options
@project_option
@portkey_options
@click.option("--since", type=UtcDateTime(), required=True, help="Start of the range (inclusive).")
@click.option("--until", type=UtcDateTime(), required=True, help="End of the range (exclusive).")
@click.option(
    "--advance-sync",
    is_flag=True,
    help="When the whole range is done, move the sync watermark to --until.",
)
@click.option(
    "--dry-run", is_flag=True, help="Plan the windows and print their totals; start no export job."
)
@click.option(
    "--force",
    is_flag=True,
    help="Backfill even when Phoenix's retention policy would delete part of the range.",
)
@click.option(
    "--shard",
    type=Shard(),
    default=None,
    help="Take every N-th window, starting with the I-th: N workers cover the range once. "
    "Each shard keeps its own state under STATE_DIR/shards/.",
)
@pull_delivery_options
def backfill_command(**kw: Any) -> None:
    """Export a date range from Portkey and deliver it to Phoenix; rerun to resume.

    The range [--since, --until) is cut into windows (--window, one day by default); each
    verified window is recorded, so rerunning the same command continues where it stopped.
    The sync watermark is not moved unless --advance-sync is given.

    \b
    Examples:
      portkey-phoenix-ingest backfill --since 2026-01-01 --until 2026-07-01
      portkey-phoenix-ingest backfill --since 2026-06-01 --until 2026-06-02 --dry-run
      portkey-phoenix-ingest backfill --since 2026-01-01 --until 2026-07-01 --concurrency 3 --enrich
    """  # fmt: skip
    _setup_logging(kw["verbose"], kw["quiet"])

    def action() -> int:
        from .pull import backfill, dry_run

        if kw["since"] >= kw["until"]:
            raise ConfigError("--since must be before --until.")
        if kw["shard"] and kw["advance_sync"]:
            raise ConfigError(
                "--advance-sync cannot be used with --shard: no shard sees the whole range. "
                "Run one unsharded `backfill ... --advance-sync` afterwards (it sends nothing new)."
            )
        phoenix, pull = _pull_from_options(kw)
        from .guards import check_backfill
        from .report import ensure_project, phoenix_link, project_id

        for warning in check_backfill(phoenix, kw["since"], kw["until"], kw["force"]):
            click.echo(f"Warning: {warning}", err=True)
        if not kw["quiet"] and not kw["as_json"]:
            lookup = project_id if kw["dry_run"] else ensure_project  # a dry run creates nothing
            link = phoenix_link(phoenix, lookup(phoenix), kw["since"], kw["until"])
            click.echo(f"The range in Phoenix (once imported): {link}", err=True)
        if kw["dry_run"]:
            dry_run(pull, kw["since"], kw["until"], kw["shard"], as_json=kw["as_json"])
            return EXIT_OK
        summary, result, info = backfill(
            pull, kw["since"], kw["until"], kw["advance_sync"], kw["shard"]
        )
        return _report_pull(summary, result, info, phoenix, kw["as_json"], kw["quiet"])

    _run(action)


# Defined in their own modules, which import the option decorators above.
from .cli_config import config_group  # noqa: E402
from .cli_doctor import doctor_command  # noqa: E402
from .cli_reconcile import reconcile_command  # noqa: E402

cli.add_command(config_group)
cli.add_command(doctor_command)
cli.add_command(reconcile_command)


def main() -> None:
    cli(prog_name="portkey-phoenix-ingest")
