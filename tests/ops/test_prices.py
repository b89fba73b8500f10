"""`prices plan / apply / remove`: Phoenix's own cost made equal to Portkey's bill.

Pure tests of the fit, then the commands against a real Phoenix: generated logs of several
providers (one model Phoenix does not know, one price change mid-range, gateway cache hits
billed 0) are fitted, applied and imported; Phoenix's `costSummary` must equal the bill.
"""

from __future__ import annotations

import json
import math
import random
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ingest.convert.attributes import build_span_facts
from ingest.convert.records import parse_record
from ingest.ops.price_fit import Observation, billable_tokens, fit_model
from ingest.ops.prices import Collected, ModelLogs, collect, lines_of, make_plan
from ingest.ops.prices_render import render
from ingest.phoenix.admin.models import ModelSpec, ModelTable, post_graphql
from ingest.phoenix.admin.totals import PhoenixTotals
from ingest.phoenix.api import PhoenixSettings
from tests.conftest import SAMPLE_LOGS, invoke_cli, run_cli
from tests.logs_factory import BASE_TIME, js_date, make_log, write_jsonl
from tests.portkey_double import PRICING_ROUTE, PortkeyDouble

# ---- pure: the fit -------------------------------------------------------------------------

PRICES_A = {"input": 0.15, "output": 0.6, "cache_read": 0.075}
PRICES_B = {"input": 0.12, "output": 0.48, "cache_read": 0.06}


def observations(
    count: int, prices_at: Any, seed: int = 7, cache: bool = True
) -> list[Observation]:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        at = BASE_TIME + timedelta(minutes=17 * i)
        tokens = (rng.randint(50, 4000), rng.randint(5, 800),
                  rng.choice([0, 0, rng.randint(64, 2048)]) if cache else 0, 0, 0)  # fmt: skip
        prices = prices_at(at)
        cents = sum(prices.get(t, 0) * n for t, n in zip(("input", "output", "cache_read"),
                                                          tokens, strict=False)) / 1e4  # fmt: skip
        out.append(Observation(at, tokens, round(cents, 8) / 100, f"log-{i}"))
    return out


def test_fit_recovers_known_prices_exactly() -> None:
    fit = fit_model(observations(300, lambda _: PRICES_A))
    assert fit.refused is None
    [period] = fit.periods
    assert period.prices == PRICES_A
    assert period.logs == 300
    assert period.max_relative_error < 1e-4
    assert period.start == BASE_TIME.replace(hour=0)


def test_fit_without_cache_tokens_fits_input_and_output_only() -> None:
    fit = fit_model(observations(50, lambda _: PRICES_A, cache=False))
    assert fit.periods[0].prices == {"input": 0.15, "output": 0.6}


def test_price_change_mid_range_is_detected_and_split() -> None:
    change = BASE_TIME + timedelta(days=2, hours=5)
    fit = fit_model(observations(400, lambda at: PRICES_A if at < change else PRICES_B))
    assert fit.refused is None
    first, second = fit.periods
    assert (first.prices, second.prices) == (PRICES_A, PRICES_B)
    assert first.last < change <= second.first
    assert first.last < second.start <= second.first  # the new price starts in the gap
    assert first.logs + second.logs == 400


def test_too_few_logs_are_refused_with_the_reason() -> None:
    fit = fit_model(observations(4, lambda _: PRICES_A, cache=False))
    assert fit.periods == []
    assert fit.refused == "too few billed logs (4; a fit needs 5)"


def test_cost_not_linear_in_tokens_is_refused() -> None:
    nonlinear = [
        Observation(o.at, o.tokens, (o.tokens[0] / 1000) ** 2 / 1000 + 1e-7, o.log_id)
        for o in observations(200, lambda _: PRICES_A)
    ]
    fit = fit_model(nonlinear)
    assert fit.periods == []
    assert fit.refused is not None
    assert fit.refused.startswith("cost not linear in tokens: the best fit after 3 price change")


