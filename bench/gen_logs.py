"""Write N generated Portkey export records as JSONL: deterministic, realistic shapes and sizes.

Standalone (the benchmarks do not import `tests/`). Record `i` depends only on (seed, size, i),
so the first 1,000 lines of a 20,000-line file equal a 1,000-line file.

Two sizes:
- typical (~2 KB a line): a chat completion with a system prompt, one user turn, the answer,
  usage details and metadata. 75 % OpenAI chat, 20 % Anthropic messages (Portkey answers in
  OpenAI format), 5 % provider errors (429/400/500 with an error body).
- large (~25 KB a line, the size real exports reach with bodies): a RAG or agent conversation,
  a long system context, 10-16 turns, three tool definitions with JSON schemas, tool calls and
  tool results, and a long answer.

Text comes from slices of one pseudo-random word stream built once, so generating 200,000
records takes seconds and no two records carry the same text.

    python bench/gen_logs.py 20000 logs.jsonl --size typical
"""

from __future__ import annotations

import argparse
import json
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

BASE_TIME = datetime(2026, 6, 1, 8, 0, 0, tzinfo=UTC)
SIZES = ("typical", "large")
_WORD_TEXT = (
    "the of and to in is for that with on as by this be are from at or an it not we can will "
    "model request gateway latency token cost cache provider retry region deploy quota limit "
    "customer invoice refund policy account billing report summary table column query index "
    "python function error stack trace timeout config service cluster node pod memory cpu disk "
    "user session agent tool call result search document chunk answer question context prompt "
    "please check configure update review explain compare list describe verify ensure return"
)
_WORDS = tuple(_WORD_TEXT.split())
_CORPUS_CHARS = 1 << 20


def _corpus(seed: int) -> str:
    rng = random.Random(seed)
    words: list[str] = []
    length = 0
    while length < _CORPUS_CHARS:
        word = rng.choice(_WORDS)
        if rng.random() < 0.07:
            word += rng.choice(".,?:")
        words.append(word)
        length += len(word) + 1
    return " ".join(words)


