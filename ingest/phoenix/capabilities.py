"""Which features the connected Phoenix server offers, read once per run.

Self-hosted servers lag behind releases, so the tool picks the way to do each job from what
the server offers (e.g. verification without the `span_id` filter) and refuses only what the
server cannot do, naming the feature, the version it needs and the version found.

The version (`GET /arize_phoenix_version`) decides. Where it is not enough (a development
build or a fork that reports no release number) the server's OpenAPI document, when it
publishes one, tells which REST routes and parameters exist. This module sends nothing
itself: `detect` takes a callable that GETs a path and returns the body text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ingest.errors import ConfigError

Version = tuple[int, int, int]

# The oldest Phoenix release the test suite runs against (tests/phoenix_versions/oldest.txt).
# Features already present there are listed with this version: older releases are untested.
OLDEST_SUPPORTED: Version = (12, 18, 0)
NEWEST_TESTED: Version = (20, 26, 1)


@dataclass(frozen=True)
class Feature:
    key: str
    title: str  # what the user asked for, as a refusal names it
    since: Version
    instead: str  # what to do next when refused (after "upgrade Phoenix")
    # (method, OpenAPI path, query parameter or "") that shows the feature in /openapi.json
    route: tuple[str, str, str] | None = None


SPAN_READ_BY_ID = Feature(
    "span_read_by_id",
    "Reading spans by id (the span_id filter of GET /v1/projects/{id}/spans)",
    (19, 6, 0),
    "`check` reads the logs' time window instead",
    ("get", "/v1/projects/{project_identifier}/spans", "span_id"),
)
TRACE_WINDOW_DELETE = Feature(
    "trace_window_delete",
    "Deleting a project's traces by time window (DELETE /v1/projects/{id}/traces)",
    (20, 6, 0),
    "delete the traces in the Phoenix UI, then run the command again",
    ("delete", "/v1/projects/{project_identifier}/traces", "start_time"),
)
SPAN_DELETE = Feature(
    "span_delete",
    "Deleting a span by id (DELETE /v1/spans/{id})",
    OLDEST_SUPPORTED,
    "delete the spans in the Phoenix UI",
    ("delete", "/v1/spans/{span_identifier}", ""),
)
TRACE_DELETE = Feature(
    "trace_delete",
    "Deleting a trace by id (DELETE /v1/traces/{id})",
    OLDEST_SUPPORTED,
    "delete the traces in the Phoenix UI",
    ("delete", "/v1/traces/{trace_identifier}", ""),
)
SPAN_ANNOTATIONS = Feature(
    "span_annotations",
    "Span annotations (POST /v1/span_annotations)",
    OLDEST_SUPPORTED,
    "run without annotations",
    ("post", "/v1/span_annotations", ""),
)
SPAN_QUERY_DSL = Feature(
    "span_query_dsl",
    "The span query DSL (POST /v1/spans)",
    OLDEST_SUPPORTED,
    "run without it",
)
CUSTOM_MODEL_PRICES = Feature(
    "custom_model_prices",
    "Custom model prices (the GraphQL models API: generativeModels, createModel)",
    OLDEST_SUPPORTED,
    "add the prices in the Phoenix UI (Settings > Models)",
)
RETENTION_POLICIES = Feature(
    "retention_policies",
    "The retention guard (Phoenix's trace retention policies)",
    OLDEST_SUPPORTED,
    "check the project's retention in Phoenix yourself, then pass --force",
)

FEATURES: tuple[Feature, ...] = (
    SPAN_READ_BY_ID,
    TRACE_WINDOW_DELETE,
    SPAN_DELETE,
    TRACE_DELETE,
    SPAN_ANNOTATIONS,
    SPAN_QUERY_DSL,
    CUSTOM_MODEL_PRICES,
    RETENTION_POLICIES,
)

_VERSION = re.compile(r"^\s*v?(\d+)\.(\d+)(?:\.(\d+))?")


def parse_version(text: str | None) -> Version | None:
    """'20.26.1' -> (20, 26, 1); '12.18.0rc1' and '12.18' parse too; anything else is None."""
    match = _VERSION.match(text or "")
    if match is None:
        return None
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


def format_version(version: Version | None) -> str:
    return "unknown" if version is None else ".".join(map(str, version))


def routes_from_openapi(document: Mapping[str, Any]) -> frozenset[tuple[str, str, str]]:
    """(method, path, "") for each route and (method, path, parameter) for each query
    parameter, from an OpenAPI document."""
    found: set[tuple[str, str, str]] = set()
    for path, methods in (document.get("paths") or {}).items():
        for method, operation in (methods or {}).items():
            if not isinstance(operation, Mapping):
                continue
            found.add((method.lower(), path, ""))
            for parameter in operation.get("parameters") or ():
                if isinstance(parameter, Mapping) and parameter.get("in") == "query":
                    found.add((method.lower(), path, str(parameter.get("name"))))
    return frozenset(found)


@dataclass(frozen=True)
class ServerFeatures:
    """What one Phoenix server offers. `routes` is None when it published no OpenAPI document."""

    version: Version | None
    version_text: str = ""
    routes: frozenset[tuple[str, str, str]] | None = field(default=None)

    def supports(self, feature: Feature) -> bool:
        if self.version is not None:
            return self.version >= feature.since
        if self.routes is not None and feature.route is not None:
            return feature.route in self.routes
        return True  # no version and no route list: behave as with the newest server

    def found(self) -> str:
        """The version as the refusal shows it."""
        if self.version is not None:
            return format_version(self.version)
        return f"unknown ({self.version_text.strip()[:40]!r})" if self.version_text else "unknown"

    def summary(self) -> list[tuple[Feature, bool]]:
        """Each feature with whether this server supports it (for `doctor`)."""
        return [(feature, self.supports(feature)) for feature in FEATURES]


def refusal(feature: Feature, found: str, base_url: str) -> str:
    """The message that refuses a feature the server does not offer."""
    return (
        f"{feature.title} needs Phoenix {format_version(feature.since)} or newer, but the "
        f"Phoenix server at {base_url} is version {found}. Upgrade Phoenix, or "
        f"{feature.instead}."
    )


def require(features: ServerFeatures, feature: Feature, base_url: str) -> None:
    """Raise ConfigError with the refusal when the server lacks the feature."""
    if not features.supports(feature):
        raise ConfigError(refusal(feature, features.found(), base_url))


def detect(get_text: Callable[[str], str | None]) -> ServerFeatures:
    """Read the server's version (and, if it reports none, its OpenAPI routes).

    `get_text(path)` GETs a path on the Phoenix base URL and returns the body, or None when
    the server answered with an error status. Call once per run and keep the result.
    """
    text = get_text("/arize_phoenix_version") or ""
    version = parse_version(text)
    routes = None
    if version is None:
        document = get_text("/openapi.json")
        try:
            parsed = json.loads(document) if document else None
        except ValueError:
            parsed = None
        if isinstance(parsed, Mapping):
            routes = routes_from_openapi(parsed)
    return ServerFeatures(version, text.strip()[:80], routes)
