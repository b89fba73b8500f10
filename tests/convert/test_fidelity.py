"""Fidelity details (issue 16, part 3) and zero-billed requests (issue 11, item 4): each rule
with its own case, raw log -> span attributes as Phoenix stores them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ingest.convert.common import MAPPING_VERSION
from ingest.convert.records import DOCS_NAMES, parse_record
from ingest.convert.spans import ConversionOptions, make_resource, span_to_dict, to_span

PROJECT = "test-project"
BASE: dict[str, Any] = {"id": "log-1", "created_at": "2026-07-25T11:14:18.123Z"}
CHAT = "https://api.portkey.ai/v1/chat/completions"
SAMPLES = Path(__file__).resolve().parents[2] / "sample_logs"


def convert(**fields: Any) -> dict[str, Any]:
    options = ConversionOptions(project=PROJECT)
    return span_to_dict(to_span(parse_record({**BASE, **fields}), options, make_resource(PROJECT)))


def attrs(**fields: Any) -> dict[str, Any]:
    return convert(**fields)["attributes"]


def tokens(attributes: dict[str, Any], prefix: str = "llm.token_count.") -> dict[str, Any]:
    return {k[len(prefix) :]: v for k, v in attributes.items() if k.startswith(prefix)}


def test_prompt_completion_emits_template_variables_version_and_prompt_id() -> None:
    got = attrs(
        request_url="https://api.portkey.ai/v1/prompts/pp-weather-1a2b/completions",
        request={"variables": {"city": "Paris", "days": 3}, "prompt_version": "4",
                 "max_tokens": 50, "messages": [{"role": "user", "content": "Weather in Paris?"}]},
        ai_model="gpt-4o",
    )  # fmt: skip
    assert json.loads(got["llm.prompt_template.variables"]) == {"city": "Paris", "days": 3}
    assert got["llm.prompt_template.version"] == "4"
    assert got["prompt.id"] == "pp-weather-1a2b" and got["prompt.vendor"] == "portkey"
    assert json.loads(got["llm.invocation_parameters"]) == {"prompt_version": "4", "max_tokens": 50}
    assert got["openinference.span.kind"] == "LLM"


def test_prompt_template_text_is_kept_when_the_log_has_it() -> None:
    got = attrs(request={"template": "Weather in {{city}}?", "variables": {"city": "Oslo"}})
    assert got["llm.prompt_template.template"] == "Weather in {{city}}?"


def test_a_plain_chat_has_no_prompt_template() -> None:
    got = attrs(request_url=CHAT, request={"messages": [{"role": "user", "content": "hi"}]})
    assert not [key for key in got if key.startswith(("llm.prompt_template", "prompt."))]


def test_error_status_names_http_status_code_and_class() -> None:
    span = convert(
        is_success=False,
        response_status_code=429,
        response={"error": {"message": "Rate limit reached for gpt-4o", "type": "requests",
                            "code": "rate_limit_exceeded"}},
    )  # fmt: skip
    assert span["status"]["message"] == "429 rate_limit_exceeded: Rate limit reached for gpt-4o"


def test_a_failed_request_without_usage_has_no_token_counts_but_keeps_its_billed_zero() -> None:
    got = attrs(
        is_success=False, response_status_code=500, response={"error": {"message": "boom"}},
        req_units=0, res_units=0, total_units=0, cost=0, cost_currency="USD",
    )  # fmt: skip
    assert tokens(got) == {}
    assert got["llm.cost.total"] == 0.0  # Portkey reported a bill of zero: not invented
    assert got["portkey.cost"] == 0


def test_a_billed_zero_on_a_successful_request_is_kept() -> None:
    got = attrs(is_success=True, response_status_code=200, cost=0, req_units=0, res_units=0)
    assert got["llm.cost.total"] == 0.0
    assert tokens(got) == {"prompt": 0, "completion": 0, "total": 0}


def test_zero_billed_requests_cost_nothing_in_phoenix_but_keep_their_counts() -> None:
    usage = {"prompt_tokens": 1200, "completion_tokens": 80, "total_tokens": 1280,
             "prompt_tokens_details": {"cached_tokens": 1024}}  # fmt: skip
    got = attrs(
        request_url=CHAT, response={"choices": [], "usage": usage}, cost=0, cache_status="HIT",
        req_units=1200, res_units=80, is_success=True,
    )  # fmt: skip
    assert tokens(got) == {"prompt": 0, "completion": 0, "total": 0, "prompt_details.cache_read": 0}
    assert tokens(got, "portkey.token_count.") == {
        "prompt": 1200, "completion": 80, "total": 1280, "prompt_details.cache_read": 1024,
    }  # fmt: skip
    assert got["llm.cost.total"] == 0.0
    assert (got["portkey.req_units"], got["portkey.res_units"]) == (1200, 80)


def test_a_billed_request_keeps_its_token_counts() -> None:
    got = attrs(response={"usage": {"prompt_tokens": 10, "completion_tokens": 2}}, cost=0.01)
    assert tokens(got) == {"prompt": 10, "completion": 2, "total": 12}
    assert not tokens(got, "portkey.token_count.")


def test_cost_has_no_float_noise() -> None:
    assert attrs(cost=0.01914)["llm.cost.total"] == 0.0001914
    assert repr(attrs(cost=0.3)["llm.cost.total"]) == "0.003"


def test_whole_number_counts_are_integers() -> None:
    got = attrs(req_units=2048.0, res_units="12", total_units=2060)
    assert [repr(got[f"portkey.{n}_units"]) for n in ("req", "res", "total")] == [
        "2048", "12", "2060",
    ]  # fmt: skip
    assert repr(attrs(req_units=2.5)["portkey.req_units"]) == "2.5"


def test_every_span_carries_the_mapping_version() -> None:
    assert isinstance(MAPPING_VERSION, int)
    assert attrs()["portkey.ingest.mapping_version"] == MAPPING_VERSION
    assert (
        attrs(request={"x": 1}, is_success=0)["portkey.ingest.mapping_version"] == MAPPING_VERSION
    )


def test_a_free_model_billed_zero_keeps_its_true_token_counts() -> None:
    """Tokens a self-hosted model processed are tokens, whatever the bill (issue 23, item 2)."""
    usage = {"prompt_tokens": 900, "completion_tokens": 120, "total_tokens": 1020}
    got = attrs(
        request_url="http://localhost:11434/v1/chat/completions", ai_org="ollama",
        ai_model="llama3.1:8b", response={"choices": [], "usage": usage}, cost=0,
        cache_status="MISS", is_success=True, response_status_code=200,
    )  # fmt: skip
    assert tokens(got) == {"prompt": 900, "completion": 120, "total": 1020}
    assert not tokens(got, "portkey.token_count.")
    assert got["llm.cost.total"] == 0.0


def test_a_semantic_cache_hit_is_zero_billed_like_an_exact_one() -> None:
    usage = {"prompt_tokens": 50, "completion_tokens": 5}
    got = attrs(response={"usage": usage}, cost=0, cache_status="semantic hit")
    assert tokens(got) == {"prompt": 0, "completion": 0, "total": 0}
    assert tokens(got, "portkey.token_count.") == {"prompt": 50, "completion": 5, "total": 55}


IMAGES = "https://api.portkey.ai/v1/images/generations"


def image_log(**fields: Any) -> dict[str, Any]:
    """A dall-e-3 request Portkey billed per image: no usage in the body, units 0."""
    log = {"request_url": IMAGES, "ai_org": "openai", "ai_model": "dall-e-3",
           "request": {"model": "dall-e-3", "prompt": "a lighthouse"},
           "response": {"created": 1, "data": [{"url": "https://example.invalid/1.png"}]},
           "req_units": 0, "res_units": 0, "total_units": 0, "cost": 4, "cost_currency": "USD",
           "is_success": True, "response_status_code": 200}  # fmt: skip
    return {**log, **fields}


def test_an_image_billed_per_image_carries_its_image_count_not_tokens() -> None:
    """Phoenix prices `completion_details.image` at the model's image price (issue 23)."""
    got = attrs(**image_log())
    assert tokens(got) == {"prompt": 0, "completion": 0, "total": 0, "completion_details.image": 1}
    assert got["llm.cost.total"] == 0.04
    three = {"created": 1, "data": [{"url": f"https://example.invalid/{i}.png"} for i in range(3)]}
    assert tokens(attrs(**image_log(response=three)))["completion_details.image"] == 3