class Generator:
    def __init__(self, seed: int = 7) -> None:
        self.seed = seed
        self.corpus = _corpus(seed)

    def text(self, rng: random.Random, chars: int) -> str:
        """About `chars` characters of words, from a random place in the corpus."""
        start = rng.randrange(0, len(self.corpus) - chars - 32)
        start = self.corpus.index(" ", start) + 1
        return self.corpus[start : start + chars].rstrip()

    def record(self, index: int, size: str = "typical", prefix: str = "bench") -> dict[str, Any]:
        rng = random.Random(f"{self.seed}-{size}-{prefix}-{index}")
        if size == "large":
            return self._large(rng, index, prefix)
        kind = rng.random()
        if kind < 0.05:
            return self._error(rng, index, prefix)
        if kind < 0.25:
            return self._anthropic(rng, index, prefix)
        return self._openai(rng, index, prefix)

    def lines(self, count: int, size: str = "typical", prefix: str = "bench") -> Iterator[str]:
        for index in range(count):
            yield json.dumps(self.record(index, size, prefix), separators=(",", ":"))

    # -- common fields ---------------------------------------------------------------------

    def _envelope(
        self, rng: random.Random, index: int, prefix: str, org: str, model: str, url: str
    ) -> dict[str, Any]:
        created = BASE_TIME + timedelta(milliseconds=index * 450 + rng.randrange(0, 400))
        metadata: dict[str, Any] = {
            "_user": f"user-{rng.randrange(0, 500)}",
            "env": "prod",
            "feature": rng.choice(("support-bot", "search", "summarise", "code-review")),
        }
        if rng.random() < 0.6:
            metadata["session_id"] = f"sess-{prefix}-{index // 8}"
        return {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{prefix}-{index}")),
            "trace_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{prefix}-trace-{index // 3}")),
            "created_at": created.strftime(
                "%a %b %d %Y %H:%M:%S GMT+0000 (Coordinated Universal Time)"
            ),
            "ai_org": org,
            "ai_model": model,
            "request_url": url,
            "cost_currency": "USD",
            "response_time": rng.randrange(250, 9000),
            "mode": rng.choice(("single", "single", "fallback", "loadbalance")),
            "config": rng.choice((None, "pc-prod-7d3e11")),
            "prompt_slug": None,
            "metadata": metadata,
        }

    @staticmethod
    def _units(record: dict[str, Any], prompt: int, completion: int, cents: float) -> None:
        record.update(
            req_units=prompt,
            res_units=completion,
            total_units=prompt + completion,
            cost=round(cents, 6),
            is_success=True,
            response_status_code=200,
        )

    def _completion(
        self,
        rng: random.Random,
        model: str,
        message: dict[str, Any],
        prompt: int,
        completion: int,
        finish: str = "stop",
    ) -> dict[str, Any]:
        cached = rng.choice((0, 0, 0, 1024))
        return {
            "id": f"chatcmpl-{rng.getrandbits(96):024x}",
            "object": "chat.completion",
            "created": 1780000000 + rng.randrange(0, 10_000_000),
            "model": model,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
                "prompt_tokens_details": {"cached_tokens": min(cached, prompt), "audio_tokens": 0},
                "completion_tokens_details": {
                    "reasoning_tokens": 0,
                    "audio_tokens": 0,
                    "accepted_prediction_tokens": 0,
                    "rejected_prediction_tokens": 0,
                },
            },
            "service_tier": "default",
            "system_fingerprint": f"fp_{rng.getrandbits(40):010x}",
        }

    # -- typical -----------------------------------------------------------------------------

    def _openai(self, rng: random.Random, index: int, prefix: str) -> dict[str, Any]:
        model = rng.choice(("gpt-4o-mini", "gpt-4o", "gpt-4.1-mini"))
        record = self._envelope(
            rng, index, prefix, "openai", model, "https://api.openai.com/v1/chat/completions"
        )
        prompt, completion = rng.randrange(80, 900), rng.randrange(40, 400)
        record["request"] = {
            "model": model,
            "messages": [
                {"role": "system", "content": self.text(rng, 160)},
                {"role": "user", "content": self.text(rng, rng.randrange(200, 460))},
            ],
            "temperature": 0.2,
            "max_tokens": 600,
        }
        answer = {
            "role": "assistant",
            "content": self.text(rng, rng.randrange(280, 560)),
            "refusal": None,
            "annotations": [],
        }
        record["response"] = self._completion(
            rng, f"{model}-2024-07-18", answer, prompt, completion
        )
        self._units(record, prompt, completion, (prompt * 0.015 + completion * 0.06) / 100)
        return record

    def _anthropic(self, rng: random.Random, index: int, prefix: str) -> dict[str, Any]:
        model = "claude-sonnet-4-20250514"
        record = self._envelope(
            rng, index, prefix, "anthropic", model, "https://api.anthropic.com/v1/messages"
        )
        prompt, completion = rng.randrange(200, 2000), rng.randrange(40, 500)
        record["request"] = {
            "model": model,
            "max_tokens": 1024,
            "messages": [
                {
                    "role": "system",
                    "content": [
                        {
                            "type": "text",
                            "text": self.text(rng, 200),
                            "cache_control": {"type": "ephemeral"},
                        }
                    ],
                },
                {"role": "user", "content": self.text(rng, rng.randrange(250, 500))},
            ],
        }
        answer = {"role": "assistant", "content": self.text(rng, rng.randrange(300, 600))}
        response = self._completion(rng, model, answer, prompt, completion)
        response["provider"] = "anthropic"
        record["response"] = response
        self._units(record, prompt, completion, (prompt * 0.3 + completion * 1.5) / 100)
        return record

    def _error(self, rng: random.Random, index: int, prefix: str) -> dict[str, Any]:
        model = "gpt-4o"
        record = self._envelope(
            rng, index, prefix, "openai", model, "https://api.openai.com/v1/chat/completions"
        )
        status, kind, code = rng.choice(
            (
                (429, "tokens", "rate_limit_exceeded"),
                (400, "invalid_request_error", "context_length_exceeded"),
                (500, "server_error", None),
            )
        )
        record["request"] = {
            "model": model,
            "messages": [{"role": "user", "content": self.text(rng, 400)}],
        }
        record["response"] = {
            "error": {"message": self.text(rng, 180), "type": kind, "param": None, "code": code}
        }
        record.update(
            req_units=0,
            res_units=0,
            total_units=0,
            cost=0,
            is_success=False,
            response_status_code=status,
        )
        return record

    # -- large -------------------------------------------------------------------------------

    def _tools(self, rng: random.Random) -> list[dict[str, Any]]:
        tools = []
        for name in ("search_documents", "get_account", "create_ticket"):
            tools.append(
                {
                    "type": "function",
                    "function": {
                        "name": name,
                        "description": self.text(rng, 300),
                        "parameters": {
                            "type": "object",
                            "properties": {
                                field: {"type": "string", "description": self.text(rng, 90)}
                                for field in ("query", "account_id", "priority", "notes")
                            },
                            "required": ["query"],
                        },
                    },
                }
            )
        return tools

    def _large(self, rng: random.Random, index: int, prefix: str) -> dict[str, Any]:
        model = rng.choice(("gpt-4o", "gpt-4.1"))
        record = self._envelope(
            rng, index, prefix, "openai", model, "https://api.openai.com/v1/chat/completions"
        )
        messages: list[dict[str, Any]] = [{"role": "system", "content": self.text(rng, 4800)}]
        for turn in range(rng.randrange(4, 7)):
            messages.append({"role": "user", "content": self.text(rng, rng.randrange(300, 900))})
            call_id = f"call_{rng.getrandbits(64):016x}"
            arguments = json.dumps({"query": self.text(rng, 80), "priority": "normal"})
            messages.append(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": call_id,
                            "type": "function",
                            "function": {"name": "search_documents", "arguments": arguments},
                        }
                    ],
                }
            )
            messages.append(
                {"role": "tool", "tool_call_id": call_id, "content": self.text(rng, 1500)}
            )
            if turn % 2:
                messages.append({"role": "assistant", "content": self.text(rng, 700)})
        prompt, completion = rng.randrange(5000, 12000), rng.randrange(300, 1500)
        record["request"] = {
            "model": model,
            "messages": messages,
            "tools": self._tools(rng),
            "tool_choice": "auto",
            "temperature": 0.3,
            "max_tokens": 2000,
        }
        answer = {
            "role": "assistant",
            "content": self.text(rng, 2500),
            "refusal": None,
            "annotations": [],
        }
        record["response"] = self._completion(
            rng, f"{model}-2024-08-06", answer, prompt, completion
        )
        self._units(record, prompt, completion, (prompt * 0.25 + completion * 1.0) / 100)
        return record