def test_billable_tokens_split_as_phoenix_prices_them() -> None:
    attributes = {
        "llm.token_count.prompt": 1500,
        "llm.token_count.prompt_details.cache_read": 1000,
        "llm.token_count.prompt_details.cache_write": 200,
        "llm.token_count.completion": 500,
        "llm.token_count.completion_details.reasoning": 100,
        "llm.token_count.total": 2000,
    }
    assert billable_tokens(attributes) == (300, 500, 1000, 200, 0)


def test_an_image_count_is_billed_per_image_not_as_output_tokens() -> None:
    """dall-e-3 billed per image: the image count is its own unit, priced per image."""
    attributes = {
        "llm.token_count.prompt": 0,
        "llm.token_count.completion": 0,
        "llm.token_count.total": 0,
        "llm.token_count.completion_details.image": 2,
    }
    assert billable_tokens(attributes) == (0, 0, 0, 0, 2)


def image_observations(cents: list[float]) -> list[Observation]:
    return [Observation(BASE_TIME + timedelta(minutes=i), (0, 0, 0, 0, 1 + i % 2), c * (1 + i % 2)
                        / 100, f"img-{i}") for i, c in enumerate(cents)]  # fmt: skip


def test_fit_finds_the_price_per_image() -> None:
    fit = fit_model(image_observations([4] * 8))
    assert fit.refused is None
    assert fit.periods[0].prices == {"input": 0.0, "output": 0.0, "image": 40_000.0}  # $0.04
    # Sizes priced differently (4 and 8 cents, interleaved): no single price per image.
    mixed = fit_model(image_observations([4, 8] * 4 + [8, 4] * 4))
    assert mixed.refused is not None
    assert mixed.refused.startswith("cost not linear in tokens and images")


# ---- generated logs with a realistic mix ---------------------------------------------------

CHANGE = datetime(2026, 8, 3, tzinfo=UTC)  # gpt-4o-mini's negotiated price drops here
MINI = "gpt-4o-mini-2024-07-18"
SONNET = "claude-sonnet-4-5-20250929"
BEDROCK = "anthropic.claude-3-5-sonnet-20241022-v2:0"  # not in Phoenix's built-in table
BILLED = {  # USD per million tokens, as Portkey bills them
    MINI: lambda at: {"input": 0.135, "output": 0.54, "cache_read": 0.0675}
    if at < CHANGE else {"input": 0.12, "output": 0.48, "cache_read": 0.06},
    SONNET: lambda at: {"input": 3.0, "output": 15.0, "cache_read": 0.3, "cache_write": 3.75},
    BEDROCK: lambda at: {"input": 3.0, "output": 15.0},
}  # fmt: skip


def _cents(prices: dict[str, float], **tokens: int) -> float:
    return round(sum(prices.get(t, 0.0) * n for t, n in tokens.items()) / 1e4, 8)


