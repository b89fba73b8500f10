"""Phoenix's model price table over GraphQL: list every model, create, update and delete
custom ones (`createModel` / `updateModel` / `deleteModel`; Phoenix 12.18.0 and newer, older
servers are refused by version: their `generativeModels` is a plain list).

All traffic goes through `post_graphql`, on the phoenix layer's one transport (`PhoenixApi`:
retries within the deadline, auth and redirect errors as everywhere else).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ingest.errors import PhoenixError, RedirectRefused, Transient
from ingest.phoenix import capabilities
from ingest.phoenix.api import PhoenixApi, PhoenixSettings

# The token type that marks a custom model as this tool's (Phoenix models carry no metadata;
# a price of a type no span carries changes no cost): `prices remove` deletes only models
# with it, whatever they are named.
MARKER = "portkey-phoenix-ingest"

# Phoenix re-reads its model table every 5 s (daemons/generative_model_store.py): spans stored
# sooner after a change may still get the old price.
MODEL_REFRESH_S = 7.0

_MODEL_FIELDS = (
    "id name provider namePattern kind startTime "
    "tokenPrices { tokenType kind costPerMillionTokens }"
)
_LIST = (
    "query($after: String) { generativeModels(first: 500, after: $after) { "
    f"edges {{ node {{ {_MODEL_FIELDS} }} }} pageInfo {{ hasNextPage endCursor }} }} }}"
)
_CREATE = "mutation($in: CreateModelMutationInput!) { createModel(input: $in) { model { id } } }"
_UPDATE = "mutation($in: UpdateModelMutationInput!) { updateModel(input: $in) { model { id } } }"
_DELETE = "mutation($in: DeleteModelMutationInput!) { deleteModel(input: $in) { model { id } } }"


def post_graphql(
    settings: PhoenixSettings,
    query: str,
    variables: Mapping[str, Any],
    api: PhoenixApi | None = None,
) -> dict[str, Any]:
    """POST one GraphQL document; its `data`, or a PhoenixError that says what went wrong."""
    response = (api or PhoenixApi(settings)).request(
        "POST",
        "/graphql",
        "answer a model-table request",
        headers={"Accept": "application/json"},
        json={"query": query, "variables": dict(variables)},
    )
    body = response.json()
    if body.get("errors"):
        message = "; ".join(str(error.get("message"))[:300] for error in body["errors"])
        raise PhoenixError(f"Phoenix refused a model-table request: {message}")
    data: dict[str, Any] = body.get("data") or {}
    return data


@dataclass(frozen=True)
class PhoenixModel:
    """One row of Phoenix's price table (built-in or custom)."""

    id: str
    name: str
    provider: str
    name_pattern: str
    custom: bool
    start_time: datetime | None
    prices: dict[str, float] = field(default_factory=dict)  # per million tokens, by type
    ours: bool = False  # carries this tool's marker (written by `prices apply`)


@dataclass(frozen=True)
class ModelSpec:
    """A custom model to write: prices per million tokens by token type."""

    name: str
    provider: str
    name_pattern: str
    start_time: datetime | None
    prices: dict[str, float]
    ours: bool = False  # write this tool's marker with it

    def graphql_input(self, prompt_types: Mapping[str, bool]) -> dict[str, Any]:
        marker = [{"tokenType": MARKER, "costPerMillionTokens": 0.0, "kind": "PROMPT"}]
        return {
            "name": self.name,
            "provider": self.provider or None,
            "namePattern": self.name_pattern,
            "startTime": self.start_time.isoformat() if self.start_time else None,
            "costs": [
                {
                    "tokenType": token_type,
                    "costPerMillionTokens": price,
                    "kind": "PROMPT" if prompt_types.get(token_type, True) else "COMPLETION",
                }
                for token_type, price in self.prices.items()
            ]
            + (marker if self.ours else []),
        }


def _model(node: Mapping[str, Any]) -> PhoenixModel:
    start = node.get("startTime")
    prices = {
        str(price["tokenType"]): float(price["costPerMillionTokens"])
        for price in node.get("tokenPrices") or []
    }
    ours = prices.pop(MARKER, None) is not None
    return PhoenixModel(
        id=str(node["id"]),
        name=str(node["name"]),
        provider=str(node.get("provider") or ""),
        name_pattern=str(node["namePattern"]),
        custom=node.get("kind") == "CUSTOM",
        start_time=datetime.fromisoformat(start) if start else None,
        prices=prices,
        ours=ours and node.get("kind") == "CUSTOM",
    )


class ModelTable:
    """Read and edit Phoenix's price table."""

    def __init__(self, settings: PhoenixSettings, session: Any = None):
        self.settings = settings
        self._api = PhoenixApi(settings, session)
        self._checked = False

    def _get_text(self, path: str) -> str | None:
        try:
            response = self._api.transport.send("GET", path)
        except (Transient, RedirectRefused, OSError):
            return None  # the GraphQL request that follows says what went wrong
        return response.text if response.ok else None

    def _post(self, query: str, variables: Mapping[str, Any]) -> dict[str, Any]:
        if not self._checked:  # once: refuse a server without the models API, by version
            features = capabilities.detect(self._get_text)
            capabilities.require(features, capabilities.CUSTOM_MODEL_PRICES, self.settings.base_url)
            self._checked = True
        return post_graphql(self.settings, query, variables, self._api)

    def list(self) -> list[PhoenixModel]:
        models: list[PhoenixModel] = []
        after: str | None = None
        while True:
            page = self._post(_LIST, {"after": after})["generativeModels"]
            models += [_model(edge["node"]) for edge in page["edges"]]
            if not page["pageInfo"]["hasNextPage"]:
                return models
            after = page["pageInfo"]["endCursor"]

    def create(self, spec: ModelSpec, prompt_types: Mapping[str, bool]) -> str:
        data = self._post(_CREATE, {"in": spec.graphql_input(prompt_types)})
        return str(data["createModel"]["model"]["id"])

    def update(self, model_id: str, spec: ModelSpec, prompt_types: Mapping[str, bool]) -> None:
        self._post(_UPDATE, {"in": {"id": model_id, **spec.graphql_input(prompt_types)}})

    def delete(self, model_id: str) -> None:
        self._post(_DELETE, {"in": {"id": model_id}})


def wait_for_refresh(sleep: Callable[[float], None] = time.sleep) -> None:
    """Give Phoenix time to load a changed price table before spans are sent."""
    sleep(MODEL_REFRESH_S)