def write_logs(
    path: Path, count: int, size: str = "typical", seed: int = 7, prefix: str = "bench"
) -> int:
    """Write `count` records to `path`; return the file size in bytes."""
    generator = Generator(seed)
    with path.open("w", encoding="utf-8") as handle:
        for line in generator.lines(count, size, prefix):
            handle.write(line + "\n")
    return path.stat().st_size


def split_file(path: Path, parts: int, out_dir: Path) -> list[Path]:
    """Cut a JSONL file into `parts` consecutive shards (shard-0.jsonl, ...)."""
    lines = path.read_bytes().splitlines(keepends=True)
    per = -(-len(lines) // parts)
    shards = []
    for part in range(parts):
        shard = out_dir / f"shard-{part}.jsonl"
        shard.write_bytes(b"".join(lines[part * per : (part + 1) * per]))
        shards.append(shard)
    return shards


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("count", type=int, help="number of records")
    parser.add_argument("out", type=Path, help="JSONL file to write")
    parser.add_argument("--size", choices=SIZES, default="typical")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--prefix", default="bench", help="makes the log ids differ between sets")
    args = parser.parse_args()
    size = write_logs(args.out, args.count, args.size, args.seed, args.prefix)
    print(f"wrote {args.count} {args.size} records to {args.out}: {size / 1e6:.1f} MB, "
          f"{size / max(args.count, 1):.0f} B a line")  # fmt: skip


if __name__ == "__main__":
    main()