def mixed_logs(count: int = 240) -> list[dict[str, Any]]:
    """OpenAI (with prompt caching and gateway cache hits), Anthropic native (cache read and
    write), Bedrock through Portkey's OpenAI shape; over four days."""
    rng = random.Random(11)
    logs = []
    for i in range(count):
        log = make_log(i, prefix="prices")
        at = BASE_TIME + timedelta(minutes=23 * i)
        log["created_at"] = js_date(at)
        prompt, completion = rng.randint(100, 3000), rng.randint(10, 600)
        kind = i % 4
        if kind in (0, 1):  # OpenAI gpt-4o-mini; every 10th one a gateway cache hit
            cached = rng.choice([0, 0, rng.randint(1, prompt // 128) * 128 if prompt > 128 else 0])
            usage = log["response"]["usage"]
            usage.update(prompt_tokens=prompt, completion_tokens=completion,
                         total_tokens=prompt + completion,
                         prompt_tokens_details={"cached_tokens": cached})  # fmt: skip
            log["cost"] = _cents(BILLED[MINI](at), input=prompt - cached, output=completion,
                                 cache_read=cached)  # fmt: skip
            if i % 10 == 0:
                log["cost"], log["cache_status"] = 0, "HIT"
        elif kind == 2:  # Anthropic native: input_tokens exclude the cache
            read, write = rng.choice(
                [(0, 0), (rng.randint(500, 4000), 0), (0, rng.randint(500, 2000))]
            )
            log["ai_org"], log["ai_model"] = "anthropic", SONNET
            log["request_url"] = "https://api.anthropic.com/v1/messages"
            log["request"] = {"model": SONNET, "max_tokens": 1024,
                              "messages": [{"role": "user", "content": f"Q {i}?"}]}  # fmt: skip
            log["response"] = {
                "id": f"msg_{i}", "type": "message", "role": "assistant", "model": SONNET,
                "content": [{"type": "text", "text": f"A {i}."}], "stop_reason": "end_turn",
                "usage": {"input_tokens": prompt, "output_tokens": completion,
                          "cache_read_input_tokens": read, "cache_creation_input_tokens": write},
            }  # fmt: skip
            log["cost"] = _cents(BILLED[SONNET](at), input=prompt, output=completion,
                                 cache_read=read, cache_write=write)  # fmt: skip
            prompt += read + write
        else:  # Bedrock, answered in Portkey's OpenAI shape
            log["ai_org"], log["ai_model"] = "bedrock", BEDROCK
            log["request"]["model"] = BEDROCK
            log["response"]["model"] = BEDROCK
            log["response"]["usage"] = {"prompt_tokens": prompt, "completion_tokens": completion,
                                        "total_tokens": prompt + completion}  # fmt: skip
            log["cost"] = _cents(BILLED[BEDROCK](at), input=prompt, output=completion)
        log["req_units"], log["res_units"] = prompt, completion
        log["total_units"] = prompt + completion
        logs.append(log)
    return logs


def billed_by_model(logs: list[dict[str, Any]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for log in logs:
        model = log["response"]["model"]
        out[model] = out.get(model, 0.0) + log["cost"] / 100
    return out


def test_a_gateway_cache_hit_billed_zero_has_no_billable_tokens() -> None:
    """Phoenix prices spans from their tokens: a request billed 0 must bill 0 tokens."""
    hit = next(log for log in mixed_logs(20) if log.get("cache_status") == "HIT")
    attributes = build_span_facts(parse_record(hit)).attributes
    assert not any(billable_tokens(attributes))
    assert attributes["portkey.token_count.prompt"] > 0, "the real counts stay visible"


# ---- against a real Phoenix ----------------------------------------------------------------


def cost_summary(url: str, project: str, model: str | None = None, where: str = "") -> float:
    """Phoenix's own cost of a project (or one model's spans in it), from GraphQL."""
    settings = PhoenixSettings(endpoint=url, project=project)
    project_id = PhoenixTotals(settings).project_id()  # REST: 12.18 has no getProjectByName
    fresh = f"'{secrets.token_hex(4)}' != ''"  # Phoenix caches aggregates per filter
    condition = f"llm.model_name == '{model}' and {fresh}" if model else fresh
    condition = f"{where} and {condition}" if where else condition
    data = post_graphql(
        settings,
        "query($id: ID!, $f: String!) { node(id: $id) { ... on Project { "
        "costSummary(filterCondition: $f) { total { cost } } } } }",
        {"id": project_id, "f": condition},
    )
    return float(data["node"]["costSummary"]["total"]["cost"] or 0.0)


def cli_json(*args: str) -> tuple[int, dict[str, Any], str]:
    result = run_cli(*args, "--json")
    lines = result.stdout.strip().splitlines()
    return result.returncode, (json.loads(lines[-1]) if lines else {}), result.stderr


def import_into(url: str, project: str, export: Path, state: Path) -> None:
    result = run_cli("import", str(export), "--endpoint", url, "--project", project,
                     "--state-dir", str(state), "-q")  # fmt: skip
    assert result.returncode == 0, result.stderr


@pytest.fixture
def table(phoenix: Any) -> Any:
    models = ModelTable(PhoenixSettings(endpoint=phoenix.url))
    yield models
    for model in models.list():  # leave the shared server's price table as it was
        if model.custom and (model.ours or model.name.startswith(("portkey:", "team-model"))):
            models.delete(model.id)


def test_plan_apply_import_cost_equals_the_bill(phoenix: Any, table: Any, tmp_path: Path) -> None:
    logs = mixed_logs()
    export = write_jsonl(tmp_path / "export.jsonl", logs)
    url = phoenix.url
    billed = billed_by_model(logs)
    bill = math.fsum(billed.values())

    # Before: a plain import. Phoenix prices with its built-in table (and not at all for Bedrock).
    before = f"before-{secrets.token_hex(3)}"
    import_into(url, before, export, tmp_path / "s1")
    before_total = cost_summary(url, before)
    assert cost_summary(url, before, BEDROCK) == 0.0

    # The plan: three models, gpt-4o-mini in two periods, Phoenix's current price beside.
    code, plan, err = cli_json("prices", "plan", str(export), "--endpoint", url)
    assert code == 0, err
    models = {m["model"]: m for m in plan["models"]}
    assert set(models) == {MINI, SONNET, BEDROCK}
    assert all(m["refused"] is None for m in models.values())
    mini = models[MINI]
    assert [p["prices_per_million"] for p in mini["periods"]] == [
        {"input": 0.135, "output": 0.54, "cache_read": 0.0675},
        {"input": 0.12, "output": 0.48, "cache_read": 0.06},
    ]
    assert mini["periods"][1]["start"] == "2026-08-03T00:00:00Z"
    assert mini["zero_billed_logs"] == 12
    assert mini["provider"] == "openai"
    assert mini["periods"][0]["phoenix_now"] == {  # Phoenix's list price, not the bill's
        "name": MINI,
        "prices_per_million": {"input": 0.15, "output": 0.6, "cache_read": 0.075},
    }
    assert models[SONNET]["periods"][0]["prices_per_million"] == BILLED[SONNET](BASE_TIME)
    bedrock = models[BEDROCK]
    assert bedrock["provider"] == "aws"
    assert bedrock["periods"][0]["phoenix_now"] is None
    assert (
        bedrock["periods"][0]["name_pattern"]
        == r"^anthropic\.claude\-3\-5\-sonnet\-20241022\-v2:0$"
    )
    assert plan["changes"] == 4
    assert "instance-wide" in plan["instance_wide"]

    # Never without --yes: exit 2, and the message says what would be written.
    result = run_cli("prices", "apply", str(export), "--endpoint", url)
    assert result.returncode == 2
    assert "needs --yes; nothing was changed" in result.stderr
    assert f"create portkey:aws/{BEDROCK}" in result.stderr
    assert not [m for m in table.list() if m.name.startswith("portkey:")]

    code, applied, err = cli_json("prices", "apply", str(export), "--endpoint", url, "--yes")
    assert code == 0, err
    assert sorted(applied["applied"]["created"]) == sorted([
        f"portkey:openai/{MINI}", f"portkey:openai/{MINI} from 2026-08-03T00:00:00Z",
        f"portkey:anthropic/{SONNET}", f"portkey:aws/{BEDROCK}",
    ])  # fmt: skip

    # A second apply on the same logs changes nothing, and says so.
    again = run_cli("prices", "apply", str(export), "--endpoint", url, "--yes", "-q")
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("Phoenix already had these prices: nothing changed")

    # After: the same logs into a fresh project; Phoenix's own cost is the bill.
    after = f"after-{secrets.token_hex(3)}"
    import_into(url, after, export, tmp_path / "s2")
    after_total = cost_summary(url, after)
    print(f"\nbill ${bill:.6f}; Phoenix before prices apply ${before_total:.6f} "
          f"({before_total / bill - 1:+.1%}), after ${after_total:.6f} "
          f"({after_total / bill - 1:+.1%})")  # fmt: skip
    for model in (SONNET, BEDROCK):  # no zero-billed logs among these
        assert cost_summary(url, after, model) == pytest.approx(billed[model], rel=0.01)
    billed_spans = cost_summary(url, after, MINI, where="portkey.cost > 0")
    assert billed_spans == pytest.approx(billed[MINI], rel=0.01)  # both price periods
    # Gateway cache hits billed 0 carry zero billable tokens, so Phoenix charges nothing.
    assert cost_summary(url, after, MINI) == pytest.approx(billed[MINI], rel=0.01)
    assert after_total == pytest.approx(bill, rel=0.01)


def test_changed_fit_updates_in_place_and_remove_deletes_only_ours(
    phoenix: Any, table: Any, tmp_path: Path
) -> None:
    settings = ["--endpoint", phoenix.url, "--yes", "-q"]
    logs = [log for log in mixed_logs() if log["response"]["model"] == BEDROCK]
    export = write_jsonl(tmp_path / "a.jsonl", logs)
    assert run_cli("prices", "apply", str(export), *settings).returncode == 0
    [ours] = [m for m in table.list() if m.name == f"portkey:aws/{BEDROCK}"]
    assert ours.prices == {"input": 3.0, "output": 15.0}

    for log in logs:  # the negotiated price changed: the fit changes, the model is updated
        log["cost"] = round(log["cost"] * 0.8, 8)
    write_jsonl(export, logs)
    result = run_cli("prices", "apply", str(export), *settings)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Phoenix's price table: 1 updated")
    [updated] = [m for m in table.list() if m.name.startswith("portkey:")]
    assert (updated.id, updated.prices) == (ours.id, {"input": 2.4, "output": 12.0})

    # Someone's own custom models, and the built-in table, survive `prices remove`: also
    # one named like ours, since ours are told by the marker `prices apply` writes.
    own = ModelSpec("team-model", "openai", "^team-model$", None, {"input": 1.0, "output": 2.0})
    table.create(own, {"input": True, "output": False})
    alike = ModelSpec("portkey:team/x", "openai", "^team-x$", None, {"input": 1.0, "output": 2.0})
    table.create(alike, {"input": True, "output": False})
    built_in = sorted(m.id for m in table.list() if not m.custom)
    refused = run_cli("prices", "remove", "--endpoint", phoenix.url)
    assert refused.returncode == 2
    assert f"delete portkey:aws/{BEDROCK}" in refused.stderr
    removed = run_cli("prices", "remove", *settings)
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout.startswith(
        f"Deleted 1 custom model(s) of this tool: portkey:aws/{BEDROCK}."
    )
    left = table.list()
    assert sorted(m.id for m in left if not m.custom) == built_in
    assert sorted(m.name for m in left if m.custom) == ["portkey:team/x", "team-model"]


def cents_per_token(prices: dict[str, float]) -> dict[str, Any]:
    """Portkey's public pricing config (cents per token) for prices in USD per million."""
    names = {
        "input": "request_token",
        "output": "response_token",
        "cache_read": "cache_read_input_token",
        "cache_write": "cache_write_input_token",
    }
    return {"pay_as_you_go": {names[t]: {"price": p / 1e4} for t, p in prices.items()},
            "currency": "USD"}  # fmt: skip


def test_plan_names_where_each_price_comes_from(phoenix: Any, tmp_path: Path) -> None:
    """Too few logs to check a fit: Portkey's list price when it reproduces them, else an
    exact fit of those logs (saying how far off Portkey's price was); enough logs: a fit; an
    image billed per image: a price per image; billed without tokens or images (a
    transcription): no price, and how much of the bill that is."""
    mixed = mixed_logs(60)
    sonnet = [log for log in mixed if log["response"]["model"] == SONNET][:3]
    bedrock = [log for log in mixed if log["response"]["model"] == BEDROCK][:2]
    mini = [log for log in mixed if log["response"]["model"] == MINI and log["cost"]][:12]
    image = make_log(99, prefix="image")
    image["response"] = {"created": 1, "data": [{"url": "https://example.invalid/i.png"}]}
    image.update(ai_model="dall-e-3", cost=4, req_units=0, res_units=0, total_units=0)
    image["request"] = {"model": "dall-e-3", "prompt": "a lighthouse"}
    image["request_url"] = "https://api.openai.com/v1/images/generations"
    audio = make_log(98, prefix="audio")  # billed per second of audio: nothing to count
    audio["response"] = {"text": "Hello."}
    audio.update(ai_model="whisper-1", cost=0.6, req_units=0, res_units=0, total_units=0)
    audio["request"] = {"model": "whisper-1"}
    audio["request_url"] = "https://api.openai.com/v1/audio/transcriptions"
    export = write_jsonl(tmp_path / "few.jsonl", sonnet + bedrock + mini + [image, audio])
    sizes = {"default": {"price": 4}, "1024x1024": {"price": 4}, "1792x1024": {"price": 8}}
    list_prices = {
        ("anthropic", SONNET): cents_per_token(BILLED[SONNET](BASE_TIME)),
        ("bedrock", BEDROCK): cents_per_token({"input": 3.75, "output": 18.75}),  # list > bill
        ("openai", "dall-e-3"): {"pay_as_you_go": {"image": {"default": sizes}}},
    }
    with PortkeyDouble(prices=list_prices) as double:
        result = run_cli("prices", "plan", str(export), "--endpoint", phoenix.url, "--json",
                         env={"PORTKEY_API_KEY": double.api_key,
                              "PORTKEY_BASE_URL": double.base_url})  # fmt: skip
        text = run_cli("prices", "plan", str(export), "--endpoint", phoenix.url)
        asked = {r.path.split("?")[0] for r in double.requests_to(PRICING_ROUTE)}
        assert double.errors == []
    assert result.returncode == 0, result.stderr
    models = {m["model"]: m for m in json.loads(result.stdout)["models"]}
    assert models[SONNET]["source"] == "Portkey's price"
    assert models[SONNET]["periods"][0]["prices_per_million"] == BILLED[SONNET](BASE_TIME)
    assert models[BEDROCK]["source"] == "exact fit of 2 log(s); Portkey's price is off by 25%"
    assert models[MINI]["source"] == "fit of 12 logs"
    assert models["dall-e-3"]["source"] == "Portkey's price"
    [dalle] = models["dall-e-3"]["periods"]
    assert (dalle["usd_per_image"], dalle["prices_per_million"]) == (
        0.04, {"input": 0.0, "output": 0.0, "image": 40_000.0})  # fmt: skip
    assert (
        models["whisper-1"]["refused"] == "its billed logs carry no token or image counts to price"
    )
    assert asked == {f"/model-configs/pricing/anthropic/{SONNET}",
                     f"/model-configs/pricing/bedrock/{BEDROCK.replace(':', '%3A')}",
                     "/model-configs/pricing/openai/dall-e-3"}  # fmt: skip
    # Without a Portkey key nothing is asked: the few logs are fitted exactly.
    assert text.returncode == 0, text.stderr
    [row] = [line for line in text.stdout.splitlines() if line.startswith(SONNET)]
    assert "exact fit of 3 log(s)" in row
    [row] = [line for line in text.stdout.splitlines() if line.startswith("dall-e-3")]
    assert "in 0 out 0 per image 0.04" in row and "exact fit of 1 log(s)" in row
    assert (
        "Billed without token or image counts (Phoenix cannot price these): 1 log(s) of "
        "whisper-1 ($0.006)" in text.stdout
    )


def test_a_model_always_billed_zero_is_priced_zero() -> None:
    """A self-hosted model Portkey bills nothing for keeps its token counts in Phoenix, so it
    needs a price of 0 there (or Phoenix would price it from its own table)."""
    free = ModelLogs("llama3.3", "ollama", zero_billed=4, zero_billed_tokens=4)
    hits_only = ModelLogs("gpt-4o", "openai", zero_billed=3)  # cache hits: nothing to price
    plan = make_plan(Collected({("llama3.3", "ollama"): free, ("gpt-4o", "openai"): hits_only}),
                     [], "test")  # fmt: skip
    [model] = plan.models
    assert model.source == "always billed 0 (4 logs)"
    [spec] = model.specs
    assert (spec.name, spec.prices, spec.start_time, spec.ours) == (
        "portkey:ollama/llama3.3", {"input": 0.0, "output": 0.0}, None, True)  # fmt: skip
    assert "llama3.3  ollama    always" in render(plan)


@pytest.fixture
def any_table(any_phoenix: Any) -> Any:
    """`table` on the newest and on the oldest supported Phoenix."""
    models = ModelTable(PhoenixSettings(endpoint=any_phoenix.url))
    yield models
    for model in models.list():
        if model.custom and model.ours:
            models.delete(model.id)


def test_sample_logs_cost_in_phoenix_is_the_bill(any_phoenix: Any, any_table: Any,
                                                 project: str, tmp_path: Path) -> None:  # fmt: skip
    """README's promise on the bundled logs: `prices apply sample_logs --yes`, then import;
    the dall-e-3 image, billed per image, is priced per image (issue 23)."""
    url = any_phoenix.url
    applied = run_cli("prices", "apply", str(SAMPLE_LOGS), "--endpoint", url, "--yes")
    assert applied.returncode == 0, applied.stderr
    [dalle] = [line for line in applied.stderr.splitlines() if line.startswith("dall-e-3 ")]
    assert "in 0 out 0 per image 0.04" in dalle and "exact fit of 1 log(s)" in dalle
    assert "Billed without token or image counts" not in applied.stderr
    import_into(url, project, SAMPLE_LOGS, tmp_path / "state")
    collected = collect(lines_of([SAMPLE_LOGS]))
    bill = math.fsum(m.billed_usd for m in collected.models.values())
    phoenix_total = cost_summary(url, project)
    print(f"\nsample logs: bill ${bill:.6f}, Phoenix ${phoenix_total:.6f} "
          f"({phoenix_total / bill - 1:+.2%})")  # fmt: skip
    assert math.fsum(m.no_tokens_usd for m in collected.models.values()) == 0.0
    assert cost_summary(url, project, "dall-e-3") == pytest.approx(0.04, rel=1e-6)
    assert phoenix_total == pytest.approx(bill, rel=0.01)


def test_an_image_span_phoenix_cannot_price_is_listed_as_unpriced(
    phoenix: Any, table: Any, project: str, tmp_path: Path
) -> None:
    """Without a price per image, the dall-e-3 span (no tokens, one image) is one reconcile
    names among the spans Phoenix could not price, as it names a model without token prices.
    (Phoenix 12.18's span query has no `total_cost`: the list is empty there, README says.)"""
    from ingest.phoenix.admin.totals import PhoenixTotals
    from ingest.sources.windows import Window

    import_into(phoenix.url, project, SAMPLE_LOGS, tmp_path / "state")
    totals = PhoenixTotals(PhoenixSettings(endpoint=phoenix.url, project=project))
    window = Window(datetime(2020, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC))
    unpriced = [row for kind, row in totals.span_rows(window, 100) if kind == "unpriced"]
    assert "dall-e-3" in {row["model"] for row in unpriced}
    [dalle] = [row for row in unpriced if row["model"] == "dall-e-3"]
    assert dalle["cost"] == pytest.approx(4.0)  # Portkey's cents for the image


def test_plan_needs_files_or_a_range() -> None:
    result = invoke_cli("prices", "plan")
    assert result.returncode == 2
    assert "export files as arguments, or --since and --until" in result.stderr


def test_reconcile_names_prices_apply_for_each_drifting_model() -> None:
    from ingest.ops.reconcile import ModelTally, Report
    from ingest.ops.reconcile_render import render

    day = datetime(2026, 7, 1, tzinfo=UTC)
    drifting = ModelTally("gpt-4o-mini", "openai", 10, 0.01, phoenix_cost_usd=0.008)
    exact = ModelTally("claude-x", "anthropic", 5, 0.02, phoenix_cost_usd=0.02)
    unpriced = ModelTally("acme-1", "acme", 2, 0.5, None, 2, 0.5, "2026-07-01T09:00:00Z")
    report = Report("p", "http://x", day, day + timedelta(days=1), "day", [],
                    [drifting, exact, unpriced])  # fmt: skip
    lines = render(report).splitlines()
    [mini] = [line for line in lines if line.startswith("gpt-4o-mini ")]
    [claude] = [line for line in lines if line.startswith("claude-x ")]
    [acme] = [line for line in lines if line.startswith("acme-1 ")]
    assert mini.endswith("fix: prices apply") and acme.endswith("fix: prices apply")
    assert not claude.endswith("fix: prices apply")
    assert (
        "To make Phoenix's cost equal the bill for gpt-4o-mini, acme-1: portkey-phoenix-ingest "
        "prices plan --since 2026-07-01T00:00:00Z --until 2026-07-02T00:00:00Z, then the same "
        "with `prices apply ... --yes`" in render(report)
    )


def test_backfill_with_apply_prices_writes_prices_before_delivering(
    phoenix: Any, table: Any, project: str
) -> None:
    from tests.portkey_double import PortkeyDouble

    logs = [log for log in mixed_logs(120) if log["response"]["model"] in (SONNET, BEDROCK)]
    for log in logs:  # the double takes ISO-8601 times
        log["created_at"] = parse_record(log).created_at.isoformat()
    with PortkeyDouble(export_cap=50, job_polls=1) as double:
        double.add_logs(logs)
        result = run_cli(
            "backfill", "--since", "2026-08-01", "--until", "2026-08-04", "--apply-prices",
            "--endpoint", phoenix.url, "--project", project, "--poll-interval", "0.02",
            env={"PORTKEY_API_KEY": double.api_key, "PORTKEY_BASE_URL": double.base_url},
        )  # fmt: skip
        assert double.errors == []
    assert result.returncode == 0, result.stderr
    assert "Phoenix's price table: 2 created" in result.stderr
    billed = billed_by_model(logs)
    assert cost_summary(phoenix.url, project) == pytest.approx(sum(billed.values()), rel=0.01)


def test_prices_remove_takes_its_endpoint_from_the_config_file(
    phoenix: Any, table: Any, tmp_path: Path
) -> None:
    """`endpoint` at the top of the config file and `yes` in a [prices] table reach
    `prices remove`, which then deletes this tool's models on THAT Phoenix."""
    ours = ModelSpec(
        "portkey:config/model",
        "openai",
        "^config-model$",
        None,
        {"input": 1.0, "output": 2.0},
        ours=True,
    )
    table.create(ours, {"input": True, "output": False})
    config = tmp_path / "config.toml"
    config.write_text(f'endpoint = "{phoenix.url}"\n[prices]\nyes = true\n')
    config.chmod(0o600)
    result = run_cli("--config", str(config), "prices", "remove",
                     env={"PHOENIX_COLLECTOR_ENDPOINT": ""})  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Deleted 1 custom model(s) of this tool: portkey:config/model.")
    assert not [m for m in table.list() if m.name == "portkey:config/model"]
