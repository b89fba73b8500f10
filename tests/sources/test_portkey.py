"""The Portkey client against the Portkey test double (real HTTP on 127.0.0.1)."""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st
from portkey_double import ALL_SCOPES, DEFAULT_WORKSPACE, STORAGE_ROUTE, Fault, PortkeyDouble
from portkey_double import make_log as double_log

from ingest.convert.records import ENRICHMENT_FIELDS, EXPORT_FIELDS
from ingest.errors import (
    ConfigError,
    PortkeyAuthError,
    PortkeyError,
    PortkeyExportError,
    PortkeyLogNotFoundError,
    PortkeyUnavailableError,
)
from ingest.run.pull import sync_key
from ingest.sources.portkey.api import PortkeyApi, PortkeySettings
from ingest.sources.portkey.enrich import LogReader, enrichment
from ingest.sources.portkey.exports import ExportJobs, RecordCounter, WindowFile
from ingest.sources.windows import Window

T0 = datetime(2026, 7, 25, tzinfo=UTC)
DAY = Window(T0, T0 + timedelta(days=1))
KEY = "pk-test-SECRET-4f9a8b7c6d5e"
CREATE = "POST /logs/exports"
UPDATE = "PUT /logs/exports/{id}"
RETRIEVE = "GET /logs/exports/{id}"
START = "POST /logs/exports/{id}/start"
DOWNLOAD = "GET /logs/exports/{id}/download"
GET_LOG = "GET /logs/{id}"


class FakeTime:
    """Injected clock and sleep: waits are recorded and take no real time."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds


@pytest.fixture
def double() -> Iterator[PortkeyDouble]:
    with PortkeyDouble(keys={KEY: ALL_SCOPES}) as d:
        yield d
        assert d.errors == []


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


class PortkeyClient:
    """Export jobs and single logs over one API connection, as a run uses them, plus
    `fetch_window` (a whole window in one file), which only these tests need."""

    def __init__(
        self,
        settings: PortkeySettings,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        api = PortkeyApi(settings, sleep=sleep, clock=clock)
        self.settings, self.stats = settings, api.stats
        self.exports, self.logs = ExportJobs(api), LogReader(api)
        self.count, self.plan = self.exports.count, self.exports.plan
        self.windows = self.exports.windows
        self.get_log, self.get_logs = self.logs.get_log, self.logs.get_logs

    def fetch_window(self, window: Window, dest_dir: Path) -> WindowFile:
        """The whole window in ONE complete file (the parts of a split window concatenated
        in time order, then deleted)."""
        parts: list[WindowFile] = []
        whole = False
        try:
            parts.extend(self.windows(window, dest_dir))
            whole = len(parts) == 1
            if whole:
                return parts[0]
            path = dest_dir / window.file_name()
            with path.open("wb") as out:
                for part in parts:
                    data = part.path.read_bytes()
                    out.write(data)
                    if data and not data.endswith(b"\n"):  # never glue two records
                        out.write(b"\n")
        finally:
            if not whole:  # concatenated now, or useless after an error
                for part in parts:
                    part.path.unlink(missing_ok=True)
        return WindowFile(window, path, sum(part.total for part in parts))


def client_for(
    double: PortkeyDouble, fake: FakeTime | None = None, key: str = KEY, **settings: Any
) -> PortkeyClient:
    values: dict[str, Any] = {
        "api_key": key,
        "base_url": double.base_url,
        "retry_deadline_s": 60.0,
        "poll_interval_s": 0.01,
        "request_timeout_s": 5.0,
        **settings,
    }
    fake = fake or FakeTime()
    return PortkeyClient(PortkeySettings(**values), sleep=fake.sleep, clock=fake.clock)


def logs_at(*minutes: float, **fields: Any) -> list[dict[str, Any]]:
    return [double_log(T0 + timedelta(minutes=m), **fields) for m in minutes]


def ids_in(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text().splitlines() if line.strip()]


def in_time_order(logs: list[dict[str, Any]]) -> list[str]:
    return [g["id"] for g in sorted(logs, key=lambda g: (g["created_at"], g["id"]))]


def started_ids(double: PortkeyDouble) -> list[str]:
    """The export ids of every start request, in order."""
    return [r.path.split("/")[-2] for r in double.requests_to(START)]


def assert_complete(file: WindowFile) -> None:
    """What the lead relies on: the file holds exactly `total` records."""
    assert len(ids_in(file.path)) == file.total


# --------------------------------------------------------------------------- lifecycle


def test_fetch_window_runs_the_whole_export_lifecycle(
    double: PortkeyDouble, tmp_path: Path
) -> None:
    logs = logs_at(30, 10, 20, 600)
    double.add_logs(logs)
    client = client_for(double)

    file = client.fetch_window(DAY, tmp_path)

    assert file.window == DAY
    assert file.total == 4
    assert ids_in(file.path) == in_time_order(logs)
    assert [p.name for p in tmp_path.iterdir()] == [file.path.name]  # no .part left behind
    routes = [r.route for r in double.requests if r.server == "api"]
    assert routes == [CREATE, START, RETRIEVE, RETRIEVE, DOWNLOAD]
    assert len(double.storage_requests) == 1
    assert client.stats.jobs_started == 1
    assert client.stats.logs_fetched == 4


def test_request_bodies_carry_all_fields_filters_description_and_workspace(
    double: PortkeyDouble, tmp_path: Path
) -> None:
    double.add_logs(logs_at(5) + logs_at(6, workspace_slug="ws-other"))
    client = client_for(double, workspace=DEFAULT_WORKSPACE)

    file = client.fetch_window(DAY, tmp_path)

    assert file.total == 1  # the other workspace's log is not exported
    (create,) = double.requests_to(CREATE)
    assert create.headers["x-portkey-api-key"] == KEY
    assert create.json == {
        "filters": {
            "time_of_generation_min": "2026-07-25T00:00:00Z",
            "time_of_generation_max": "2026-07-26T00:00:00Z",
        },
        "requested_data": list(EXPORT_FIELDS),
        "workspace_id": DEFAULT_WORKSPACE,
        "description": "portkey-phoenix-ingest 2026-07-25T00:00:00Z..2026-07-26T00:00:00Z",
    }
    assert len(create.json["requested_data"]) == 20


def test_without_workspace_no_workspace_id_is_sent(double: PortkeyDouble) -> None:
    double.add_logs(logs_at(5) + logs_at(6, workspace_slug="ws-other"))
    export_id, total = client_for(double).count(DAY)
    assert total == 2
    assert "workspace_id" not in double.requests_to(CREATE)[0].json
    assert double.export_item(export_id)["status"] == "draft"


def test_sub_second_boundaries_are_sent_with_milliseconds(double: PortkeyDouble) -> None:
    window = Window(T0 + timedelta(milliseconds=1500), T0 + timedelta(seconds=2, microseconds=7))
    client_for(double).count(window)
    filters = double.requests_to(CREATE)[0].json["filters"]
    assert filters == {
        "time_of_generation_min": "2026-07-25T00:00:01.500Z",
        "time_of_generation_max": "2026-07-25T00:00:02.000007Z",
    }


# --------------------------------------------------------------------------- splitting


@pytest.fixture
def burst() -> list[dict[str, Any]]:
    """120 logs in one busy hour, plus a few quiet ones: more than 2 jobs' worth at 50."""
    busy = [double_log(T0 + timedelta(hours=9, seconds=29 * i)) for i in range(120)]
    return busy + logs_at(5, 1000, 1439)