def test_the_image_count_falls_back_to_the_requests_n_then_to_one() -> None:
    def images(request: dict[str, Any]) -> Any:
        no_data = {"created": 1}  # e.g. a log whose response body was not kept
        return tokens(attrs(**image_log(request=request, response=no_data)))[
            "completion_details.image"
        ]

    assert images({"model": "dall-e-2", "prompt": "a boat", "n": 4}) == 4
    assert images({"model": "dall-e-3", "prompt": "a boat"}) == 1
    assert images({"model": "dall-e-2", "prompt": "a boat", "n": 10**9}) == 100  # asked: capped


def test_an_image_cache_hit_made_no_image_so_phoenix_bills_nothing() -> None:
    got = attrs(**image_log(cost=0, cache_status="HIT"))
    assert tokens(got)["completion_details.image"] == 0
    assert tokens(got, "portkey.token_count.") == {"completion_details.image": 1}
    assert got["llm.cost.total"] == 0.0


def test_image_requests_billed_otherwise_carry_no_image_count() -> None:
    """Only what Portkey billed per image: not a failure, not a free or unbilled request, not
    one billed by tokens (gpt-image-1 states usage), not a chat."""
    failed = image_log(is_success=False, response_status_code=400, cost=0,
                       response={"error": {"message": "content policy"}})  # fmt: skip
    usage = {"input_tokens": 50, "output_tokens": 4160, "total_tokens": 4210}
    by_tokens = image_log(ai_model="gpt-image-1", response={"created": 1, "usage": usage,
                          "data": [{"b64_json": "AAAA"}]})  # fmt: skip
    cases = [failed, image_log(cost=0), image_log(cost=None), by_tokens,
             image_log(request_url=CHAT, response={"choices": []})]  # fmt: skip
    for log in cases:
        assert "completion_details.image" not in tokens(attrs(**log)), log
    assert tokens(attrs(**by_tokens))["completion"] == 4160


def test_one_sample_in_each_vocabulary_converts_to_the_same_span() -> None:
    with open(SAMPLES / "openai-chat.jsonl") as lines:
        spec = json.loads(lines.readline())
    docs = dict(spec)
    for name, alias in DOCS_NAMES.items():
        docs[alias] = docs.pop(name)
    assert set(docs) & set(DOCS_NAMES) == set()
    assert convert(**docs) == convert(**spec)
    assert attrs(**docs)["portkey.status_code"] == 200
    assert attrs(**docs)["llm.provider"] == "openai"
