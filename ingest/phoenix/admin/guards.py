"""Checks before a backfill starts: retention would delete it, the UI would hide it, or the
Phoenix server is outside the range this tool is tested with.

Phoenix's retention deletes traces at its next sweep: by age (`max_days`: start time older
than the limit), by count (`max_count`: all but the newest N traces of the project, the oldest
go first) or by either (`max_days_or_count`). Backfilling history only to see it deleted is
refused without `--force`, with the numbers. Phoenix opens projects on the last 7 days, so the
link printed carries the range.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ingest.errors import ConfigError, RedirectRefused, Transient
from ingest.http import Transport
from ingest.phoenix import capabilities
from ingest.phoenix.api import PhoenixSettings

log = logging.getLogger(__name__)

# The Phoenix releases the test suite runs against: the oldest supported and the newest.
TESTED_PHOENIX = (capabilities.OLDEST_SUPPORTED, capabilities.NEWEST_TESTED)

_RULE = """rule { __typename
  ... on TraceRetentionRuleMaxDays { maxDays }
  ... on TraceRetentionRuleMaxCount { maxCount }
  ... on TraceRetentionRuleMaxDaysOrCount { maxDays maxCount } }"""
_PROJECT_POLICY = (
    "query($name: String!) { projects(filter: {col: name, value: $name}) { edges { node {"
    f" id name traceRetentionPolicy {{ name cronExpression {_RULE} }} }} }} }} }}"
)
# Traces of the project that start at or after $start (an always-true filter unique to the
# call: Phoenix caches these counts per filter).
_NEWER = (
    "query($id: ID!, $t: TimeRange!, $f: String!) { node(id: $id) { ... on Project {"
    " traceCount(timeRange: $t, filterCondition: $f) } } }"
)
_DEFAULT_POLICY = (
    "{ projectTraceRetentionPolicies { edges { node {"
    f" id name cronExpression {_RULE} }} }} }} }}"
)
_DEFAULT_POLICY_ID = "UHJvamVjdFRyYWNlUmV0ZW50aW9uUG9saWN5OjA="  # ProjectTraceRetentionPolicy:0


@dataclass(frozen=True)
class Retention:
    name: str
    cron: str
    max_days: float  # 0: keep forever
    max_count: int = 0  # 0: no limit; else the newest N traces of the project are kept
    project_id: str | None = None  # the project's GraphQL id (None: not created yet)


def _graphql(settings: PhoenixSettings, query: str, variables: dict[str, Any]) -> Any:
    response = Transport(settings.service()).send(
        "POST", "/graphql", json={"query": query, "variables": variables}
    )
    response.raise_for_status()
    return response.json()["data"]


def retention(settings: PhoenixSettings) -> Retention | None:
    """The retention policy that applies to the project (the default one for a new project);
    None when Phoenix cannot tell us (old server, no permission)."""
    try:
        data = _graphql(settings, _PROJECT_POLICY, {"name": settings.project})
        for edge in data["projects"]["edges"]:
            node = edge["node"]
            if node["name"] == settings.project:  # the filter matches substrings
                return _retention(node["traceRetentionPolicy"], str(node["id"]))
        for edge in _graphql(settings, _DEFAULT_POLICY, {})["projectTraceRetentionPolicies"][
            "edges"
        ]:
            if edge["node"]["id"] == _DEFAULT_POLICY_ID:
                return _retention(edge["node"])
    except (Transient, RedirectRefused, OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("could not read Phoenix's retention policy (%s)", type(exc).__name__)
    return None


def _retention(node: dict[str, Any] | None, project_id: str | None = None) -> Retention | None:
    if not node:
        return None
    rule = node["rule"]
    return Retention(node["name"], node["cronExpression"], float(rule.get("maxDays") or 0),
                     int(rule.get("maxCount") or 0), project_id)  # fmt: skip


def traces_since(settings: PhoenixSettings, project_id: str, start: datetime) -> int:
    """How many traces of the project start at or after `start`."""
    far = datetime(9999, 1, 1, tzinfo=UTC)
    variables = {"id": project_id, "t": {"start": start.isoformat(), "end": far.isoformat()},
                 "f": f"'{secrets.token_hex(6)}' != ''"}  # fmt: skip
    return int(_graphql(settings, _NEWER, variables)["node"]["traceCount"])


def count_guard(policy: Retention, settings: PhoenixSettings, until: datetime,
                logs: Callable[[], int]) -> tuple[str, int] | None:  # fmt: skip
    """(what would happen, how many would be purged) when a count rule would purge traces
    of the backfill: Phoenix keeps the newest `max_count`, so the traces already newer than
    the range come first; `logs()` (asked only here) is the backfill's size."""
    if policy.max_count <= 0:
        return None
    try:
        newer = 0 if policy.project_id is None else traces_since(settings, policy.project_id,
                                                                 until)  # fmt: skip
    except (Transient, RedirectRefused, OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("could not count the project's traces in Phoenix (%s)", type(exc).__name__)
        return None
    incoming = logs()
    purged = incoming - max(0, min(incoming, policy.max_count - newer))
    if purged <= 0:
        return None
    return (
        f"Phoenix's retention policy '{policy.name}' for project '{settings.project}' keeps "
        f"only the newest {policy.max_count} traces (schedule '{policy.cron}'): the project "
        f"already holds {newer} traces newer than this range, so up to {purged} of the "
        f"{incoming} logs of the backfill would be purged at its next run (the oldest first)."
    ), purged


def server_features(settings: PhoenixSettings) -> capabilities.ServerFeatures:
    def get_text(path: str) -> str | None:
        try:
            response = Transport(settings.service()).send("GET", path)
        except (Transient, RedirectRefused, OSError):
            return None
        return response.text if response.ok else None

    return capabilities.detect(get_text)


def range_warning(features: capabilities.ServerFeatures, base_url: str) -> str | None:
    """A warning when the server is older than the oldest supported Phoenix."""
    oldest, newest = TESTED_PHOENIX
    if features.version is None or features.version >= oldest:
        return None
    return (
        f"Phoenix at {base_url} is version {features.found()}; this tool supports Phoenix "
        f"{capabilities.format_version(oldest)} to {capabilities.format_version(newest)}. "
        "Older servers may lack annotations or the span query: upgrade Phoenix if the run fails."
    )


def check_backfill(
    settings: PhoenixSettings, since: datetime, until: datetime, force: bool,
    now: datetime | None = None, logs: Callable[[], int] = lambda: 0,
) -> list[str]:  # fmt: skip
    """Warnings to show before a backfill; raises ConfigError when retention would delete
    part of the range and `force` is not set. `logs()` counts the backfill's logs; it is only
    asked under a count rule."""
    features = server_features(settings)
    warnings = [w for w in [range_warning(features, settings.base_url)] if w]
    if not features.supports(capabilities.RETENTION_POLICIES):
        # No retention policies to read: skip the guard, say so, and go on.
        feature = capabilities.RETENTION_POLICIES
        warnings.append(
            f"{feature.title} needs Phoenix {capabilities.format_version(feature.since)} or "
            f"newer; Phoenix at {settings.base_url} is version {features.found()}, so it was "
            "skipped: check the project's retention in Phoenix yourself."
        )
        return warnings
    policy = retention(settings)
    if policy is not None and policy.max_days > 0:
        cutoff = (now or datetime.now(UTC)) - timedelta(days=policy.max_days)
        if since < cutoff:
            lost_until = min(until, cutoff)
            message = (
                f"Phoenix's retention policy '{policy.name}' for project '{settings.project}' "
                f"deletes traces older than {policy.max_days:g} days (schedule "
                f"'{policy.cron}'): the logs from {since.isoformat()} to "
                f"{lost_until.isoformat()} would be deleted at its next run."
            )
            if not force:
                raise ConfigError(
                    f"{message} Start at --since {cutoff.date().isoformat()} or later, change "
                    "the project's retention policy in Phoenix (Settings > Data Retention), or "
                    "pass --force to import them anyway."
                )
            warnings.append(f"{message} Going ahead because of --force.")
    by_count = None if policy is None else count_guard(policy, settings, until, logs)
    if by_count is not None:
        if not force:
            raise ConfigError(
                f"{by_count[0]} Back up or delete newer traces first, raise the policy's "
                "count (Settings > Data Retention in Phoenix), import into another project "
                "(--project), or pass --force to import them anyway."
            )
        warnings.append(f"{by_count[0]} Going ahead because of --force.")
    return warnings