def test_a_burst_is_split_before_any_job_starts_and_drafts_are_reused(
    burst: list[dict[str, Any]], tmp_path: Path
) -> None:
    with PortkeyDouble(keys={KEY: ALL_SCOPES}, export_cap=50) as double:
        double.add_logs(burst)
        client = client_for(double, export_limit=50)

        files = list(client.windows(DAY, tmp_path))

        assert [i for f in files for i in ids_in(f.path)] == in_time_order(burst)
        for file in files:
            assert_complete(file)
            assert file.total <= 50
        assert files[0].window.since == DAY.since and files[-1].window.until == DAY.until
        for before, after in itertools.pairwise(files):
            assert before.window.until == after.window.since  # contiguous, in time order
        started = set(started_ids(double))
        assert all(double.export_item(i)["total_records"] <= 50 for i in started)
        posts, puts = double.requests_to(CREATE), double.requests_to(UPDATE)
        assert client.stats.splits >= 2 and len(puts) >= client.stats.splits
        listing = requests.get(
            double.base_url + "/logs/exports", headers={"x-portkey-api-key": KEY}, timeout=5
        ).json()["data"]
        drafts = [item for item in listing if item["status"] == "draft"]
        assert len(drafts) <= 1  # at most one spare draft is left behind
        assert len(posts) == len(listing) <= len(started) + 1
        assert double.errors == []


def test_plan_splits_and_counts_without_starting_jobs(burst: list[dict[str, Any]]) -> None:
    with PortkeyDouble(keys={KEY: ALL_SCOPES}) as double:
        double.add_logs(burst)
        plan = client_for(double, export_limit=50).plan(DAY)

        assert sum(total for _, _, total in plan) == len(burst)
        assert all(total <= 50 for _, _, total in plan)
        assert plan[0][0].since == DAY.since and plan[-1][0].until == DAY.until
        assert all(a[0].until == b[0].since for a, b in itertools.pairwise(plan))
        assert double.requests_to(START) == []
        for window, export_id, total in plan:
            if total:  # a window with logs keeps its own draft, holding its filters
                filters = double.export_item(export_id)["filters"]
                assert filters == window.filters()


def test_fetch_window_concatenates_a_split_window_into_one_file(
    burst: list[dict[str, Any]], tmp_path: Path
) -> None:
    with PortkeyDouble(keys={KEY: ALL_SCOPES}, export_cap=50) as double:
        double.add_logs(burst)
        file = client_for(double, export_limit=50).fetch_window(DAY, tmp_path)

    assert file.window == DAY
    assert file.total == len(burst)
    assert ids_in(file.path) == in_time_order(burst)
    assert [p.name for p in tmp_path.iterdir()] == [file.path.name]  # parts removed


def test_logs_on_split_points_are_exported_exactly_once(
    double: PortkeyDouble, tmp_path: Path
) -> None:
    on_edges = logs_at(0, 6 * 60, 12 * 60, 18 * 60)  # since, and the bisection points
    double.add_logs(on_edges + logs_at(24 * 60))  # `until` itself is outside [since, until)
    file = client_for(double, export_limit=2).fetch_window(DAY, tmp_path)
    assert ids_in(file.path) == in_time_order(on_edges)


def test_a_window_under_one_second_that_exceeds_the_limit_is_an_error(
    double: PortkeyDouble, tmp_path: Path
) -> None:
    double.add_logs(logs_at(60, 60, 60))
    with pytest.raises(PortkeyExportError, match="cannot be split further") as caught:
        client_for(double, export_limit=2).fetch_window(DAY, tmp_path)
    assert "3 logs, more than the export limit of 2" in str(caught.value)
    assert "shorter than 1 second" in str(caught.value)


def test_a_short_download_is_split_and_fetched_again_never_returned(
    double: PortkeyDouble, tmp_path: Path
) -> None:
    logs = logs_at(10, 20, 30, 800, 900, 1000)
    double.add_logs(logs)
    double.faults.queue(STORAGE_ROUTE, Fault.missing_lines(keep=2))
    client = client_for(double)

    files = list(client.windows(DAY, tmp_path))

    assert len(files) == 2  # the day was split into halves after the short file
    for file in files:
        assert_complete(file)
    assert [i for f in files for i in ids_in(f.path)] == in_time_order(logs)
    assert len(double.requests_to(START)) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f.path.name for f in files)


