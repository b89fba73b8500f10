"""A generated corpus of sound records and many kinds of damage (issue 21), for the hostile
corpus test and the damage benchmark (bench/bench_damage.py).

`build(seed, folder)` writes the files: each category of damage appears at least once, the rest
is drawn at random, and the order is shuffled, so a damaged line or file sits anywhere between
sound ones. `sound=N` adds N more sound records spread over the files (a run with some weight).
"""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.logs_factory import make_log

MAX_LINE_BYTES = 200_000


@dataclass
class Corpus:
    seed: int
    folder: Path
    counter: int = 0
    file: int = 0  # the file being generated
    sound_by_file: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    others: list[dict[str, Any]] = field(default_factory=list)  # may be stored or quarantined
    damaged_files: int = 0  # files whose rest (or whole) is one quarantine entry

    @property
    def must_store(self) -> list[dict[str, Any]]:
        return [record for records in self.sound_by_file.values() for record in records]

    def record(self, **fields: Any) -> dict[str, Any]:
        self.counter += 1
        return {**make_log(self.counter, prefix=f"corpus-{self.seed}"), **fields}

    def sound(self, **fields: Any) -> bytes:
        return self.sound_record(self.record(**fields))

    def sound_record(self, record: dict[str, Any]) -> bytes:
        self.sound_by_file.setdefault(self.file, []).append(record)
        return json.dumps(record).encode()

    def maybe(self, record: dict[str, Any]) -> bytes:
        self.others.append(record)
        return json.dumps(record).encode()


Lines = list[bytes]


# ---- line damage: each returns the lines it puts in a file -------------------------------


def overflowing_sums(c: Corpus, r: random.Random) -> Lines:
    """A child, then its parent, each with 2**62 tokens: stored, clamped, with a warning."""
    trace = f"ovf-{c.counter}"
    usage = {"prompt_tokens": 2**62, "completion_tokens": 2**62, "total_tokens": 2**63 - 1}
    lines = []
    for span_id, parent in ((f"{trace}-b", f"{trace}-a"), (f"{trace}-a", None)):
        record = c.record(trace_id=trace, span_id=span_id, parent_span_id=parent,
                          req_units=2**62, res_units=2**62, total_units=2**63 - 1)  # fmt: skip
        record["response"] = {**record["response"], "usage": usage}
        lines.append(c.sound_record(record))
    return lines


LINE_DAMAGE: dict[str, Callable[[Corpus, random.Random], Lines]] = {
    "array": lambda c, r: [b"[1, 2, 3]"],
    "string": lambda c, r: [b'"just a string"'],
    "number": lambda c, r: [str(r.randint(-(10**30), 10**30)).encode()],
    "null": lambda c, r: [b"null"],
    "invalid_utf8": lambda c, r: [c.maybe(c.record())[:-1] + b', "x": "\xff\xfe\xc0"}'],
    "cut_json": lambda c, r: [c.maybe(c.record())[: r.randint(1, 60)]],
    "huge_line": lambda c, r: [b'{"id": "huge", "pad": "' + b"z" * (MAX_LINE_BYTES + 10) + b'"}'],
    "before_1970": lambda c, r: [c.maybe(c.record(created_at="1969-12-31T23:59:59Z"))],
    "after_2262": lambda c, r: [c.maybe(c.record(created_at="9999-12-31T23:59:59Z"))],
    "garbage_date": lambda c, r: [c.maybe(c.record(created_at="yesterday-ish"))],
    "no_id": lambda c, r: [c.maybe({k: v for k, v in c.record().items() if k != "id"})],
    "object_id": lambda c, r: [c.maybe(c.record(id={"nested": True}))],
    "overflowing_sums": overflowing_sums,
    "beyond_64_bits": lambda c, r: [
        c.sound(
            response_status_code=10**20, total_units=2**64, cost=10**25, retry_success_count=2**70
        )
    ],
    "nul_and_escapes": lambda c, r: [c.sound(metadata={"n": "a\u0000b\x1b[31m\r\n\u2028"})],
    "lone_surrogates": lambda c, r: [c.sound()[:-1] + b', "ai_model": "g\\ud800x\\udfff"}'],
    "deep_nesting": lambda c, r: [
        c.maybe(c.record(request={"x": []}))[:-1].replace(
            b'"x": []', b'"x": ' + b"[" * 100_000 + b"]" * 100_000
        )
        + b"}"
    ],
    "duplicate": lambda c, r: [line := c.sound(), line],
    "huge_response_time": lambda c, r: [c.sound(response_time=10**300)],
    "bom": lambda c, r: [b"\xef\xbb\xbf" + c.sound()],
    "crlf": lambda c, r: [c.sound() + b"\r"],
    "blank_lines": lambda c, r: [b"", b"   \t", b""],
    "orphan_child": lambda c, r: [
        c.sound(trace_id="orphans", span_id=f"o-{c.counter}", parent_span_id="nobody-has-this")
    ],
    "control_chars_in_id": lambda c, r: [c.sound(id=f"id-\x1b]0;x\x07-{c.counter}\u0085")],
    "json_in_strings": lambda c, r: [
        c.sound(request='{"model": "gpt-4o", "messages": "{no', metadata='{"a": [1, {"b": ')
    ],
    "many_keys": lambda c, r: [c.sound(metadata={f"k{i}": i for i in range(5_000)})],
    "long_text": lambda c, r: [
        c.sound(request={"messages": [{"role": "user", "content": "w " * 80_000}]})
    ],
    "quarantine_entry_bad_raw": lambda c, r: [
        json.dumps(
            {"time": "t", "source": "s", "line": 1, "reason": "r", "raw": "{still bad"}
        ).encode()
    ],
}


