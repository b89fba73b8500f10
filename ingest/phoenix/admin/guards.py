"""Checks before a backfill starts: retention would delete it, the UI would hide it, or the
Phoenix server is outside the range this tool is tested with.

Phoenix's retention deletes traces by their start time at its next sweep, so backfilling
history older than the project's retention only to see it deleted is refused without
`--force`. Phoenix opens projects on the last 7 days, so the link printed carries the range.
"""

from __future__ import annotations

import logging
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
  ... on TraceRetentionRuleMaxDaysOrCount { maxDays maxCount } }"""
_PROJECT_POLICY = (
    "query($name: String!) { projects(filter: {col: name, value: $name}) { edges { node {"
    f" name traceRetentionPolicy {{ name cronExpression {_RULE} }} }} }} }} }}"
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
            if edge["node"]["name"] == settings.project:  # the filter matches substrings
                return _retention(edge["node"]["traceRetentionPolicy"])
        for edge in _graphql(settings, _DEFAULT_POLICY, {})["projectTraceRetentionPolicies"][
            "edges"
        ]:
            if edge["node"]["id"] == _DEFAULT_POLICY_ID:
                return _retention(edge["node"])
    except (Transient, RedirectRefused, OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("could not read Phoenix's retention policy (%s)", type(exc).__name__)
    return None


def _retention(node: dict[str, Any] | None) -> Retention | None:
    if not node:
        return None
    return Retention(node["name"], node["cronExpression"], float(node["rule"].get("maxDays") or 0))


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
    now: datetime | None = None,
) -> list[str]:  # fmt: skip
    """Warnings to show before a backfill; raises ConfigError when retention would delete
    part of the range and `force` is not set."""
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
    return warnings