def test_a_portkey_cap_below_the_configured_limit_never_yields_a_short_window(
    tmp_path: Path,
) -> None:
    with PortkeyDouble(keys={KEY: ALL_SCOPES}, export_cap=50) as double:
        logs = [double_log(T0 + timedelta(minutes=i)) for i in range(80)]
        double.add_logs(logs)
        file = client_for(double, export_limit=100).fetch_window(DAY, tmp_path)
    assert file.total == 80
    assert ids_in(file.path) == in_time_order(logs)


# --------------------------------------------------------------------------- download faults


def test_an_expired_signed_url_is_requested_again(double: PortkeyDouble, tmp_path: Path) -> None:
    double.add_logs(logs_at(1, 2))
    double.faults.queue(DOWNLOAD, Fault.expired_url())
    fake = FakeTime()
    file = client_for(double, fake).fetch_window(DAY, tmp_path)
    assert file.total == 2
    assert len(double.requests_to(DOWNLOAD)) == 2
    assert len(double.storage_requests) == 2
    assert fake.sleeps.count(0.0) == 1  # asked for a new URL at once, no backoff


@pytest.mark.parametrize(
    "fault",
    [Fault.truncated_file(), Fault.cut_body(), Fault.dropped_connection(), Fault.server_error()],
    ids=["truncated-file", "cut-body", "dropped-connection", "storage-500"],
)
def test_a_broken_download_is_fetched_again(
    double: PortkeyDouble, tmp_path: Path, fault: Fault
) -> None:
    logs = logs_at(1, 2, 3, 4, 5)
    double.add_logs(logs)
    double.faults.queue(STORAGE_ROUTE, fault)
    client = client_for(double)

    file = client.fetch_window(DAY, tmp_path)

    assert ids_in(file.path) == in_time_order(logs)
    assert len(double.requests_to(CREATE)) == 1  # same export, no split
    assert len(double.requests_to(START)) == 1
    assert len(double.storage_requests) == 2
    assert client.stats.splits == 0


def test_a_download_that_never_completes_is_reported(double: PortkeyDouble, tmp_path: Path) -> None:
    double.add_logs(logs_at(1, 2, 3))
    double.faults.always(STORAGE_ROUTE, Fault.truncated_file())
    client = client_for(double, max_download_attempts=3)
    with pytest.raises(PortkeyExportError) as caught:
        client.fetch_window(DAY, tmp_path)
    export_id = started_ids(double)[0]
    message = str(caught.value)
    assert f"could not download export {export_id}" in message
    assert f"GET /logs/exports/{export_id}/download" in message
    assert "in 3 attempts" in message and "truncated" in message
    assert len(double.storage_requests) == 3
    assert list(tmp_path.iterdir()) == []  # nothing half-written is left


def test_a_line_that_is_not_json_is_left_for_the_pipeline_to_quarantine(
    double: PortkeyDouble, tmp_path: Path
) -> None:
    double.add_logs(logs_at(1, 2, 3))
    double.faults.queue(STORAGE_ROUTE, Fault.bad_line(1, '{"id": "cut-off'))
    file = client_for(double).fetch_window(DAY, tmp_path)
    lines = file.path.read_text().splitlines()
    assert file.total == len(lines) == 3
    assert lines[1] == '{"id": "cut-off'


def test_the_key_never_reaches_object_storage(double: PortkeyDouble, tmp_path: Path) -> None:
    double.add_logs(logs_at(1))
    double.faults.queue(DOWNLOAD, Fault.expired_url())
    client_for(double).fetch_window(DAY, tmp_path)
    assert double.storage_saw_api_key is False
    for request in double.storage_requests:
        assert "x-portkey-api-key" not in request.headers
        assert "authorization" not in request.headers
        assert KEY not in request.path


# --------------------------------------------------------------------------- API faults


def test_429_with_retry_after_waits_what_portkey_asked(double: PortkeyDouble) -> None:
    double.faults.queue(CREATE, Fault.rate_limited(retry_after=7))
    fake = FakeTime()
    client = client_for(double, fake)
    client.count(DAY)
    assert fake.sleeps == [7.0]
    assert len(double.requests_to(CREATE)) == 2
    assert client.stats.retries == 1


def test_429_without_retry_after_backs_off_with_jitter(double: PortkeyDouble) -> None:
    double.faults.queue(CREATE, Fault.rate_limited(), times=4)
    fake = FakeTime()
    client_for(double, fake).count(DAY)
    assert len(fake.sleeps) == 4
    assert all(0 <= s <= 30 for s in fake.sleeps)
    assert len(double.requests_to(CREATE)) == 5


@pytest.mark.parametrize(
    ("route", "fault"),
    [
        (CREATE, Fault.server_error()),
        (CREATE, Fault.html_502()),
        (CREATE, Fault.dropped_connection()),
        (CREATE, Fault.cut_body()),
        (RETRIEVE, Fault.server_error()),
        (START, Fault.dropped_connection(after_processing=True)),  # the retry finds it running
        (DOWNLOAD, Fault.rate_limited(retry_after=1)),
    ],
    ids=["500", "html-502", "dropped", "cut-body", "poll-500", "start-dropped-after", "dl-429"],
)
def test_transient_api_faults_are_retried(
    double: PortkeyDouble, tmp_path: Path, route: str, fault: Fault
) -> None:
    logs = logs_at(1, 2)
    double.add_logs(logs)
    double.faults.queue(route, fault)
    client = client_for(double)
    file = client.fetch_window(DAY, tmp_path)
    assert ids_in(file.path) == in_time_order(logs)
    assert client.stats.retries == 1
    assert len(double.requests_to(route)) >= 2


def test_a_request_that_times_out_is_retried(double: PortkeyDouble, tmp_path: Path) -> None:
    double.add_logs(logs_at(1))
    double.faults.queue(CREATE, Fault.slow(1.0))
    client = client_for(double, request_timeout_s=0.3)
    assert client.fetch_window(DAY, tmp_path).total == 1
    assert client.stats.retries == 1