# ---- file damage: each writes one file ----------------------------------------------------


def truncated_gzip(c: Corpus, r: random.Random, path: Path, lines: Lines) -> None:
    """Sound lines in a first member, then a second member cut off mid-stream."""
    tail = b"".join(c.maybe(c.record()) + b"\n" for _ in range(r.randint(5, 30)))
    cut = gzip.compress(tail)
    gz(path).write_bytes(gzip.compress(b"\n".join(lines) + b"\n")
                         + cut[: r.randint(12, len(cut) - 1)])  # fmt: skip


def corrupt_gzip(c: Corpus, r: random.Random, path: Path, lines: Lines) -> None:
    """Sound lines in a first member, then a member whose header is not gzip."""
    tail = bytearray(gzip.compress(c.maybe(c.record()) + b"\n"))
    tail[r.choice([0, 1])] ^= 0x55
    gz(path).write_bytes(gzip.compress(b"\n".join(lines) + b"\n") + tail)


def unreadable(c: Corpus, r: random.Random, path: Path, lines: Lines) -> None:
    c.sound_by_file.pop(c.file, None)  # never read: nothing of it can be stored
    path.symlink_to("/proc/self/mem")  # listed as a file; every read fails (even for root)


def gz(path: Path) -> Path:
    return path.with_name(path.name + ".gz")


FILE_DAMAGE = {"truncated_gzip": truncated_gzip, "corrupt_gzip": corrupt_gzip,
               "unreadable": unreadable}  # fmt: skip


def build(seed: int, folder: Path, files: int = 8, sound: int = 0) -> Corpus:
    r = random.Random(seed)
    corpus = Corpus(seed, folder)
    names = list(LINE_DAMAGE)
    per_file: list[Lines] = [[] for _ in range(files)]
    for index, name in enumerate([*names, *r.choices(names, k=10)]):
        corpus.file = index % files
        per_file[corpus.file].extend(LINE_DAMAGE[name](corpus, r))
    for index, lines in enumerate(per_file):
        corpus.file = index
        extra = sound // files + (index < sound % files)
        lines.extend(corpus.sound() for _ in range(r.randint(3, 12) + extra))
        r.shuffle(lines)
    damage = list(FILE_DAMAGE)
    r.shuffle(damage)
    # File damage in the middle of the directory, never first or last.
    damaged = dict(zip(r.sample(range(1, files - 1), len(damage)), damage, strict=True))
    for index, lines in enumerate(per_file):
        path = folder / f"export-{index:02d}.jsonl"
        corpus.file = index
        if index in damaged:
            FILE_DAMAGE[damaged[index]](corpus, r, path, lines)
            corpus.damaged_files += 1
        elif r.random() < 0.5:
            gz(path).write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
        else:
            path.write_bytes(b"\n".join(lines) + b"\n")
    (folder / "export-empty.jsonl").write_bytes(b"")
    return corpus
