"""Generated Portkey export records, for tests that need many logs (not a fixture file)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

BASE_TIME = datetime(2026, 8, 1, 9, 0, 0, tzinfo=UTC)


def js_date(moment: datetime) -> str:
    """JavaScript Date.toString() in UTC, as Portkey's export files carry it."""
    return moment.strftime("%a %b %d %Y %H:%M:%S GMT+0000 (Coordinated Universal Time)")


def make_log(index: int, start: datetime = BASE_TIME, prefix: str = "log") -> dict[str, Any]:
    created = start + timedelta(seconds=index)
    prompt, completion = 20 + index % 50, 5 + index % 17
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{prefix}-{index}")),
        "trace_id": f"trace-{prefix}-{index // 3}",
        "created_at": js_date(created),
        "request": {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": f"Question number {index}?"}],
            "temperature": 0.2,
        },
        "response": {
            "id": f"chatcmpl-{index}",
            "object": "chat.completion",
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": f"Answer number {index}."},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        },
        "is_success": True,
        "ai_org": "openai",
        "ai_model": "gpt-4o-mini",
        "req_units": prompt,
        "res_units": completion,
        "total_units": prompt + completion,
        "request_url": "https://api.openai.com/v1/chat/completions",
        "cost": round((prompt * 0.015 + completion * 0.06) / 1000, 6),
        "cost_currency": "USD",
        "response_time": 300 + index % 700,
        "response_status_code": 200,
        "mode": "single",
        "config": None,
        "prompt_slug": None,
        "metadata": {"_user": f"user-{index % 7}", "env": "test"},
    }


def write_jsonl(path: Path, records: Iterable[dict[str, Any] | str]) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            line = record if isinstance(record, str) else json.dumps(record)
            handle.write(line + "\n")
    return path


def write_logs(path: Path, count: int, prefix: str = "log") -> list[dict[str, Any]]:
    logs = [make_log(index, prefix=prefix) for index in range(count)]
    write_jsonl(path, logs)
    return logs


# Body keys whose values are not what was said: names of models, shapes, roles, outcomes, and
# the settings --drop-content keeps (convert/bounds.py); tool definitions are kept too.
_NOT_CONTENT = frozenset(
    {"model", "modelVersion", "type", "object", "role", "finish_reason", "stop_reason",
     "finishReason", "stopReason", "status", "tools", "encoding_format", "reasoning",
     "reasoning_effort", "taskType", "tool_choice", "response_format", "user", "size",
     "quality"}
)  # fmt: skip
MARKER = "ZQXMARK"


def _plant(value: Any, counter: list[int]) -> Any:
    if isinstance(value, dict):
        return {k: v if k in _NOT_CONTENT else _plant(v, counter) for k, v in value.items()}
    if isinstance(value, list):
        return [_plant(item, counter) for item in value]
    if isinstance(value, str):
        counter[0] += 1
        return f"{MARKER}{counter[0]}:{value}"
    return value


def planted_sample_logs(samples: Path) -> list[dict[str, Any]]:
    """Every record of the sample logs with a numbered marker at the head of every content
    string of its request and response bodies (messages, tool-call arguments and results,
    images, audio, embedded texts, prompt variables and templates, error texts)."""
    records, counter = [], [0]
    for path in sorted(samples.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if not isinstance(record, dict):
                continue
            for body in ("request", "response"):
                if body in record:
                    record[body] = _plant(record[body], counter)
            records.append(record)
    return records