def test_deadline_exhaustion_names_the_endpoint_status_and_error_code(
    double: PortkeyDouble,
) -> None:
    double.faults.always(CREATE, Fault.rate_limited())
    fake = FakeTime()
    with pytest.raises(PortkeyUnavailableError) as caught:
        client_for(double, fake, retry_deadline_s=30).count(DAY)
    message = str(caught.value)
    assert "did not answer POST /logs/exports within 30 s" in message
    assert "HTTP 429, errorCode AB06: Rate limit exceeded" in message
    assert caught.value.code == "AB06" and caught.value.status == 429
    assert sum(fake.sleeps) == pytest.approx(30)  # backoff never sleeps past the deadline


def test_deadline_exhaustion_while_polling_names_the_export(
    double: PortkeyDouble, tmp_path: Path
) -> None:
    double.add_logs(logs_at(1))
    double.faults.always(RETRIEVE, Fault.server_error())
    with pytest.raises(PortkeyUnavailableError) as caught:
        client_for(double, retry_deadline_s=10).fetch_window(DAY, tmp_path)
    (export_id,) = started_ids(double)
    assert f"GET /logs/exports/{export_id} for export {export_id}" in str(caught.value)
    assert "HTTP 500, errorCode AB04" in str(caught.value)


def test_a_persistent_non_json_502_is_reported_not_crashed(double: PortkeyDouble) -> None:
    double.faults.always(CREATE, Fault.html_502())
    with pytest.raises(PortkeyUnavailableError) as caught:
        client_for(double, retry_deadline_s=5).count(DAY)
    assert "HTTP 502 (not JSON: '<html>" in str(caught.value)
    assert "POST /logs/exports" in str(caught.value)


def test_a_retry_after_beyond_the_deadline_gives_up_without_waiting(double: PortkeyDouble) -> None:
    double.faults.always(CREATE, Fault.rate_limited(retry_after=600))
    fake = FakeTime()
    with pytest.raises(PortkeyUnavailableError, match="Retry-After 600 s"):
        client_for(double, fake, retry_deadline_s=60).count(DAY)
    assert fake.sleeps == []


