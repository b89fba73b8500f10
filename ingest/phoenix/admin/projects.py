"""Phoenix projects by name: their id (for UI links), created on demand.

Plain REST calls through the transport (importing phoenix.client costs seconds, too much for a
link), with a short timeout and no retries: a link is a convenience, never worth failing or
waiting for.
"""

from __future__ import annotations

from urllib.parse import quote

from ingest.errors import RedirectRefused, Transient
from ingest.http import Transport
from ingest.phoenix.api import PhoenixSettings

TIMEOUT_S = 10.0


def _transport(settings: PhoenixSettings) -> Transport:
    return Transport(settings.service(TIMEOUT_S))


def project_id(settings: PhoenixSettings) -> str | None:
    """The Phoenix id of the project (for UI links); None when it cannot be looked up."""
    path = f"/v1/projects/{quote(settings.project, safe='')}"
    try:
        response = _transport(settings).send("GET", path)
        response.raise_for_status()
        return str(response.json()["data"]["id"])
    except (Transient, RedirectRefused, OSError, ValueError, KeyError, TypeError):
        return None  # a link is a convenience: never fail a finished import over it


def ensure_project(settings: PhoenixSettings) -> str | None:
    """The project's id, creating the project first if needed (so a link can be printed
    before any span arrives); None when Phoenix does not allow it."""
    if found := project_id(settings):
        return found
    body = {"name": settings.project, "description": "Portkey logs (portkey-phoenix-ingest)"}
    try:
        response = _transport(settings).send("POST", "/v1/projects", json=body)
    except (Transient, RedirectRefused):
        return None
    return project_id(settings) if response.status_code < 500 else None
