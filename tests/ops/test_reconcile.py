"""`reconcile`: Portkey analytics vs the Phoenix project, per bucket and per model."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from ingest.convert.ids import span_hex, span_id_for
from ingest.errors import ConfigError, PortkeyError
from ingest.ops.reconcile import (
    BucketRow,
    PortkeyFigures,
    Report,
    add_figures,
    bucket_label,
    make_buckets,
    portkey_figures,
    scale_figures,
    tally_rows,
)
from ingest.ops.reconcile_render import name_pattern, render, to_dict
from ingest.phoenix.admin.local_server import LocalPhoenix
from ingest.phoenix.admin.totals import PhoenixFigures, frame_rows, parse_multipart_json
from ingest.sources.windows import Window
from tests.conftest import REPO, run_cli
from tests.portkey_double import PortkeyDouble, make_log

DAY0 = datetime(2026, 7, 1, tzinfo=UTC)
DAY1 = DAY0 + timedelta(days=1)
CLAUDE = "claude-3-5-sonnet-20241022"


def t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# --------------------------------------------------------------------------- pure logic


def test_buckets_follow_utc_days_and_hours_and_clip_the_edges() -> None:
    days = make_buckets(t("2026-07-01T06:00"), t("2026-07-03T12:00"), "day")
    assert [(w.since, w.until) for w in days] == [
        (t("2026-07-01T06:00"), t("2026-07-02T00:00")),
        (t("2026-07-02T00:00"), t("2026-07-03T00:00")),
        (t("2026-07-03T00:00"), t("2026-07-03T12:00")),
    ]
    assert [bucket_label(w, "day") for w in days] == [
        "2026-07-01 06:00:00..2026-07-02 00:00:00",
        "2026-07-02",
        "2026-07-03 00:00:00..2026-07-03 12:00:00",
    ]
    hours = make_buckets(DAY0, DAY0 + timedelta(hours=3), "hour")
    assert [bucket_label(w, "hour") for w in hours] == [
        "2026-07-01 00:00",
        "2026-07-01 01:00",
        "2026-07-01 02:00",
    ]
    with pytest.raises(ConfigError, match="more than 2000 hour buckets"):
        make_buckets(DAY0, DAY0 + timedelta(days=100), "hour")
    with pytest.raises(ConfigError, match="before"):
        make_buckets(DAY1, DAY0, "day")


def row(requests_: int, spans: int, cost: float = 0.01, billed: float = 0.01, tokens: int = 10,
        span_tokens: int = 10, hits: int | None = 0, span_hits: int = 0, known: int = 0,
        other: int = 0) -> BucketRow:  # fmt: skip
    window = Window(DAY0, DAY1)
    portkey = PortkeyFigures(requests_, cost, tokens, hits)
    phoenix = PhoenixFigures(spans + other, spans, billed, span_tokens, 0.0, None, span_hits, known)
    return BucketRow("2026-07-01", window, portkey, phoenix)


def test_flags_name_missing_and_extra_spans_and_cost_token_cache_differences() -> None:
    assert row(10, 10).flags == []
    assert row(10, 7).flags == ["MISSING 3"]
    assert (row(10, 7).missing, row(10, 12).extra) == (3, 2)
    assert row(10, 12).flags == ["EXTRA 2"]
    assert row(10, 10, other=5).flags == [], "spans from another source are not compared"
    assert row(10, 10, cost=0.0105, billed=0.0105000000001).flags == [], "float noise"
    assert row(10, 10, cost=0.0105, billed=0.0100).flags == ["COST"]
    assert row(10, 10, tokens=120, span_tokens=96).flags == ["TOKENS"]
    # cache status is only on enriched spans: compare only when every span carries one
    assert row(10, 10, hits=3, span_hits=0, known=0).flags == []
    assert row(10, 10, hits=3, span_hits=1, known=10).flags == ["CACHE"]
    assert row(10, 10, hits=None, span_hits=1, known=10).flags == []


def test_a_sampled_bucket_is_missing_only_beyond_what_sampling_explains() -> None:
    kept = PhoenixFigures(spans=520, portkey_spans=520, billed_cost_usd=0.5, tokens=5200)
    scaled = scale_figures(kept, 0.5)
    assert (scaled.portkey_spans, scaled.tokens, scaled.billed_cost_usd) == (1040, 10400, 1.0)
    near = BucketRow("d", Window(DAY0, DAY1), PortkeyFigures(1000, 1.0, 10400), scaled, 0.5)
    assert near.allowance == 127  # 4 * sqrt(1000 * 0.5 / 0.5)
    assert (near.missing, near.extra, near.flags) == (0, 0, []), "no COST/TOKENS: estimates"
    short = replace(near, phoenix=scale_figures(replace(kept, portkey_spans=400), 0.5))
    assert short.flags == ["MISSING 200"]
    report = Report("p", "http://x", DAY0, DAY1, "day", [short], sample=0.5,
                    projects={"a": kept, "b": PhoenixFigures()})  # fmt: skip
    text = render(report)
    assert "Sampled at 0.5: Phoenix's figures below are divided by 0.5 (estimates)" in text
    assert "Reconcile Portkey analytics with Phoenix projects 'a', 'b'" in text
    assert to_dict(report)["projects"]["a"]["portkey_spans"] == 520
    assert add_figures(kept, kept).portkey_spans == 1040


def test_only_missing_spans_fail_the_report_and_the_text_says_where() -> None:
    extra = Report("p", "http://x", DAY0, DAY1 + timedelta(days=1), "day",
                   [row(10, 12, other=4), row(5, 5)])  # fmt: skip
    assert extra.ok
    text = render(extra)
    assert "EXTRA 2" in text and "Not a failure" in text
    assert "other: spans in the project that did not come from Portkey" in text
    assert "No bucket is missing requests." in text

    missing = Report("p", "http://x", DAY0, DAY1, "day", [row(10, 7)])
    assert not missing.ok
    text = render(missing)
    assert "Phoenix is missing requests Portkey logged in: 2026-07-01 (3)" in text
    assert "backfill --since 2026-07-01T00:00:00Z --until 2026-07-02T00:00:00Z" in text
    doc = to_dict(missing)
    assert doc["missing_buckets"] == [{"bucket": "2026-07-01", "missing": 3}]
    assert doc["ok"] is False and doc["totals"]["missing"] == 3


def test_model_tallies_from_span_rows_and_the_unpriced_hint() -> None:
    figures, models = PhoenixFigures(), {}
    rows: list[tuple[str, dict[str, Any]]] = [
        ("span", {"cost": 0.0105, "units": 12.0, "cache": None, "model": "gpt-4o-mini",
                  "provider": "openai", "kind": "LLM"}),
        ("span", {"cost": 0.5, "units": 20.0, "cache": "HIT", "model": "acme-llm-1",
                  "provider": "acme", "kind": "LLM"}),
        ("span", {"cost": 0.25, "units": 20.0, "cache": "MISS", "model": "acme-llm-1",
                  "provider": "acme", "kind": "LLM"}),
        ("span", {"cost": None, "units": None, "cache": None, "model": None, "kind": "CHAIN"}),
        ("unpriced", {"cost": 0.25, "model": "acme-llm-1",
                      "start": "2026-07-02T03:00:00.000000000Z"}),
        ("unpriced", {"cost": 0.5, "model": "acme-llm-1",
                      "start": "2026-07-01T09:00:00.000000000Z"}),
    ]  # fmt: skip
    tally_rows(figures, models, rows)
    assert math.isclose(figures.billed_cost_usd, 0.007605)
    assert (figures.tokens, figures.cache_hits, figures.cache_known) == (52, 1, 2)
    acme = models["acme-llm-1"]
    assert (acme.spans, acme.unpriced_spans, acme.provider) == (2, 2, "acme")
    assert acme.first_unpriced == "2026-07-01T09:00:00.000000000Z"
    assert acme.drift_usd is None, "nothing of it was priced: no drift to show"
    mini = models["gpt-4o-mini"]
    mini.phoenix_cost_usd = 0.00000315
    assert math.isclose(mini.drift_usd or 0, 0.00000315 - 0.000105)

    report = Report("p", "http://x", DAY0, DAY1, "day", [row(1, 1)], [acme, mini])
    text = render(report)
    assert "Phoenix could not price 2 span(s) of 1 model(s)" in text
    assert "acme-llm-1: 2 span(s) from 2026-07-01, billed $0.007500 by Portkey" in text
    assert "Settings > Models > Add model" in text
    assert "name pattern ^acme-llm-1$  start date 2026-07-01T00:00:00Z" in text
    assert '"namePattern": "^acme-llm-1$"' in text and "createModel" in text
    assert to_dict(report)["unpriced_models"] == ["acme-llm-1"]


def test_name_pattern_matches_exactly_that_model() -> None:
    import re

    for model in ("claude-3-5-sonnet-20241022", "gpt-4.1 (eu)[x]", "a+b?c*"):
        pattern = name_pattern(model)
        assert re.search(pattern, model)
        assert not re.search(pattern, model + "-mini") and not re.search(pattern, "x" + model)
    assert not re.search(name_pattern("gpt-4.1"), "gpt-481")


def test_phoenix_multipart_answer_becomes_rows() -> None:
    boundary = "b0Und"
    doc = {"schema": {}, "data": [{"0_context.span_id": "ab", "1_cost": 0.0105, "2_model": "m"},
                                  {"0_context.span_id": "cd", "1_cost": float("nan"),
                                   "2_model": None}]}  # fmt: skip
    body = (
        f"--{boundary}\r\nContent-Type: application/json\r\n\r\n{json.dumps(doc)}\r\n"
        f"--{boundary}\r\nContent-Type: application/json\r\n\r\n"
        '{"schema": {}, "data": []}\r\n'
        f"--{boundary}--\r\n"
    )
    parts = parse_multipart_json(f"multipart/mixed; boundary={boundary}", body)
    assert len(parts) == 2
    assert frame_rows(parts[0]) == [
        {"context.span_id": "ab", "cost": 0.0105, "model": "m"},
        {"context.span_id": "cd", "cost": None, "model": None},
    ]
    assert frame_rows(parts[1]) == []


def test_portkey_figures_convert_cents_and_tolerate_a_missing_cache_summary() -> None:
    asked: list[tuple[str, dict[str, str]]] = []
    answers = {
        "/analytics/graphs/requests": {"summary": {"total": 24}},
        "/analytics/graphs/cost": {"summary": {"total": 0.252, "avg": 0.0105}},
        "/analytics/graphs/tokens": {"summary": {"total": "288"}},
    }

    def get(path: str, params: dict[str, str]) -> dict[str, Any]:
        asked.append((path, params))
        if path not in answers:
            raise PortkeyError("Portkey refused GET ... (HTTP 404)", status=404)
        return answers[path]

    figures = portkey_figures(get, Window(DAY0, DAY1))
    assert figures == PortkeyFigures(24, 0.00252, 288, None)
    assert asked[0][1] == {
        "time_of_generation_min": "2026-07-01T00:00:00+00:00",
        "time_of_generation_max": "2026-07-02T00:00:00+00:00",
    }
    answers["/analytics/graphs/cost"] = {"summary": {"total": "n/a"}}
    with pytest.raises(PortkeyError, match=r"summary\.total"):
        portkey_figures(get, Window(DAY0, DAY1))


# --------------------------------------------------------------------------- end to end


def mini(created_at: datetime) -> dict[str, Any]:
    log = make_log(created_at, ai_model="gpt-4o-mini")
    log["response"]["model"] = "gpt-4o-mini"
    log["request"]["model"] = "gpt-4o-mini"
    return log


def claude(created_at: datetime) -> dict[str, Any]:
    return make_log(
        created_at, ai_org="anthropic", ai_model=CLAUDE, cost=0.12,
        request_url="https://api.anthropic.com/v1/messages",
        request={"model": CLAUDE, "max_tokens": 10,
                 "messages": [{"role": "user", "content": "Hello"}]},
        response={"id": "msg_1", "type": "message", "role": "assistant", "model": CLAUDE,
                  "content": [{"type": "text", "text": "Hi"}], "stop_reason": "end_turn",
                  "usage": {"input_tokens": 9, "output_tokens": 3}},
    )  # fmt: skip


def two_days() -> list[dict[str, Any]]:
    logs = [mini(DAY0 + timedelta(minutes=70 * i)) for i in range(20)]  # 2026-07-01: 21
    logs += [claude(DAY0 + timedelta(hours=5, minutes=i)) for i in range(1)]
    logs += [mini(DAY1 + timedelta(minutes=50 * i)) for i in range(15)]  # 2026-07-02: 17
    logs += [claude(DAY1 + timedelta(hours=20, minutes=i)) for i in range(2)]
    return logs


def backfill(double: PortkeyDouble, phoenix: LocalPhoenix, project: str, state: str) -> None:
    result = run_cli(
        "backfill", "--since", "2026-07-01", "--until", "2026-07-03", "--endpoint", phoenix.url,
        "--project", project, "--poll-interval", "0.02", "--state-dir", state,
        env={"PORTKEY_API_KEY": double.api_key, "PORTKEY_BASE_URL": double.base_url},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def reconcile(double: PortkeyDouble, phoenix: LocalPhoenix, project: str,
              *args: str) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """The command in a subprocess, as CI runs it (its logging set-up stays out of pytest)."""
    env = {**os.environ, "PORTKEY_API_KEY": double.api_key, "PORTKEY_BASE_URL": double.base_url}
    return subprocess.run(
        [sys.executable, "-m", "ingest", "reconcile", "--endpoint", phoenix.url,
         "--project", project, "--since", "2026-07-01", "--until", "2026-07-03", *args],
        env=env, capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip


@pytest.fixture(scope="module")
def synced(phoenix: LocalPhoenix, tmp_path_factory: pytest.TempPathFactory,
           ) -> Iterator[tuple[PortkeyDouble, str, list[dict[str, Any]]]]:  # fmt: skip
    """Two days of logs, backfilled completely into one project (read-only for the tests)."""
    logs = two_days()
    with PortkeyDouble(job_polls=1) as double:
        double.add_logs(logs)
        project = "reconcile-synced"
        backfill(double, phoenix, project, str(tmp_path_factory.mktemp("state")))
        yield double, project, logs
        assert double.errors == []


def test_after_a_complete_sync_every_bucket_matches_and_the_exit_code_is_0(
    synced: tuple[PortkeyDouble, str, list[dict[str, Any]]], phoenix: LocalPhoenix
) -> None:
    double, project, logs = synced
    result = reconcile(double, phoenix, project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No bucket is missing requests." in result.stdout
    last = result.stderr.strip().splitlines()[-1]  # a successful reconcile ends with run_done too
    assert " run_done command=reconcile outcome=ok exit_code=0" in last, result.stderr
    print(result.stdout)  # the table, for the issue note (pytest -s)

    doc = json.loads(reconcile(double, phoenix, project, "--json").stdout)
    assert [b["bucket"] for b in doc["buckets"]] == ["2026-07-01", "2026-07-02"]
    per_day = {"2026-07-01": 21, "2026-07-02": 17}
    for bucket in doc["buckets"]:
        assert bucket["portkey"]["requests"] == bucket["phoenix"]["portkey_spans"]
        assert bucket["portkey"]["requests"] == per_day[bucket["bucket"]]
        assert math.isclose(bucket["portkey"]["cost_usd"], bucket["phoenix"]["billed_cost_usd"])
        assert bucket["portkey"]["tokens"] == bucket["phoenix"]["tokens"]
        assert (bucket["missing"], bucket["extra"], bucket["flags"]) == (0, 0, [])
    billed = sum(log["cost"] for log in logs) / 100
    assert math.isclose(doc["totals"]["portkey"]["cost_usd"], billed)


def test_the_drift_report_lists_the_model_phoenix_cannot_price(
    synced: tuple[PortkeyDouble, str, list[dict[str, Any]]], phoenix: LocalPhoenix
) -> None:
    double, project, _ = synced
    result = reconcile(double, phoenix, project)
    text = result.stdout
    assert "Phoenix could not price 3 span(s) of 1 model(s)" in text
    assert f"{CLAUDE}: 3 span(s) from 2026-07-01, billed $0.003600 by Portkey" in text
    assert "Settings > Models > Add model" in text
    assert f"name pattern ^{CLAUDE}$  start date 2026-07-01T00:00:00Z" in text
    assert "delete those spans in Phoenix and run `backfill`" in text

    models = {m["model"]: m for m in json.loads(reconcile(double, phoenix, project,
                                                          "--json").stdout)["models"]}  # fmt: skip
    assert models[CLAUDE]["unpriced_spans"] == models[CLAUDE]["spans"] == 3
    priced = models["gpt-4o-mini"]
    assert priced["spans"] == 35 and priced["unpriced_spans"] == 0
    assert math.isclose(priced["billed_cost_usd"], 35 * 0.0105 / 100)
    # Phoenix prices gpt-4o-mini itself from the tokens (9 in, 3 out): far below Portkey's bill
    assert 0 < priced["phoenix_cost_usd"] < priced["billed_cost_usd"]
    assert math.isclose(priced["drift_usd"], priced["phoenix_cost_usd"] - priced["billed_cost_usd"])
    line = next(li for li in text.splitlines() if li.startswith("gpt-4o-mini "))
    assert (
        f"{priced['billed_cost_usd']:.6f}" in line and f"{priced['phoenix_cost_usd']:.6f}" in line
    )


def test_json_output_has_the_documented_keys(
    synced: tuple[PortkeyDouble, str, list[dict[str, Any]]], phoenix: LocalPhoenix
) -> None:
    double, project, _ = synced
    result = reconcile(double, phoenix, project, "--json", "--bucket", "hour")
    assert result.returncode == 0, result.stdout + result.stderr
    doc = json.loads(result.stdout)
    assert set(doc) == {"project", "phoenix_url", "since", "until", "bucket", "ok", "buckets",
                        "totals", "missing_buckets", "models", "unpriced_models", "sample",
                        "projects"}  # fmt: skip
    assert (doc["sample"], doc["projects"]) == (1.0, {})
    assert (doc["bucket"], len(doc["buckets"]), doc["ok"]) == ("hour", 48, True)
    bucket = doc["buckets"][0]
    assert set(bucket) == {"bucket", "since", "until", "portkey", "phoenix", "missing", "extra",
                           "allowance", "flags"}  # fmt: skip
    assert set(bucket["portkey"]) == {"requests", "cost_usd", "tokens", "cache_hits"}
    assert set(bucket["phoenix"]) == {"spans", "portkey_spans", "other_spans", "billed_cost_usd",
                                      "tokens", "phoenix_tokens", "phoenix_cost_usd",
                                      "cache_hits", "cache_known"}  # fmt: skip
    assert doc["unpriced_models"] == [CLAUDE]
    assert double.api_key not in result.stdout


def test_spans_deleted_from_phoenix_are_named_by_bucket_and_fail_the_run(
    phoenix: LocalPhoenix, project: str, tmp_path: Any
) -> None:
    logs = two_days()
    with PortkeyDouble(job_polls=1) as double:
        double.add_logs(logs)
        backfill(double, phoenix, project, str(tmp_path / "state"))
        assert reconcile(double, phoenix, project).returncode == 0  # also warms Phoenix's caches
        gone = [log for log in logs if log["created_at"].date() == DAY1.date()][:3]
        for log in gone:
            span_id = span_hex(span_id_for(project, log["id"]))
            response = requests.delete(f"{phoenix.url}/v1/spans/{span_id}", timeout=10)
            assert response.status_code == 204

        result = reconcile(double, phoenix, project)
        assert result.returncode == 1, result.stdout + result.stderr
        day_line = next(li for li in result.stdout.splitlines() if li.startswith("2026-07-02"))
        assert day_line.split()[1:3] == ["17", "14"] and day_line.endswith("MISSING 3")
        assert "Phoenix is missing requests Portkey logged in: 2026-07-02 (3)" in result.stdout
        assert "2026-07-01 (" not in result.stdout

        hourly = json.loads(
            reconcile(double, phoenix, project, "--json", "--bucket", "hour").stdout
        )
        hours = {f"2026-07-02 {log['created_at']:%H}:00" for log in gone}
        assert {b["bucket"] for b in hourly["missing_buckets"]} == hours
        assert sum(b["missing"] for b in hourly["missing_buckets"]) == 3
        assert double.errors == []


def test_reconcile_gives_up_on_portkey_after_its_retry_deadline(
    phoenix: LocalPhoenix, project: str
) -> None:
    """reconcile takes --portkey-retry-deadline as sync does (it used the 300 s default)."""
    from ingest.phoenix.admin.local_server import free_port
    from tests.conftest import invoke_cli

    closed = f"http://127.0.0.1:{free_port()}/v1"
    result = invoke_cli(
        "reconcile", "--since", "2026-07-01", "--until", "2026-07-02", "--endpoint", phoenix.url,
        "--project", project, "--portkey-base-url", closed, "--portkey-retry-deadline", "0.2",
        env={"PORTKEY_API_KEY": "pk-test"},
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert "Portkey" in error and "connection refused" in error, error