@pytest.fixture
def not_json_server() -> Iterator[str]:
    """A server that answers 200 with an HTML page to everything (a misrouted proxy)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<html><body>Welcome to nginx!</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_PUT = do_GET

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_a_200_that_is_not_json_is_an_error_naming_the_endpoint(not_json_server: str) -> None:
    settings = PortkeySettings(api_key=KEY, base_url=not_json_server)
    client = PortkeyClient(settings, sleep=FakeTime().sleep)
    with pytest.raises(PortkeyExportError) as caught:
        client.count(DAY)
    assert str(caught.value).startswith(
        "Portkey answered POST /logs/exports with something that is not a JSON object "
        "(HTTP 200 (not JSON: '<html><body>Welcome to nginx!</body></html>'))."
    )
    with pytest.raises(PortkeyError, match=r"GET /logs/abc .*not a JSON object"):
        client.get_log("abc")


# --------------------------------------------------------------------------- job outcomes


def test_a_failed_job_is_started_again_then_succeeds(double: PortkeyDouble, tmp_path: Path) -> None:
    double.add_logs(logs_at(1, 2))
    double.faults.queue(START, Fault.job_failed(), times=2)
    client = client_for(double)
    assert client.fetch_window(DAY, tmp_path).total == 2
    assert len(double.requests_to(START)) == 3
    assert len(double.requests_to(CREATE)) == 1  # "Start Again" on the same export
    assert client.stats.job_restarts == 2


def test_a_job_failing_more_than_max_restarts_is_reported(
    double: PortkeyDouble, tmp_path: Path
) -> None:
    double.add_logs(logs_at(1))
    double.faults.queue(START, Fault.job_failed(), times=4)
    with pytest.raises(PortkeyExportError) as caught:
        client_for(double, max_job_restarts=3).fetch_window(DAY, tmp_path)
    export_id = started_ids(double)[0]
    message = str(caught.value)
    assert f"export {export_id} for window {DAY} ended failed after 3 restart(s)" in message
    assert f"POST /logs/exports/{export_id}/start" in message
    assert len(double.requests_to(START)) == 4
    assert list(tmp_path.iterdir()) == []


def test_a_stopped_job_is_replaced_by_a_fresh_export(double: PortkeyDouble, tmp_path: Path) -> None:
    logs = logs_at(1, 2, 3)
    double.add_logs(logs)
    double.faults.queue(START, Fault.job_stopped())
    client = client_for(double)
    file = client.fetch_window(DAY, tmp_path)
    assert ids_in(file.path) == in_time_order(logs)
    starts = started_ids(double)
    assert len(starts) == 2 and starts[0] != starts[1]  # a stopped export cannot restart
    assert double.export_item(starts[0])["status"] == "stopped"


def test_a_slow_job_is_polled_until_it_succeeds(double: PortkeyDouble, tmp_path: Path) -> None:
    double.add_logs(logs_at(1))
    double.faults.queue(START, Fault.job_stuck(polls=4))
    fake = FakeTime()
    file = client_for(double, fake, poll_interval_s=5).fetch_window(DAY, tmp_path)
    assert file.total == 1
    assert len(double.requests_to(RETRIEVE)) == 5
    assert fake.sleeps == [5, 5, 5, 5]


def test_a_job_stuck_past_the_job_timeout_is_reported(
    double: PortkeyDouble, tmp_path: Path
) -> None:
    double.add_logs(logs_at(1))
    double.faults.queue(START, Fault.job_stuck(polls=10_000))
    client = client_for(double, poll_interval_s=5, job_timeout_s=30)
    with pytest.raises(PortkeyExportError, match=r"is still in_progress after 30 s") as caught:
        client.fetch_window(DAY, tmp_path)
    assert "job_timeout_s=30" in str(caught.value)
    assert len(double.requests_to(RETRIEVE)) == 7


def test_an_unknown_status_value_is_an_error_naming_it(
    double: PortkeyDouble, tmp_path: Path
) -> None:
    double.add_logs(logs_at(1))
    double.faults.queue(RETRIEVE, Fault.unknown_status("queued"))
    with pytest.raises(PortkeyExportError) as caught:
        client_for(double).fetch_window(DAY, tmp_path)
    export_id = started_ids(double)[0]
    assert str(caught.value).startswith(
        f"Portkey reported status 'queued' for export {export_id} "
        f"(GET /logs/exports/{export_id}); known values are draft, in_progress, success, "
        "failed, stopped."
    )


def test_an_empty_window_starts_no_job_and_its_draft_is_reused(
    double: PortkeyDouble, tmp_path: Path
) -> None:
    double.add_logs(logs_at(24 * 60 + 5))  # the next day
    client = client_for(double)
    empty = client.fetch_window(DAY, tmp_path)
    assert (empty.total, empty.path.read_bytes()) == (0, b"")
    assert double.requests_to(START) == []
    nxt = client.fetch_window(Window(DAY.until, DAY.until + timedelta(days=1)), tmp_path)
    assert nxt.total == 1
    assert len(double.requests_to(CREATE)) == 1 and len(double.requests_to(UPDATE)) == 1


def test_a_draft_that_can_no_longer_be_reused_is_replaced(double: PortkeyDouble) -> None:
    double.add_logs(logs_at(1, 2))
    client = client_for(double)
    taken, _ = client.count(DAY)
    started = requests.post(
        f"{double.base_url}/logs/exports/{taken}/start",
        timeout=5,
        headers={"x-portkey-api-key": KEY},
    )
    assert started.status_code == 200  # someone else started it meanwhile
    export_id, total = client.count(Window(T0, T0 + timedelta(hours=1)), draft_id=taken)
    assert (export_id != taken, total) == (True, 2)
    assert [r.route for r in double.requests][-2:] == [UPDATE, CREATE]


def test_a_failed_split_leaves_no_part_files(double: PortkeyDouble, tmp_path: Path) -> None:
    double.add_logs(logs_at(1, 2, 3, 900))
    double.faults.queue(START, Fault.slow(0))  # the first half's job runs normally,
    double.faults.queue(START, Fault.job_failed())  # the second half's fails
    client = client_for(double, export_limit=3, max_job_restarts=0)
    with pytest.raises(PortkeyExportError, match="ended failed"):
        client.fetch_window(DAY, tmp_path)
    assert client.stats.downloads == 1  # the first half was fetched, then thrown away
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- auth


def test_401_stops_at_once_and_names_the_key_and_scope(double: PortkeyDouble) -> None:
    client = client_for(double, key="pk-wrong-key")
    with pytest.raises(PortkeyAuthError) as caught:
        client.count(DAY)
    assert str(caught.value) == (
        "Portkey rejected PORTKEY_API_KEY on POST /logs/exports (HTTP 401, errorCode AB05: "
        "Unauthorized access: invalid or missing x-portkey-api-key), sent as x-portkey-api-key. "
        "Check that the key is valid for this Portkey (PORTKEY_BASE_URL) and has the "
        "`logs.export` scope (a Workspace or Admin API key; log exports also need Portkey's "
        "Enterprise plan); a deployment that reads the other header needs PORTKEY_AUTH set to "
        "bearer (`doctor` tries both)."
    )
    assert len(double.requests) == 1  # not retried


def test_403_on_exports_says_the_key_needs_logs_export() -> None:
    with PortkeyDouble(keys={KEY: {"logs.view"}}) as double:
        with pytest.raises(PortkeyAuthError) as caught:
            client_for(double).count(DAY)
        assert len(double.requests) == 1
    assert str(caught.value) == (
        "Portkey refused POST /logs/exports (HTTP 403, errorCode AB03: You do not have enough "
        "permissions to execute this request): PORTKEY_API_KEY needs the `logs.export` scope "
        "(a Workspace or Admin API key; log exports also need Portkey's Enterprise plan)."
    )


def test_403_on_single_logs_says_the_key_needs_logs_view_or_read() -> None:
    with (
        PortkeyDouble(keys={KEY: {"logs.export"}}) as double,
        pytest.raises(PortkeyAuthError) as caught,
    ):
        client_for(double).get_log("some-log")
    assert str(caught.value) == (
        "Portkey refused GET /logs/some-log (HTTP 403, errorCode AB03: You do not have enough "
        "permissions to execute this request): PORTKEY_API_KEY needs the `logs.view` or "
        "`logs.read` scope to read single logs (enrichment)."
    )


def test_the_key_and_signatures_never_appear_in_errors_or_logs(
    double: PortkeyDouble, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    double.add_logs(logs_at(1, 2, 3))
    errors: list[str] = []

    def expect_error(call: Any) -> None:
        try:
            call()
        except PortkeyError as exc:
            errors.append(f"{exc!s} {exc!r}")
        else:
            raise AssertionError("an error was expected")

    double.faults.queue(DOWNLOAD, Fault.expired_url())
    double.faults.queue(STORAGE_ROUTE, Fault.truncated_file())
    double.faults.queue(CREATE, Fault.rate_limited(retry_after=1))
    client = client_for(double)
    client.fetch_window(DAY, tmp_path / "ok")
    double.faults.always(STORAGE_ROUTE, Fault.cut_body())
    expect_error(lambda: client_for(double, max_download_attempts=2).fetch_window(DAY, tmp_path))
    double.faults.clear()
    double.faults.always(CREATE, Fault.error(500, "AB04", f"bad key {KEY}"))
    expect_error(lambda: client_for(double, retry_deadline_s=3).count(DAY))
    double.faults.clear()
    double.faults.queue(CREATE, Fault.error(400, "AB01", f"echo {KEY}"))
    expect_error(lambda: client.count(DAY))
    expect_error(lambda: client.get_log("missing"))
    double.faults.queue(RETRIEVE, Fault.unknown_status(KEY))
    expect_error(lambda: client.fetch_window(DAY, tmp_path / "x"))
    expect_error(lambda: client_for(double, key="pk-" + KEY[::-1]).count(DAY))

    signatures = [
        parse_qs(urlsplit(r.path).query)["X-Amz-Signature"][0] for r in double.storage_requests
    ]
    assert len(signatures) >= 4
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("ingest"))
    assert "downloading export" in ours  # the download is logged, by path only
    for text in [*errors, caplog.text, ours, repr(client.settings)]:
        assert KEY not in text
        assert KEY[::-1] not in text
    for signature in signatures:
        assert signature not in ours
        assert all(signature not in e for e in errors)


# --------------------------------------------------------------------------- single logs


def test_get_log_returns_the_log_object_and_its_enrichment(double: PortkeyDouble) -> None:
    (log,) = logs_at(
        1,
        span_id="span-1",
        span_name="agent",
        cache_status="HIT",
        retry_success_count=2,
        last_used_option_index=1,
    )
    double.add_logs([log])
    obj = client_for(double).get_log(log["id"])
    assert obj["_id"] == log["id"]
    assert obj["response"]["lastUsedOptionJsonPath"] == "$.config.options[1]"
    extra = enrichment(obj)
    assert extra == {
        "span_id": "span-1",
        "span_name": "agent",
        "cache_status": "HIT",
        "retry_success_count": 2,
        "last_used_option_index": 1,
        "workspace_slug": "ws-double-a1b2c3",  # what --project-from workspace routes by
    }
    assert set(extra) <= set(ENRICHMENT_FIELDS)


def test_get_log_unknown_id_is_log_not_found(double: PortkeyDouble) -> None:
    with pytest.raises(PortkeyLogNotFoundError) as caught:
        client_for(double).get_log("nope/../x")
    assert str(caught.value).startswith(
        "Portkey has no log 'nope/../x' (GET /logs/nope%2F..%2Fx: HTTP 404, errorCode AB08"
    )


def test_get_log_uses_the_gateway_url_for_self_hosted_data_planes() -> None:
    with PortkeyDouble(keys={KEY: ALL_SCOPES}, separate_gateway=True) as double:
        (log,) = logs_at(1)
        double.add_logs([log])
        client = client_for(double, gateway_url=double.gateway_base_url)
        assert client.get_log(log["id"])["_id"] == log["id"]
        assert [r.server for r in double.requests] == ["gateway"]


def test_get_logs_keeps_order_marks_missing_and_retries(double: PortkeyDouble) -> None:
    logs = logs_at(*range(12))
    double.add_logs(logs)
    double.faults.queue(GET_LOG, Fault.rate_limited(retry_after=0))
    wanted = [g["id"] for g in logs[:6]] + ["missing"] + [g["id"] for g in logs[6:]]
    got = list(client_for(double, enrich_concurrency=3).get_logs(wanted))
    assert [log_id for log_id, _ in got] == wanted
    assert [obj["_id"] if obj else None for _, obj in got] == [
        i if i != "missing" else None for i in wanted
    ]


def test_get_logs_bounds_concurrency_and_rate(double: PortkeyDouble) -> None:
    logs = logs_at(*range(6))
    double.add_logs(logs)
    ids = [g["id"] for g in logs]
    double.faults.always(GET_LOG, Fault.slow(0.2))
    settings = PortkeySettings(
        api_key=KEY, base_url=double.base_url, enrich_concurrency=2, enrich_rate_per_s=1000
    )
    started = time.monotonic()
    assert len(list(PortkeyClient(settings).get_logs(ids))) == 6
    assert time.monotonic() - started >= 0.55  # 6 slow calls, 2 at a time: 3 rounds of 0.2 s
    double.faults.clear()

    settings = PortkeySettings(
        api_key=KEY, base_url=double.base_url, enrich_concurrency=6, enrich_rate_per_s=20
    )
    started = time.monotonic()
    assert len(list(PortkeyClient(settings).get_logs(ids))) == 6
    assert time.monotonic() - started >= 0.24  # 6 starts at 20/s span 0.25 s


def test_get_logs_stops_on_auth_errors() -> None:
    with PortkeyDouble(keys={KEY: {"logs.export"}}) as double, pytest.raises(PortkeyAuthError):
        list(client_for(double).get_logs(["a", "b", "c"]))


# --------------------------------------------------------------------------- settings


def test_settings_from_options() -> None:
    settings = PortkeySettings.from_options({"portkey_api_key": KEY, "workspace": "ws-a"})
    assert settings.base_url == "https://api.portkey.ai/v1"
    assert settings.workspace == "ws-a" and settings.gateway_url is None
    assert KEY not in repr(settings)
    custom = PortkeySettings.from_options(
        {
            "portkey_api_key": KEY,
            "portkey_base_url": "https://pk.internal/v1/",
            "gateway_url": "https://gw.internal/v1",
        }
    )
    assert (custom.base_url, custom.gateway_url) == (
        "https://pk.internal/v1",
        "https://gw.internal/v1",
    )
    with pytest.raises(ConfigError, match="no Portkey API key: set PORTKEY_API_KEY"):
        PortkeySettings.from_options({})


def test_settings_reject_a_workspace_uuid_and_bad_urls() -> None:
    with pytest.raises(ConfigError, match="workspace slug"):
        PortkeySettings(api_key=KEY, workspace="3c90c3cc-0d44-4b50-8888-8dd25736052a")
    with pytest.raises(ConfigError, match="PORTKEY_BASE_URL must be an http"):
        PortkeySettings(api_key=KEY, base_url="api.portkey.ai/v1")


def test_windows_must_be_aware_and_ordered() -> None:
    with pytest.raises(ConfigError, match="timezone-aware"):
        Window(datetime(2026, 7, 25), datetime(2026, 7, 26))
    with pytest.raises(ConfigError, match="not before its end"):
        Window(T0, T0)
    left, right = DAY.halves()
    assert (left.until, right.since) == (T0 + timedelta(hours=12),) * 2


def test_a_portkey_that_knows_only_the_docs_field_names_is_asked_again_in_them(
    double: PortkeyDouble, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 23, item 1: the export docs spell five fields otherwise than the spec."""
    import portkey_double

    from ingest.convert.records import DOCS_NAMES, parse_record

    docs_fields = tuple(DOCS_NAMES.get(name, name) for name in EXPORT_FIELDS)
    monkeypatch.setattr(portkey_double, "EXPORT_FIELDS", docs_fields)
    monkeypatch.setattr(portkey_double, "LOG_FIELDS", portkey_double.LOG_FIELDS | set(docs_fields))
    logs = logs_at(5, 6)
    for log in logs:  # this Portkey stores and exports the docs' names
        log.update({alias: log.pop(name) for name, alias in DOCS_NAMES.items()})
    double.add_logs(logs)
    client = client_for(double)

    file = client.fetch_window(DAY, tmp_path)

    first, second = double.requests_to(CREATE)
    assert first.json["requested_data"] == list(EXPORT_FIELDS)
    assert second.json["requested_data"] == list(docs_fields)
    lines = [json.loads(line) for line in file.path.read_text().splitlines()]
    assert set(lines[0]) == set(docs_fields)
    records = [parse_record(line) for line in lines]
    assert [r.ai_org for r in records] == [log["ai_provider"] for log in logs]
    assert [r.status_code for r in records] == [log["status_code"] for log in logs]
    assert [r.total_units for r in records] == [log["total_tokens"] for log in logs]
    assert all(r.warnings == () for r in records)


