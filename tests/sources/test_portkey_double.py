"""Tests of the Portkey test double itself: every other test trusts it, so it must be right."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from portkey_double import (
    DEFAULT_API_KEY,
    DEFAULT_WORKSPACE,
    EXPORT_FIELDS,
    STORAGE_ROUTE,
    Fault,
    PortkeyDouble,
    js_date,
    make_log,
)

from ingest.convert.records import parse_record

UTC = UTC
T0 = datetime(2026, 7, 25, 11, 0, 0, tzinfo=UTC)
DAY = {"time_of_generation_min": "2026-07-25", "time_of_generation_max": "2026-07-26"}
CREATE = "POST /logs/exports"
RETRIEVE = "GET /logs/exports/{id}"
START = "POST /logs/exports/{id}/start"
DOWNLOAD = "GET /logs/exports/{id}/download"


@pytest.fixture
def double() -> Iterator[PortkeyDouble]:
    with PortkeyDouble() as d:
        yield d
        assert d.errors == []


class Api:
    """Plain HTTP against the double, the way any client would talk to Portkey."""

    def __init__(self, double: PortkeyDouble, key: str | None = DEFAULT_API_KEY) -> None:
        self.double = double
        self.headers = {} if key is None else {"x-portkey-api-key": key}

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        url = self.double.base_url + path
        return requests.request(method, url, headers=headers, timeout=10, **kwargs)

    def create(self, filters: dict[str, Any] | None = None, **body: Any) -> requests.Response:
        payload = {
            "filters": DAY if filters is None else filters,
            "requested_data": list(EXPORT_FIELDS),
            "description": "test export",
            **body,
        }
        return self.call("POST", "/logs/exports", json=payload)

    def export_id(self, filters: dict[str, Any] | None = None, **body: Any) -> str:
        response = self.create(filters, **body)
        assert response.status_code == 200, response.text
        return response.json()["id"]

    def status(self, export_id: str) -> str:
        return self.call("GET", f"/logs/exports/{export_id}").json()["status"]

    def start(self, export_id: str) -> requests.Response:
        return self.call("POST", f"/logs/exports/{export_id}/start")

    def run(self, export_id: str, max_polls: int = 20) -> str:
        """Start and poll until the status is no longer in_progress."""
        assert self.start(export_id).status_code == 200
        for _ in range(max_polls):
            status = self.status(export_id)
            if status != "in_progress":
                return status
        return "in_progress"

    def signed_url(self, export_id: str) -> str:
        response = self.call("GET", f"/logs/exports/{export_id}/download")
        assert response.status_code == 200, response.text
        return response.json()["signed_url"]

    def lines(self, export_id: str) -> list[dict[str, Any]]:
        """Run an export to success and return its parsed JSONL lines."""
        assert self.run(export_id) == "success"
        body = requests.get(self.signed_url(export_id), timeout=10)
        assert body.status_code == 200
        return [json.loads(line) for line in body.text.splitlines()]


def logs_at(*minutes: float, **fields: Any) -> list[dict[str, Any]]:
    return [make_log(T0 + timedelta(minutes=m), **fields) for m in minutes]


def assert_envelope(response: requests.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False
    assert body["data"]["errorCode"] == code
    return body["data"]["message"]


# --------------------------------------------------------------------------- lifecycle


def test_export_lifecycle_end_to_end(double: PortkeyDouble) -> None:
    logs = logs_at(30, 10, 20)
    double.add_logs(logs)
    api = Api(double)

    created = api.create()
    assert created.status_code == 200
    assert set(created.json()) == {"id", "total", "object"}
    assert created.json()["total"] == 3
    assert created.json()["object"] == "export"
    export_id = created.json()["id"]
    assert api.status(export_id) == "draft"

    started = api.start(export_id)
    assert started.json() == {"message": "Export started", "object": "export"}
    assert api.status(export_id) == "in_progress"  # default: one poll in progress
    assert api.status(export_id) == "success"

    item = api.call("GET", f"/logs/exports/{export_id}").json()
    assert set(item) == {
        "id", "organisation_id", "filters", "requested_data", "status", "description",
        "created_at", "last_updated_at", "created_by", "workspace_id", "object", "total_records",
    }  # fmt: skip
    assert item["filters"] == DAY
    assert item["description"] == "test export"
    assert item["total_records"] == 3

    url = api.signed_url(export_id)
    parts = urlsplit(url)
    assert parts.hostname == "127.0.0.1"
    assert parts.port != urlsplit(double.base_url).port
    assert parts.path == f"/exports/{export_id}.jsonl"
    assert {"X-Amz-Expires", "X-Amz-Signature"} <= set(parse_qs(parts.query))

    body = requests.get(url, timeout=10)  # no Portkey key: object storage does not need it
    assert body.status_code == 200
    assert body.text.endswith("\n")
    ids = [json.loads(line)["id"] for line in body.text.splitlines()]
    by_time = sorted(logs, key=lambda g: g["created_at"])
    assert ids == [g["id"] for g in by_time]  # ascending created_at, not insertion order
    assert double.storage_saw_api_key is False

    listing = api.call("GET", "/logs/exports?")
    assert listing.json()["object"] == "list"
    assert listing.json()["total"] == 1
    assert listing.json()["data"][0]["status"] == "success"


def test_unknown_export_id_is_404_ab08(double: PortkeyDouble) -> None:
    api = Api(double)
    for method, suffix in (("GET", ""), ("POST", "/start"), ("GET", "/download")):
        response = api.call(method, f"/logs/exports/00000000-0000-0000-0000-000000000000{suffix}")
        assert_envelope(response, 404, "AB08")


def test_list_filters_by_workspace_and_accepts_blank(double: PortkeyDouble) -> None:
    api = Api(double)
    in_ws = api.export_id(workspace_id="ws-a")
    api.export_id()
    assert api.call("GET", "/logs/exports").json()["total"] == 2
    assert api.call("GET", "/logs/exports?workspace_id=").json()["total"] == 2
    only = api.call("GET", "/logs/exports", params={"workspace_id": "ws-a"}).json()
    assert [item["id"] for item in only["data"]] == [in_ws]
    assert only["data"][0]["workspace_id"] == "ws-a"


def test_list_with_unknown_workspace_is_500_when_workspaces_are_known() -> None:
    with PortkeyDouble(workspaces=["ws-a"]) as double:
        api = Api(double)
        assert api.call("GET", "/logs/exports?workspace_id=ws-a").status_code == 200
        assert_envelope(api.call("GET", "/logs/exports?workspace_id=nope"), 500, "AB04")


def test_workspace_is_a_slug_and_a_uuid_matches_nothing(double: PortkeyDouble) -> None:
    double.add_logs(logs_at(1, 2, workspace_slug="ws-a") + logs_at(3))
    api = Api(double)
    assert api.create(workspace_id="ws-a").json()["total"] == 2
    assert api.create(workspace_id=DEFAULT_WORKSPACE).json()["total"] == 1
    assert api.create().json()["total"] == 3
    uuid_ws = "3c90c3cc-0d44-4b50-8888-8dd25736052a"
    assert api.create(workspace_id=uuid_ws).json()["total"] == 0


def test_update_recomputes_total_and_only_in_draft_or_failed(double: PortkeyDouble) -> None:
    double.add_logs(logs_at(0, 60, 120, 180))
    api = Api(double)
    export_id = api.export_id()
    assert api.create().json()["total"] == 4
    narrow = {"time_of_generation_min": "2026-07-25T11:00:00Z",
              "time_of_generation_max": "2026-07-25T13:00:00Z"}  # fmt: skip
    updated = api.call("PUT", f"/logs/exports/{export_id}", json={"filters": narrow})
    assert updated.json() == {"id": export_id, "total": 2, "object": "export"}
    item = api.call("GET", f"/logs/exports/{export_id}").json()
    assert item["filters"] == narrow
    assert item["total_records"] == 2
    assert item["requested_data"] == list(EXPORT_FIELDS)  # kept when not sent

    assert len(api.lines(export_id)) == 2
    refused = api.call("PUT", f"/logs/exports/{export_id}", json={"filters": DAY})
    assert "success" in assert_envelope(refused, 400, "AB01")

    failing = api.export_id()
    double.faults.queue(START, Fault.job_failed())
    assert api.run(failing) == "failed"
    again = api.call("PUT", f"/logs/exports/{failing}", json={"filters": narrow})
    assert again.json()["total"] == 2


def test_update_requires_filters(double: PortkeyDouble) -> None:
    api = Api(double)
    export_id = api.export_id()
    response = api.call("PUT", f"/logs/exports/{export_id}", json={"requested_data": ["id"]})
    assert '"filters"' in assert_envelope(response, 400, "AB01")


def test_start_only_from_draft_or_failed(double: PortkeyDouble) -> None:
    api = Api(double)
    export_id = api.export_id()
    assert api.run(export_id) == "success"
    assert "success" in assert_envelope(api.start(export_id), 400, "AB01")

    running = api.export_id()
    assert api.start(running).status_code == 200
    assert "in_progress" in assert_envelope(api.start(running), 400, "AB01")


def test_cancel_only_while_in_progress(double: PortkeyDouble) -> None:
    api = Api(double)
    export_id = api.export_id()
    cancel = f"/logs/exports/{export_id}/cancel"
    assert "draft" in assert_envelope(api.call("POST", cancel), 400, "AB01")
    api.start(export_id)
    response = api.call("POST", cancel)
    assert response.status_code == 200
    assert response.json()["object"] == "export"
    assert api.status(export_id) == "stopped"
    assert "stopped" in assert_envelope(api.call("POST", cancel), 400, "AB01")
    download = api.call("GET", f"/logs/exports/{export_id}/download")
    assert "stopped" in assert_envelope(download, 400, "AB01")


def test_download_before_success_is_400_naming_the_status(double: PortkeyDouble) -> None:
    api = Api(double)
    export_id = api.export_id()
    message = assert_envelope(api.call("GET", f"/logs/exports/{export_id}/download"), 400, "AB01")
    assert "draft" in message
    api.start(export_id)
    message = assert_envelope(api.call("GET", f"/logs/exports/{export_id}/download"), 400, "AB01")
    assert "in_progress" in message


def test_job_progress_by_poll_count_and_by_time() -> None:
    with PortkeyDouble(job_polls=3) as double:
        api = Api(double)
        export_id = api.export_id()
        api.start(export_id)
        assert [api.status(export_id) for _ in range(4)] == ["in_progress"] * 3 + ["success"]
    with PortkeyDouble(job_polls=None, job_seconds=0.3) as double:
        api = Api(double)
        export_id = api.export_id()
        api.start(export_id)
        assert api.status(export_id) == "in_progress"
        time.sleep(0.35)
        assert api.status(export_id) == "success"
    with PortkeyDouble(job_polls=None) as double:
        api = Api(double)
        export_id = api.export_id()
        api.start(export_id)
        assert [api.status(export_id) for _ in range(5)] == ["in_progress"] * 5
        double.finish_export(export_id)
        assert api.status(export_id) == "success"


def test_file_is_built_from_the_logs_stored_when_the_job_completes(double: PortkeyDouble) -> None:
    double.add_logs(logs_at(1))
    api = Api(double)
    export_id = api.export_id()
    assert api.start(export_id).status_code == 200
    double.add_logs(logs_at(2))  # arrives while the job runs
    assert api.status(export_id) == "in_progress"
    assert api.status(export_id) == "success"
    assert len(requests.get(api.signed_url(export_id), timeout=10).text.splitlines()) == 2


# --------------------------------------------------------------------------- filters and window


def test_window_is_half_open(double: PortkeyDouble) -> None:
    double.add_logs(
        [
            make_log(datetime(2026, 7, 24, 23, 59, 59, 999000, tzinfo=UTC), id="before"),
            make_log(datetime(2026, 7, 25, 0, 0, 0, tzinfo=UTC), id="at-min"),
            make_log(datetime(2026, 7, 25, 23, 59, 59, 999000, tzinfo=UTC), id="last"),
            make_log(datetime(2026, 7, 26, 0, 0, 0, tzinfo=UTC), id="at-max"),
        ]
    )
    api = Api(double)
    export_id = api.export_id(DAY)
    assert [line["id"] for line in api.lines(export_id)] == ["at-min", "last"]


@pytest.mark.parametrize(
    ("low", "high"),
    [
        ("2026-07-25", "2026-07-26"),
        ("2026-07-25T00:00:00Z", "2026-07-26T00:00:00Z"),
        ("2026-07-25T00:00:00.000Z", "2026-07-26T00:00:00.000+00:00"),
        ("2026-07-25T02:00:00+02:00", "2026-07-25T19:00:00-05:00"),
        ("2026-07-25T00:00:00", "2026-07-26T00:00:00"),
    ],
)
def test_time_filter_formats(double: PortkeyDouble, low: str, high: str) -> None:
    double.add_logs(
        [
            make_log(datetime(2026, 7, 24, 23, 59, tzinfo=UTC)),
            make_log(datetime(2026, 7, 25, 0, 0, tzinfo=UTC)),
            make_log(datetime(2026, 7, 25, 12, 0, tzinfo=UTC)),
            make_log(datetime(2026, 7, 26, 0, 0, tzinfo=UTC)),
        ]
    )
    filters = {"time_of_generation_min": low, "time_of_generation_max": high}
    assert Api(double).create(filters).json()["total"] == 2


def test_simple_filters(double: PortkeyDouble) -> None:
    double.add_logs(
        logs_at(1, 2, ai_model="gpt-4o", trace_id="t-1")
        + logs_at(3, ai_model="claude-3", ai_org="anthropic", trace_id="t-2", cost=5.0)
        + logs_at(4, response_status_code=500, is_success=False, metadata={"env": "prod"})
    )
    api = Api(double)

    def total(**extra: Any) -> int:
        response = api.create({**DAY, **extra})
        assert response.status_code == 200, response.text
        return response.json()["total"]

    assert total() == 4
    assert total(ai_model="claude-3") == 1
    assert total(trace_id="t-1") == 2
    assert total(status_code="500") == 1
    assert total(cost_min=1) == 1
    assert total(cost_max=1) == 3
    assert total(ai_org_model="anthropic__claude-3, openai__nope") == 1
    assert total(metadata={"env": "prod"}) == 1
    assert total(workspace_slug=DEFAULT_WORKSPACE) == 4
    assert total(workspace_slug="other") == 0


def test_total_is_the_true_count_beyond_50000_and_the_file_is_capped(
    double: PortkeyDouble,
) -> None:
    start = datetime(2026, 7, 25, tzinfo=UTC)
    # Bare logs (the export asks for ids only): building 50,003 full records took most of the time.
    double.add_logs(
        {"id": f"log-{i:06d}", "created_at": start + timedelta(seconds=i)} for i in range(50_003)
    )
    api = Api(double)
    export_id = api.export_id(requested_data=["id"])
    assert api.call("GET", f"/logs/exports/{export_id}").json()["total_records"] == 50_003
    lines = api.lines(export_id)
    assert len(lines) == 50_000
    assert lines[-1] == {"id": "log-049999"}


def test_small_cap_truncates_silently_and_pages() -> None:
    with PortkeyDouble(export_cap=100) as double:
        double.add_logs(logs_at(*range(250)))
        ordered = sorted(double._logs.values(), key=lambda g: g["created_at"])
        api = Api(double)
        created = api.create(requested_data=["id"])
        assert created.json()["total"] == 250

        def ids(**paging: Any) -> list[str]:
            export_id = api.export_id({**DAY, **paging}, requested_data=["id"])
            return [line["id"] for line in api.lines(export_id)]

        assert ids() == [g["id"] for g in ordered[:100]]
        assert ids(current_page=1) == [g["id"] for g in ordered[100:200]]
        assert ids(current_page=2) == [g["id"] for g in ordered[200:]]
        assert ids(page_size=30, current_page=1) == [g["id"] for g in ordered[30:60]]
        assert ids(page_size=500) == [g["id"] for g in ordered[:100]]  # cap wins
        assert double.errors == []


@pytest.mark.parametrize(
    ("filters", "named"),
    [
        ({**DAY, "page_size": 50_001}, "page_size"),
        ({**DAY, "page_size": 0}, "page_size"),
        ({**DAY, "current_page": -1}, "current_page"),
        ({"time_of_generation_min": "yesterday"}, "time_of_generation_min"),
        ({"time_of_generation_max": 20260725}, "time_of_generation_max"),
        ({"created_at": {"gte": "2026-07-25"}}, "created_at"),
        ({"cost_min": "1"}, "cost_min"),
        ({"weighted_feedback_min": 1}, "not implemented by the double"),
    ],
)
def test_invalid_filters_are_400_naming_the_field(
    double: PortkeyDouble, filters: dict[str, Any], named: str
) -> None:
    assert named in assert_envelope(Api(double).create(filters), 400, "AB01")


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"requested_data": ["id"], "description": "d"}, '"filters"'),
        ({"filters": [], "requested_data": ["id"], "description": "d"}, '"filters"'),
        ({"filters": {}, "description": "d"}, '"requested_data"'),
        ({"filters": {}, "requested_data": [], "description": "d"}, '"requested_data"'),
        ({"filters": {}, "requested_data": ["id", "span_id"], "description": "d"}, "span_id"),
        ({"filters": {}, "requested_data": ["status_code"], "description": "d"}, "status_code"),
        ({"filters": {}, "requested_data": ["id"]}, '"description"'),
        ({"filters": {}, "requested_data": ["id"], "description": ""}, '"description"'),
        ({"filters": {}, "requested_data": ["id"], "description": "d", "workspace_id": 5},
         '"workspace_id"'),
    ],
)  # fmt: skip
def test_invalid_create_bodies_are_400_naming_the_field(
    double: PortkeyDouble, body: dict[str, Any], named: str
) -> None:
    response = Api(double).call("POST", "/logs/exports", json=body)
    assert named in assert_envelope(response, 400, "AB01")
    assert Api(double).call("GET", "/logs/exports").json()["total"] == 0


def test_non_json_body_counts_as_empty(double: PortkeyDouble) -> None:
    api = Api(double)
    response = api.call("POST", "/logs/exports", data={"filters": "x"})  # form-encoded
    assert '"filters"' in assert_envelope(response, 400, "AB01")
    broken = api.call(
        "POST", "/logs/exports", data="{not json", headers={"Content-Type": "application/json"}
    )
    assert "JSON" in assert_envelope(broken, 400, "AB01")


# --------------------------------------------------------------------------- file format


def test_lines_hold_only_requested_keys_in_requested_order(double: PortkeyDouble) -> None:
    double.add_logs(logs_at(5))
    api = Api(double)
    requested = ["metadata", "id", "created_at", "request", "is_success", "id"]
    (line,) = api.lines(api.export_id(requested_data=requested))
    assert list(line) == ["metadata", "id", "created_at", "request", "is_success"]
    assert line["created_at"] == "Sat Jul 25 2026 11:05:00 GMT+0000 (Coordinated Universal Time)"
    assert isinstance(line["request"], dict)
    assert line["request"]["messages"][0]["content"] == "Hello!"
    assert line["metadata"] == {"_user": "user-123"}
    assert line["is_success"] is True


def test_all_twenty_fields_and_nulls(double: PortkeyDouble) -> None:
    double.add_logs(logs_at(1, prompt_slug=None, config=None, span_id="s-1", cache_status="HIT"))
    api = Api(double)
    (line,) = api.lines(api.export_id())
    assert list(line) == list(EXPORT_FIELDS)
    assert line["prompt_slug"] is None and line["config"] is None
    assert "span_id" not in line and "cache_status" not in line


def test_js_date_format() -> None:
    assert (
        js_date(datetime(2026, 7, 25, 11, 14, 18, tzinfo=UTC))
        == "Sat Jul 25 2026 11:14:18 GMT+0000 (Coordinated Universal Time)"
    )
    assert js_date(datetime(2026, 1, 5, 3, 4, 5, 999999, tzinfo=UTC)).startswith(
        "Mon Jan 05 2026 03:04:05 GMT+0000"
    )
    plus_two = timezone(timedelta(hours=2))
    assert js_date(datetime(2026, 7, 26, 1, 0, tzinfo=plus_two)).startswith(
        "Sat Jul 25 2026 23:00:00 GMT+0000"
    )


def test_export_lines_parse_with_the_project_parser(double: PortkeyDouble) -> None:
    moment = datetime(2026, 7, 25, 11, 14, 18, tzinfo=UTC)
    double.add_logs([make_log(moment, id="log-1", cost=0.5)])
    api = Api(double)
    (line,) = api.lines(api.export_id())
    record = parse_record(line)
    assert record.log_id == "log-1"
    assert record.created_at == moment
    assert record.cost == 0.5


# --------------------------------------------------------------------------- auth


def test_missing_and_wrong_keys_are_401_ab05(double: PortkeyDouble) -> None:
    for api in (Api(double, key=None), Api(double, key="pk-wrong")):
        assert_envelope(api.create(), 401, "AB05")
        assert_envelope(api.call("GET", "/logs/exports"), 401, "AB05")
        assert_envelope(api.call("GET", "/logs/some-id"), 401, "AB05")
        assert_envelope(api.call("GET", "/analytics/graphs/requests"), 401, "AB05")
    assert double.requests_to(CREATE)  # recorded even though refused


def test_key_without_export_scope_is_403_ab03() -> None:
    keys = {"pk-analytics": ["analytics.view"], "pk-all": ["logs.export", "logs.view"]}
    with PortkeyDouble(keys=keys) as double:
        narrow = Api(double, key="pk-analytics")
        message = assert_envelope(narrow.create(), 403, "AB03")
        assert message == "You do not have enough permissions to execute this request"
        assert_envelope(narrow.call("GET", "/logs/exports"), 403, "AB03")
        assert_envelope(narrow.call("GET", "/logs/any"), 403, "AB03")
        window = {"time_of_generation_min": "2026-07-25", "time_of_generation_max": "2026-07-26"}
        assert narrow.call("GET", "/analytics/graphs/requests", params=window).status_code == 200
        assert Api(double, key="pk-all").create().status_code == 200
        assert double.api_key == "pk-analytics"


def test_unknown_portkey_headers_are_ignored_and_requests_recorded(double: PortkeyDouble) -> None:
    api = Api(double)
    extra = {"x-portkey-package-version": "portkey-2.3.4", "x-portkey-runtime": "CPython",
             "x-portkey-whatever": "1"}  # fmt: skip
    response = api.call(
        "POST", "/logs/exports", headers=extra,
        json={"filters": {}, "requested_data": ["id"], "description": "d"},
    )  # fmt: skip
    assert response.status_code == 200
    (recorded,) = double.requests_to(CREATE)
    assert recorded.server == "api"
    assert recorded.method == "POST"
    assert recorded.path == "/v1/logs/exports"
    assert recorded.headers["x-portkey-api-key"] == DEFAULT_API_KEY
    assert recorded.headers["x-portkey-runtime"] == "CPython"
    assert recorded.json == {"filters": {}, "requested_data": ["id"], "description": "d"}


def test_unknown_route_is_404(double: PortkeyDouble) -> None:
    api = Api(double)
    assert_envelope(api.call("GET", "/logs/exports/x/nothing"), 404, "AB02")
    assert_envelope(api.call("DELETE", "/logs/exports"), 404, "AB02")
    no_prefix = requests.get(double.base_url.removesuffix("/v1") + "/logs/exports", timeout=10)
    assert no_prefix.status_code == 404


# --------------------------------------------------------------------------- storage


def test_storage_never_needs_the_key_and_records_when_it_gets_one(double: PortkeyDouble) -> None:
    double.add_logs(logs_at(1))
    api = Api(double)
    export_id = api.export_id()
    assert api.run(export_id) == "success"
    url = api.signed_url(export_id)
    assert requests.get(url, timeout=10).status_code == 200
    assert double.storage_saw_api_key is False
    leaked = requests.get(url, headers={"x-portkey-api-key": DEFAULT_API_KEY}, timeout=10)
    assert leaked.status_code == 200  # S3 ignores unknown headers; the double notices
    assert double.storage_saw_api_key is True
    assert len(double.storage_requests) == 2


def test_storage_rejects_authorization_header_and_bad_signature(double: PortkeyDouble) -> None:
    api = Api(double)
    export_id = api.export_id()
    assert api.run(export_id) == "success"
    url = api.signed_url(export_id)
    both = requests.get(url, headers={"Authorization": "Bearer x"}, timeout=10)
    assert both.status_code == 400
    assert "<Code>InvalidArgument</Code>" in both.text
    forged = requests.get(url[:-4] + "beef", timeout=10)
    assert forged.status_code == 403
    assert "<Code>SignatureDoesNotMatch</Code>" in forged.text
    other_file = url.replace(export_id, "00000000-0000-0000-0000-000000000000")
    assert requests.get(other_file, timeout=10).status_code == 403


def test_signed_url_expires_after_ttl() -> None:
    with PortkeyDouble(url_ttl=0.3) as double:
        api = Api(double)
        export_id = api.export_id()
        assert api.run(export_id) == "success"
        url = api.signed_url(export_id)
        assert requests.get(url, timeout=10).status_code == 200
        time.sleep(0.35)
        expired = requests.get(url, timeout=10)
        assert expired.status_code == 403
        assert expired.headers["Content-Type"] == "application/xml"
        assert "<Code>AccessDenied</Code><Message>Request has expired</Message>" in expired.text
        fresh = api.signed_url(export_id)  # a new download call issues a new URL
        assert requests.get(fresh, timeout=10).status_code == 200


# --------------------------------------------------------------------------- single log


def test_get_log_returns_log_object_with_metrics(double: PortkeyDouble) -> None:
    log = make_log(
        datetime(2024, 1, 15, 10, 30, tzinfo=UTC),
        id="log-42", trace_id="trace-123", span_id="span-456", parent_span_id="span-001",
        span_name="llm", cache_status="SEMANTIC HIT", retry_success_count=2,
        last_used_option_index=1, virtual_key="vk-123", mode="fallback",
    )  # fmt: skip
    double.add_logs([log])
    response = Api(double).call("GET", "/logs/log-42")
    assert response.status_code == 200
    body = response.json()
    assert body["_id"] == "log-42"
    assert body["created_at"] == "2024-01-15T10:30:00.000Z"
    assert body["request"]["url"] == log["request_url"]
    assert body["request"]["method"] == "POST"
    assert body["request"]["portkeyHeaders"]["x-portkey-trace-id"] == "trace-123"
    assert body["request"]["portkeyHeaders"]["x-portkey-span-id"] == "span-456"
    assert json.loads(body["request"]["portkeyHeaders"]["x-portkey-metadata"]) == log["metadata"]
    assert body["response"] == {
        "status": 200,
        "responseTime": 1234,
        "lastUsedOptionJsonPath": "$.config.options[1]",
        "body": log["response"],
    }
    metrics = body["metrics"]
    assert metrics["span_id"] == "span-456"
    assert metrics["parent_span_id"] == "span-001"
    assert metrics["span_name"] == "llm"
    assert metrics["cache_status"] == "SEMANTIC HIT"
    assert metrics["retry_success_count"] == 2
    assert metrics["last_used_option_index"] == 1
    assert metrics["virtual_key"] == "vk-123"
    assert metrics["cost"] == 0.0105
    assert metrics["ai_org"] == "openai"
    assert metrics["ai_model"] == "gpt-4o"
    assert metrics["created_at"] == "2024-01-15T10:30:00.000"
    assert metrics["workspace_slug"] == DEFAULT_WORKSPACE
    assert metrics["metadata.key"] == ["_user"]
    assert metrics["metadata.value"] == ["user-123"]
    assert body["organisation_id"] == metrics["organisation_id"]


def test_get_log_unknown_is_404_and_do_not_track_has_no_bodies(double: PortkeyDouble) -> None:
    double.add_logs(logs_at(1, id="quiet", request=None, response=None))
    api = Api(double)
    assert_envelope(api.call("GET", "/logs/missing"), 404, "AB08")
    body = api.call("GET", "/logs/quiet").json()
    assert "body" not in body["request"]
    assert "body" not in body["response"]


def test_separate_gateway_serves_single_logs_only() -> None:
    with PortkeyDouble(separate_gateway=True) as double:
        double.add_logs(logs_at(1, id="log-1"))
        assert double.gateway_base_url != double.base_url
        headers = {"x-portkey-api-key": DEFAULT_API_KEY}
        on_gateway = requests.get(f"{double.gateway_base_url}/logs/log-1", headers=headers)
        assert on_gateway.status_code == 200
        assert requests.get(f"{double.base_url}/logs/log-1", headers=headers).status_code == 404
        gateway_exports = requests.get(f"{double.gateway_base_url}/logs/exports", headers=headers)
        assert gateway_exports.status_code == 404
        served = {r.server for r in double.requests_to("GET /logs/{id}")}
        assert served == {"gateway"}


# --------------------------------------------------------------------------- analytics


def analytics(api: Api, path: str, **params: Any) -> dict[str, Any]:
    window = {"time_of_generation_min": "2026-07-25T10:00:00Z",
              "time_of_generation_max": "2026-07-25T13:00:00+00:00"}  # fmt: skip
    response = api.call("GET", f"/analytics/{path}", params={**window, **params})
    assert response.status_code == 200, response.text
    return response.json()


def test_analytics_graphs_bucket_the_log_store(double: PortkeyDouble) -> None:
    double.add_logs(
        logs_at(-61, 0, 30, cost=2.0, total_units=10, response_time=100)  # 09:59, 11:00, 11:30
        + logs_at(
            60,
            cost=1.0,
            total_units=20,
            response_time=300,
            is_success=False,
            response_status_code=500,
        )  # 12:00
        + logs_at(120, cost=9.0)  # 13:00: outside [10:00, 13:00)
        + logs_at(1, workspace_slug="ws-other", cost=50.0)
    )
    api = Api(double)
    graph = analytics(api, "graphs/requests")
    assert graph["object"] == "analytics-graph"
    assert graph["summary"] == {"total": 3}
    assert graph["data_points"] == [
        {"timestamp": "2026-07-25T10:00:00Z", "total": 0},
        {"timestamp": "2026-07-25T11:00:00Z", "total": 2},
        {"timestamp": "2026-07-25T12:00:00Z", "total": 1},
    ]
    cost = analytics(api, "graphs/cost")
    assert cost["summary"] == {"total": 5.0, "avg": 5.0 / 3}
    assert cost["data_points"][1] == {"timestamp": "2026-07-25T11:00:00Z", "total": 4.0, "avg": 2.0}
    tokens = analytics(api, "graphs/tokens")
    assert tokens["summary"] == {"total": 40, "avg": 40 / 3}
    latency = analytics(api, "graphs/latency")
    assert latency["summary"]["avg"] == pytest.approx(500 / 3)
    assert latency["summary"]["p50"] == 100 and latency["summary"]["p99"] == 300
    assert analytics(api, "graphs/errors")["summary"] == {"total": 1}
    other = analytics(api, "graphs/requests", workspace_slug="ws-other")
    assert other["summary"] == {"total": 1}
    assert analytics(api, "graphs/requests", status_code="500")["summary"] == {"total": 1}


def test_analytics_cache_summary(double: PortkeyDouble) -> None:
    double.add_logs(
        logs_at(60, 61, cache_status="HIT", response_time=100)
        + logs_at(62, cache_status="SEMANTIC HIT", response_time=100)
        + logs_at(63, cache_status="MISS", response_time=400)
    )
    body = analytics(Api(double), "summary/cache")
    assert body == {
        "summary": {"hits": 3, "avg_latency": 100, "total_requests": 4, "cache_speedup": 75.0},
        "object": "analytics-summary",
    }


@pytest.mark.parametrize("missing", ["time_of_generation_min", "time_of_generation_max"])
def test_analytics_requires_both_time_params(double: PortkeyDouble, missing: str) -> None:
    params = {"time_of_generation_min": "2026-07-25T00:00:00Z",
              "time_of_generation_max": "2026-07-26T00:00:00Z"}  # fmt: skip
    del params[missing]
    response = Api(double).call("GET", "/analytics/graphs/requests", params=params)
    assert missing in assert_envelope(response, 400, "AB01")


def test_analytics_uses_day_buckets_for_long_windows(double: PortkeyDouble) -> None:
    double.add_logs(logs_at(0, 60 * 24 * 3))
    params = {"time_of_generation_min": "2026-07-24T00:00:00Z",
              "time_of_generation_max": "2026-07-31T00:00:00Z"}  # fmt: skip
    body = Api(double).call("GET", "/analytics/graphs/requests", params=params).json()
    assert len(body["data_points"]) == 7
    assert [p["total"] for p in body["data_points"]] == [0, 1, 0, 0, 1, 0, 0]


# --------------------------------------------------------------------------- faults


def test_rate_limited_with_and_without_retry_after(double: PortkeyDouble) -> None:
    api = Api(double)
    double.faults.queue(CREATE, Fault.rate_limited(retry_after=1))
    double.faults.queue(CREATE, Fault.rate_limited())
    first = api.create()
    assert_envelope(first, 429, "AB06")
    assert first.headers["Retry-After"] == "1"
    second = api.create()
    assert_envelope(second, 429, "AB06")
    assert "Retry-After" not in second.headers
    assert api.create().status_code == 200  # the queue is used up
    assert api.call("GET", "/logs/exports").json()["total"] == 1  # refused requests did nothing


def test_server_error_applies_only_to_its_route_and_count(double: PortkeyDouble) -> None:
    api = Api(double)
    export_id = api.export_id()
    double.faults.queue(RETRIEVE, Fault.server_error(), times=2)
    assert api.call("GET", "/logs/exports").status_code == 200  # another route: untouched
    assert_envelope(api.call("GET", f"/logs/exports/{export_id}"), 500, "AB04")
    assert_envelope(api.call("GET", f"/logs/exports/{export_id}"), 500, "AB04")
    assert api.call("GET", f"/logs/exports/{export_id}").status_code == 200
    assert [r.fault is not None for r in double.requests_to(RETRIEVE)] == [True, True, False]


def test_persistent_fault_until_cleared(double: PortkeyDouble) -> None:
    api = Api(double)
    double.faults.always("*", Fault.server_error())
    for _ in range(3):
        assert api.create().status_code == 500
    double.faults.clear()
    assert api.create().status_code == 200
    assert double.faults.pending == []


def test_dropped_connection_before_and_after_processing(double: PortkeyDouble) -> None:
    api = Api(double)
    double.faults.queue(CREATE, Fault.dropped_connection())
    with pytest.raises(requests.ConnectionError):
        api.create()
    assert api.call("GET", "/logs/exports").json()["total"] == 0
    double.faults.queue(CREATE, Fault.dropped_connection(after_processing=True))
    with pytest.raises(requests.ConnectionError):
        api.create()
    assert api.call("GET", "/logs/exports").json()["total"] == 1  # a draft was left behind


def test_slow_response(double: PortkeyDouble) -> None:
    api = Api(double)
    double.faults.queue("GET /logs/exports", Fault.slow(0.4))
    began = time.monotonic()
    assert api.call("GET", "/logs/exports").status_code == 200
    assert time.monotonic() - began >= 0.4
    with pytest.raises(requests.Timeout):
        double.faults.queue("GET /logs/exports", Fault.slow(1.0))
        requests.get(f"{double.base_url}/logs/exports", headers=api.headers, timeout=0.2)


def test_html_502_is_not_json(double: PortkeyDouble) -> None:
    double.faults.queue(CREATE, Fault.html_502())
    response = Api(double).create()
    assert response.status_code == 502
    assert response.headers["Content-Type"].startswith("text/html")
    with pytest.raises(ValueError):
        response.json()


def test_unknown_status_value(double: PortkeyDouble) -> None:
    api = Api(double)
    export_id = api.export_id()
    api.start(export_id)
    double.faults.queue(RETRIEVE, Fault.unknown_status("queued"))
    assert api.status(export_id) == "queued"
    assert api.status(export_id) == "success"  # the faulted poll still counted


def test_job_fails_n_times_then_succeeds_with_start_again(double: PortkeyDouble) -> None:
    double.add_logs(logs_at(1))
    api = Api(double)
    export_id = api.export_id()
    double.faults.queue(START, Fault.job_failed(), times=2)
    assert api.run(export_id) == "failed"
    assert_envelope(api.call("GET", f"/logs/exports/{export_id}/download"), 400, "AB01")
    assert api.run(export_id) == "failed"
    assert api.run(export_id) == "success"
    assert len(requests.get(api.signed_url(export_id), timeout=10).text.splitlines()) == 1


def test_job_stuck_for_n_polls_and_job_stopped(double: PortkeyDouble) -> None:
    api = Api(double)
    export_id = api.export_id()
    double.faults.queue(START, Fault.job_stuck(polls=5))
    api.start(export_id)
    assert [api.status(export_id) for _ in range(6)] == ["in_progress"] * 5 + ["success"]

    stopped = api.export_id()
    double.faults.queue(START, Fault.job_stopped())
    assert api.run(stopped) == "stopped"
    assert "stopped" in assert_envelope(api.start(stopped), 400, "AB01")


def test_expired_url_fault(double: PortkeyDouble) -> None:
    api = Api(double)
    export_id = api.export_id()
    assert api.run(export_id) == "success"
    double.faults.queue(DOWNLOAD, Fault.expired_url())
    expired = requests.get(api.signed_url(export_id), timeout=10)
    assert expired.status_code == 403
    assert "<Message>Request has expired</Message>" in expired.text
    assert requests.get(api.signed_url(export_id), timeout=10).status_code == 200


def ready_url(double: PortkeyDouble, count: int) -> str:
    double.add_logs(logs_at(*range(count)))
    api = Api(double)
    export_id = api.export_id()
    assert api.run(export_id) == "success"
    return api.signed_url(export_id)


def test_cut_body_breaks_the_connection_mid_line(double: PortkeyDouble) -> None:
    url = ready_url(double, 5)
    double.faults.queue(STORAGE_ROUTE, Fault.cut_body())
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(url, timeout=10)
    assert len(requests.get(url, timeout=10).text.splitlines()) == 5


def test_truncated_file_ends_mid_line_with_honest_length(double: PortkeyDouble) -> None:
    url = ready_url(double, 5)
    full = requests.get(url, timeout=10).content
    double.faults.queue(STORAGE_ROUTE, Fault.truncated_file())
    short = requests.get(url, timeout=10)
    assert short.status_code == 200
    assert full.startswith(short.content) and len(short.content) < len(full)
    assert not short.content.endswith(b"\n")
    *whole, partial = short.text.split("\n")
    assert all(json.loads(line) for line in whole)
    with pytest.raises(json.JSONDecodeError):
        json.loads(partial)


def test_missing_lines_and_bad_line(double: PortkeyDouble) -> None:
    url = ready_url(double, 5)
    double.faults.queue(STORAGE_ROUTE, Fault.missing_lines(keep=3))
    fewer = requests.get(url, timeout=10).text
    assert fewer.endswith("\n")
    assert [json.loads(line) for line in fewer.splitlines()] and len(fewer.splitlines()) == 3

    double.faults.queue(STORAGE_ROUTE, Fault.bad_line(index=2))
    lines = requests.get(url, timeout=10).text.splitlines()
    assert len(lines) == 5
    with pytest.raises(json.JSONDecodeError):
        json.loads(lines[2])
    assert json.loads(lines[1]) and json.loads(lines[3])


def test_fault_misuse_is_refused_at_once(double: PortkeyDouble) -> None:
    with pytest.raises(ValueError, match="unknown route"):
        double.faults.queue("POST /logs/export", Fault.server_error())
    with pytest.raises(ValueError, match="only applies"):
        double.faults.queue(RETRIEVE, Fault.job_failed())
    with pytest.raises(ValueError, match="only applies"):
        double.faults.queue("*", Fault.truncated_file())
    with pytest.raises(ValueError):
        double.faults.queue(CREATE, Fault.server_error(), times=0)


def test_wildcard_faults_do_not_touch_storage(double: PortkeyDouble) -> None:
    url = ready_url(double, 1)
    double.faults.always("*", Fault.server_error())
    assert requests.get(url, timeout=10).status_code == 200


# --------------------------------------------------------------------------- robustness


def test_concurrent_creates_are_all_recorded(double: PortkeyDouble) -> None:
    double.add_logs(logs_at(*range(20)))
    results: list[requests.Response] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(5):
            response = Api(double).create()
            with lock:
                results.append(response)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(r.status_code == 200 and r.json()["total"] == 20 for r in results)
    assert len({r.json()["id"] for r in results}) == 40
    assert Api(double).call("GET", "/logs/exports").json()["total"] == 40
    assert len(double.requests_to(CREATE)) == 40


def test_stop_closes_every_port() -> None:
    before = threading.active_count()
    double = PortkeyDouble(separate_gateway=True).start()
    urls = [double.base_url, double.gateway_base_url, double.storage_base_url]
    double.faults.queue(CREATE, Fault.slow(30))
    slow = threading.Thread(target=lambda: _swallow(Api(double).create))
    slow.start()
    time.sleep(0.1)
    began = time.monotonic()
    double.stop()
    assert time.monotonic() - began < 5  # a pending slow fault does not hold shutdown
    slow.join(timeout=5)
    for url in urls:
        with pytest.raises(requests.ConnectionError):
            requests.get(url, timeout=2)
    deadline = time.monotonic() + 3
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= before


def _swallow(call: Any) -> None:
    with contextlib.suppress(requests.RequestException):
        call()


def test_add_logs_rejects_bad_records(double: PortkeyDouble) -> None:
    with pytest.raises(ValueError, match="unknown log fields"):
        double.add_logs([make_log(T0, spanid="typo")])
    with pytest.raises(ValueError, match="aware"):
        double.add_logs([make_log(datetime(2026, 7, 25, 11, 0))])
    double.add_logs([make_log(T0, id="same")])
    with pytest.raises(ValueError, match="duplicated"):
        double.add_logs([make_log(T0, id="same")])
