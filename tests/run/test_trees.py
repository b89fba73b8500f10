"""Trace trees are a function of the logs, not of their order (issue 16, part 2)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from ingest.phoenix.admin.local_server import LocalPhoenix
from tests.conftest import invoke_cli, read_spans, run_cli
from tests.logs_factory import make_log, write_jsonl

# agent -> (plan, act); act -> tool; tool -> retry (two logs claim one Portkey span id);
# lone: its parent is an application span that is not a logged request.
SHAPE = [("agent", None), ("plan", "agent"), ("act", "agent"), ("tool", "act"),
         ("tool", "act"), ("lone", "app-span")]  # fmt: skip


def tree_logs(trace: str = "agent-run") -> list[dict]:
    logs = []
    for i, (name, parent) in enumerate(SHAPE):
        log = make_log(i, prefix=trace)
        log.update(trace_id=trace, span_id=f"{trace}-{name}", span_name=name,
                   parent_span_id=f"{trace}-{parent}" if parent else None)  # fmt: skip
        logs.append(log)
    return logs


def convert(path: Path) -> dict[str, dict]:
    result = invoke_cli("convert", str(path), "--project", "trees")
    assert result.returncode == 0, result.stderr
    return {span["span_id"]: span for span in map(json.loads, result.stdout.splitlines())}


def test_the_same_file_forwards_reversed_and_shuffled_gives_identical_spans(
    tmp_path: Path,
) -> None:
    logs = tree_logs("t1") + tree_logs("t2")
    forwards = convert(write_jsonl(tmp_path / "forwards.jsonl", logs))
    backwards = convert(write_jsonl(tmp_path / "reversed.jsonl", logs[::-1]))
    shuffled = logs[:]
    random.Random(7).shuffle(shuffled)
    assert forwards == backwards == convert(write_jsonl(tmp_path / "shuffled.jsonl", shuffled))

    by_name = {(s["attributes"]["portkey.trace_id"], s["attributes"]["portkey.span_name"]): s
               for s in backwards.values()}  # fmt: skip
    agent, act = by_name[("t1", "agent")], by_name[("t1", "act")]
    assert agent["parent_span_id"] is None
    assert by_name[("t1", "plan")]["parent_span_id"] == agent["span_id"]
    assert act["parent_span_id"] == agent["span_id"]
    tools = [s for s in backwards.values() if s["attributes"]["portkey.span_name"] == "tool"]
    assert all(s["parent_span_id"] == act["span_id"] for s in tools if "t1" in json.dumps(s))
    assert by_name[("t1", "lone")]["parent_span_id"] is None


def test_a_parent_delivered_by_an_earlier_run_is_found_and_resync_fixes_the_reverse(
    phoenix: LocalPhoenix, project: str, tmp_path: Path
) -> None:
    logs = tree_logs()
    parents = write_jsonl(tmp_path / "parents.jsonl", logs[:2])  # agent, plan
    children = write_jsonl(tmp_path / "children.jsonl", logs[2:])  # act, tool, tool, lone

    def imported(*paths: Path) -> dict[str, dict]:
        for path in paths:
            result = run_cli("import", str(path), "--endpoint", phoenix.url, "--project", project)
            assert result.returncode == 0, result.stderr
        return {s["attributes"]["portkey.log_id"]: s for s in read_spans(phoenix.url, project)}

    # Children first (their parent's window does not exist yet): `act` stays a root span.
    spans = imported(children)
    assert spans[logs[2]["id"]]["parent_id"] is None
    spans = imported(parents)
    agent_span = spans[logs[0]["id"]]["context"]["span_id"]
    assert spans[logs[1]["id"]]["parent_id"] == agent_span
    assert spans[logs[2]["id"]]["parent_id"] is None  # written once: still unlinked

    fixed = run_cli("resync", str(children), "--yes", "--endpoint", phoenix.url,
                    "--project", project)  # fmt: skip
    assert fixed.returncode == 0, fixed.stderr
    spans = {s["attributes"]["portkey.log_id"]: s for s in read_spans(phoenix.url, project)}
    assert len(spans) == len(logs)
    assert spans[logs[2]["id"]]["parent_id"] == agent_span  # found in the index of run 2
    act_span = spans[logs[2]["id"]]["context"]["span_id"]
    assert spans[logs[3]["id"]]["parent_id"] == act_span


def test_the_index_resolves_a_shared_span_id_the_same_way_in_any_order(tmp_path: Path) -> None:
    from ingest.convert.ids import ParentIndex
    from ingest.convert.records import parse_record
    from ingest.run.state import ParentStore

    logs = [parse_record(log) for log in tree_logs()]
    child = logs[3]  # tool -> act
    for order in (logs, logs[::-1]):
        index = ParentIndex()
        for record in order:
            index.remember(record)
        assert index.parent_of(logs[5]) is None  # its parent is not a logged request
        retry_parent = index.parent_of(
            parse_record({**tree_logs()[5], "id": "x", "parent_span_id": "agent-run-tool"})
        )
        assert retry_parent == min(logs[3].log_id, logs[4].log_id)
        assert index.parent_of(child) == logs[2].log_id

    store = ParentStore(tmp_path / "parents.sqlite3", limit=3)
    store.add([("p", "t", "a", "log-b"), ("p", "t", "a", "log-a"), ("p", "t", "b", "log-c")])
    assert store.lookup("p", "t", "a") == "log-a" and store.lookup("p", "u", "a") is None
    store.add([("p", "t", str(i), f"l{i}") for i in range(5)])
    assert store.lookup("p", "t", "4") == "l4" and store.lookup("p", "t", "a") is None  # bounded
    assert ParentStore(tmp_path / "parents.sqlite3").lookup("other", "t", "4") is None


def test_the_parent_index_is_bounded_in_bytes_as_well_as_in_entries() -> None:
    """1,000 parents with 256-character ids in a 100 KB index: about the newest 98 are kept."""
    from ingest.convert.ids import ParentIndex
    from ingest.convert.records import parse_record

    def log(index: int, **fields: str) -> Any:
        ids = {"id": f"{index:04d}" + "l" * 252, "trace_id": "t" * 256}
        return parse_record({**ids, "created_at": "2026-07-25T11:14:18Z", **fields})

    index = ParentIndex(max_bytes=100_000)
    for n in range(1_000):
        index.remember(log(n, span_id=f"{n:04d}" + "s" * 252))
    child = [log(5_000 + n, parent_span_id=f"{n:04d}" + "s" * 252) for n in (0, 950, 999)]
    assert [index.parent_of(c) for c in child] == [None, log(950).log_id, log(999).log_id]