# --------------------------------------------------------------------------- network hygiene


@pytest.mark.parametrize("export_id", ["../../x", "a/b?c#d"])
def test_an_export_id_from_portkey_stays_one_path_segment(
    double: PortkeyDouble, tmp_path: Path, export_id: str
) -> None:
    logs = logs_at(1, 2)
    double.add_logs(logs)
    double.faults.queue(CREATE, Fault.export_id(export_id))
    file = client_for(double).fetch_window(DAY, tmp_path)
    assert ids_in(file.path) == in_time_order(logs)
    quoted = {"../../x": "..%2F..%2Fx", "a/b?c#d": "a%2Fb%3Fc%23d"}[export_id]
    api = [r for r in double.requests if r.server == "api"]
    assert {r.path.split("?")[0] for r in api[1:]} == {
        f"/v1/logs/exports/{quoted}/start",
        f"/v1/logs/exports/{quoted}",
        f"/v1/logs/exports/{quoted}/download",
    }
    assert all(r.route is not None for r in double.requests)  # nothing reached another path


def test_an_export_id_of_dots_is_refused(double: PortkeyDouble, tmp_path: Path) -> None:
    double.add_logs(logs_at(1))
    double.faults.queue(CREATE, Fault.export_id(".."))
    with pytest.raises(PortkeyExportError) as caught:
        client_for(double).fetch_window(DAY, tmp_path)
    assert str(caught.value) == (
        "Portkey's answer to POST /logs/exports gave the export id '..', which cannot be used "
        "in a URL path. Nothing was started; report it to Portkey."
    )
    assert [r.route for r in double.requests] == [CREATE]


def test_a_plain_http_signed_url_on_another_host_is_refused(
    double: PortkeyDouble, tmp_path: Path
) -> None:
    double.add_logs(logs_at(1))
    port = urlsplit(double.storage_base_url).port
    url = f"http://localhost:{port}/exports/x.jsonl?X-Amz-Signature=s3cr3tsig"
    double.faults.queue(DOWNLOAD, Fault.signed_url(url))
    with pytest.raises(PortkeyExportError) as caught:
        client_for(double).fetch_window(DAY, tmp_path)
    assert str(caught.value) == (
        f"refused to download http://localhost:{port}/exports/x.jsonl: a plain http URL on "
        "another host than PORTKEY_BASE_URL (signed URLs are fetched over https or from "
        "PORTKEY_BASE_URL's host, and never from loopback, link-local or private addresses "
        "unless PORTKEY_BASE_URL is on one). Nothing of this window was committed."
    )
    assert double.storage_requests == []
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("host", "kind"),
    [("169.254.169.254", "link-local"), ("10.0.0.7", "private"), ("192.168.1.5", "private")],
)
def test_a_signed_url_on_an_internal_address_is_refused(
    double: PortkeyDouble, tmp_path: Path, host: str, kind: str
) -> None:
    double.add_logs(logs_at(1))
    double.faults.queue(DOWNLOAD, Fault.signed_url(f"https://{host}/latest/meta-data?sig=x"))
    with pytest.raises(PortkeyExportError) as caught:
        client_for(double).fetch_window(DAY, tmp_path)
    assert str(caught.value) == (
        f"refused to download https://{host}/latest/meta-data: {host} is a {kind} address "
        "(signed URLs are fetched over https or from PORTKEY_BASE_URL's host, and never from "
        "loopback, link-local or private addresses unless PORTKEY_BASE_URL is on one). "
        "Nothing of this window was committed."
    )
    assert double.storage_requests == []


def test_a_download_over_the_byte_limit_is_stopped(double: PortkeyDouble, tmp_path: Path) -> None:
    big = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x" * 400_000}]}
    double.add_logs(logs_at(1, 2, 3, request=big))
    client = client_for(double, max_download_mib=1)
    with pytest.raises(PortkeyExportError) as caught:
        client.fetch_window(DAY, tmp_path)
    export_id = started_ids(double)[0]
    assert str(caught.value) == (
        f"export {export_id} from {double.storage_base_url}/exports/{export_id}.jsonl is larger "
        "than max_download_mib (1 MiB): the download was stopped and nothing of this window "
        "was committed. Use a shorter --window, or raise --max-download-mib if the export "
        "really is that big."
    )
    assert len(double.storage_requests) == 1  # not retried: the same export is as big again
    assert list(tmp_path.iterdir()) == []
    assert client_for(double, max_download_mib=2).fetch_window(DAY, tmp_path).total == 3


def _scan_whole(data: bytes) -> tuple[int, bool]:
    """The completeness check as it was, over the whole file in memory: the reference."""
    lines = [line for line in data.split(b"\n")]
    count = sum(1 for line in lines if line.strip())
    last = lines[-1]
    if not last.strip():
        return count, True
    try:
        json.loads(last)
    except ValueError:
        return count, False
    return count, True


@given(
    records=st.lists(
        st.sampled_from([b'{"id": "a"}', b"", b"  ", b'{"id": "b", "x": [1, 2]}', b"[]"]),
        max_size=12,
    ),
    tail=st.sampled_from([b"", b'{"id": "c"}', b'{"id": "cut', b"  ", b"\n"]),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=6),
)
def test_records_are_counted_the_same_whatever_the_chunks(
    records: list[bytes], tail: bytes, cuts: list[int]
) -> None:
    data = b"".join(record + b"\n" for record in records) + tail
    counter = RecordCounter()
    start = 0
    for cut in [*sorted(min(cut, len(data)) for cut in cuts), len(data)]:
        counter.feed(data[start:cut])
        start = cut
    assert counter.finish() == _scan_whole(data)


def test_userinfo_leaves_the_portkey_urls_and_travels_as_a_header(
    double: PortkeyDouble, tmp_path: Path
) -> None:
    double.add_logs(logs_at(1))
    base = double.base_url.replace("http://", "http://ops:s3cr3t@")
    client = client_for(double, base_url=base)
    assert client.settings.base_url == double.base_url
    assert "s3cr3t" not in repr(client.settings)
    assert "s3cr3t" not in sync_key("p", client.settings)  # the key state.json keeps
    assert client.fetch_window(DAY, tmp_path).total == 1
    api = [r for r in double.requests if r.server == "api"]
    assert {r.headers.get("authorization") for r in api} == {"Basic b3BzOnMzY3IzdA=="}
    assert all("authorization" not in r.headers for r in double.storage_requests)


def test_a_key_over_plain_http_to_another_machine_is_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="ingest"):
        PortkeySettings.from_options(
            {"portkey_api_key": KEY, "portkey_base_url": "http://portkey.internal:8787/v1"}
        )
        PortkeySettings.from_options(
            {"portkey_api_key": KEY, "portkey_base_url": "http://127.0.0.1:8787/v1"}
        )
        PortkeySettings.from_options({"portkey_api_key": KEY})
    assert [r.getMessage() for r in caplog.records] == [
        "PORTKEY_API_KEY is sent over plain http:// to portkey.internal:8787 "
        "(PORTKEY_BASE_URL): anyone on the network path can read it. Use https://."
    ]


# --------------------------------------------------------------------------- list prices


def test_list_prices_read_portkeys_pricing_config_in_cents_per_token() -> None:
    from ingest.sources.portkey.api import list_prices

    config = {"pay_as_you_go": {
        "request_token": {"price": 0.00025}, "response_token": {"price": 0.001},
        "cache_read_input_token": {"price": 0.000125}, "cache_write_input_token": {"price": 0},
        "additional_units": {"thinking_token": {"price": 0.0035}, "web_search": {"price": 1}},
    }, "currency": "USD"}  # fmt: skip
    expected = {"input": 2.5, "output": 10.0, "cache_read": 1.25, "cache_write": 0.0,
                "reasoning": 35.0}  # fmt: skip
    assert list_prices(config) == expected
    assert list_prices({"pricing_config": config}) == expected  # the repository's file shape
    assert list_prices({**config, "currency": "EUR"}) is None
    assert list_prices({"pay_as_you_go": {"request_token": {"price": 0.1}}}) is None  # no output
    assert list_prices({"pay_as_you_go": {"request_token": {"price": -1},
                                          "response_token": {"price": 1}}}) is None  # fmt: skip


def test_list_prices_read_an_image_models_price_per_image_at_its_default_size() -> None:
    """Portkey's dall-e-3 config: cents per image by quality and size (no token prices)."""
    from ingest.sources.portkey.api import list_prices

    sizes = {"default": {"price": 4}, "1024x1024": {"price": 4}, "1792x1024": {"price": 8}}
    config = {"pay_as_you_go": {"image": {"default": sizes, "hd": {"default": {"price": 8}}}}}
    assert list_prices(config) == {"image": 40_000.0}  # USD per million images: $0.04 each
    assert list_prices({"pay_as_you_go": {"image": {"price": 2}}}) == {"image": 20_000.0}
    assert list_prices({"pay_as_you_go": {"image": {"hd": {"1024x1024": {"price": 8}}}}}) is None


def test_model_price_asks_once_then_stops_when_portkey_is_unreachable() -> None:
    from ingest.sources.portkey.api import PortkeyApi, PortkeySettings

    with PortkeyDouble(
        prices={
            ("openai", "gpt-4o"): {
                "pay_as_you_go": {
                    "request_token": {"price": 0.00025},
                    "response_token": {"price": 0.001},
                }
            }
        }
    ) as double:
        api = PortkeyApi(PortkeySettings(api_key=double.api_key, base_url=double.base_url))
        assert api.model_price("openai", "gpt-4o") == {"input": 2.5, "output": 10.0}
        assert api.model_price("openai", "nope") is None  # 404: no list price
        assert double.requests[0].path == "/model-configs/pricing/openai/gpt-4o"
        gone = double.base_url  # nothing listens there once the double stops
    down = PortkeyApi(PortkeySettings(api_key="pk-x", base_url=gone,
                                      retry_deadline_s=0.5))  # fmt: skip
    assert down.model_price("openai", "gpt-4o") is None
    assert down.model_price("openai", "gpt-4o-mini") is None  # not asked again
