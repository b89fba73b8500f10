"""Reading export files: plain and gzip JSONL, resuming by offset, fingerprints, directories."""

from __future__ import annotations

import gzip
import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.convert.records import LogRecord, RecordError, parse_record
from ingest.errors import DamagedFile, SourceError
from ingest.sources.files import (
    SourceLine,
    chunk_lines,
    decode_line,
    expand_paths,
    fingerprint,
    read_lines,
)

CONTENT = (
    b'{"id": "log-1", "created_at": "2026-07-25T11:14:18Z"}\n'
    b"\n"
    b'{"id": "log-2", "created_at": "2026-07-25T11:14:19Z"}\n'
    b"   \n"
    b'{"id": "log-3", "created_at": "2026-07-25T11:14:20Z"}\n'
    b"not json at all\n"
)


def write(path: Path, content: bytes) -> Path:
    """Write `content` to `path`, gzip-compressed when the name ends in .gz."""
    path.write_bytes(gzip.compress(content) if path.name.endswith(".gz") else content)
    return path


def shape(lines: list[SourceLine]) -> list[tuple[int, int, bytes]]:
    return [(line.line_no, line.end_offset, line.data) for line in lines]


@pytest.fixture(params=["export.jsonl", "export.jsonl.gz"])
def export(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    return write(tmp_path / request.param, CONTENT)


def test_non_blank_lines_come_with_their_line_number_and_end_offset(export: Path) -> None:
    lines = list(read_lines(export))
    raw = CONTENT.split(b"\n")
    assert shape(lines) == [
        (1, len(raw[0]) + 1, raw[0]),
        (3, sum(len(r) + 1 for r in raw[:3]), raw[2]),
        (5, sum(len(r) + 1 for r in raw[:5]), raw[4]),
        (6, len(CONTENT), b"not json at all"),
    ]
    assert all(line.path == export for line in lines)


def test_plain_and_gzip_files_give_the_same_lines(tmp_path: Path) -> None:
    plain = list(read_lines(write(tmp_path / "a.jsonl", CONTENT)))
    packed = list(read_lines(write(tmp_path / "a.jsonl.gz", CONTENT)))
    assert shape(plain) == shape(packed)
    assert len(plain) == 4


def test_resuming_after_any_line_yields_exactly_the_lines_after_it(export: Path) -> None:
    lines = list(read_lines(export))
    for index, line in enumerate(lines):
        rest = read_lines(export, start_offset=line.end_offset, start_line=line.line_no)
        assert shape(list(rest)) == shape(lines[index + 1 :]), line.line_no


def test_resuming_from_the_start_reads_everything(export: Path) -> None:
    assert shape(list(read_lines(export, 0, 0))) == shape(list(read_lines(export)))


@pytest.mark.parametrize("name", ["crlf.jsonl", "crlf.jsonl.gz"])
def test_crlf_line_endings_are_stripped_and_counted_in_offsets(tmp_path: Path, name: str) -> None:
    path = write(tmp_path / name, b'{"a": 1}\r\n\r\n{"b": 2}\r\n')
    lines = list(read_lines(path))
    assert shape(lines) == [(1, 10, b'{"a": 1}'), (3, 22, b'{"b": 2}')]
    assert [decode_line(line) for line in lines] == [{"a": 1}, {"b": 2}]
    assert shape(list(read_lines(path, lines[0].end_offset, lines[0].line_no))) == shape(lines[1:])


@pytest.mark.parametrize("name", ["tail.jsonl", "tail.jsonl.gz"])
def test_a_last_line_without_newline_is_read(tmp_path: Path, name: str) -> None:
    content = b'{"a": 1}\n{"b": 2}'
    lines = list(read_lines(write(tmp_path / name, content)))
    assert shape(lines) == [(1, 9, b'{"a": 1}'), (2, len(content), b'{"b": 2}')]


def test_a_file_of_blank_lines_yields_nothing(tmp_path: Path) -> None:
    assert list(read_lines(write(tmp_path / "blank.jsonl", b"\n  \n\t\r\n\n"))) == []
    assert list(read_lines(write(tmp_path / "empty.jsonl", b""))) == []


# ---- decode_line --------------------------------------------------------------------


def line_of(data: bytes) -> SourceLine:
    return SourceLine(Path("x.jsonl"), 1, len(data) + 1, data)


def test_decode_line_returns_the_json_value() -> None:
    assert decode_line(line_of(b'{"id": "log-1", "n": [1, 2.5]}')) == {"id": "log-1", "n": [1, 2.5]}
    assert decode_line(line_of(b"[1]")) == [1]


def test_decode_line_rejects_non_utf8_with_the_byte_position() -> None:
    with pytest.raises(RecordError) as caught:
        decode_line(line_of(b'{"id": "\xff"}'))
    assert str(caught.value) == "not UTF-8 text (byte 8)"


@pytest.mark.parametrize("data", [b"not json at all", b'{"id": "log-1"', b"{'id': 1}"])
def test_decode_line_rejects_invalid_json_with_the_parser_reason(data: bytes) -> None:
    with pytest.raises(RecordError) as caught:
        decode_line(line_of(data))
    assert str(caught.value).startswith("not valid JSON: ")
    assert "line 1 column" in str(caught.value)


def test_a_deeply_nested_line_is_a_record_error_not_a_crash() -> None:
    with pytest.raises(RecordError):
        decode_line(line_of(b"[" * 100_000))


# ---- fingerprint --------------------------------------------------------------------


def test_fingerprint_follows_the_content_not_the_name(tmp_path: Path) -> None:
    first = fingerprint(write(tmp_path / "a.jsonl", CONTENT))
    renamed = fingerprint(write(tmp_path / "other-name.jsonl", CONTENT))
    changed = fingerprint(write(tmp_path / "a2.jsonl", CONTENT.replace(b"log-3", b"log-4")))
    appended = fingerprint(write(tmp_path / "a3.jsonl", CONTENT + b'{"id": "log-5"}\n'))
    assert first == renamed
    assert len({first, changed, appended}) == 3
    assert len(first) == 64 and int(first, 16) >= 0


def test_fingerprint_of_a_renamed_file_is_unchanged(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl.gz", CONTENT)
    before = fingerprint(path)
    moved = path.rename(tmp_path / "b.jsonl.gz")
    assert fingerprint(moved) == before


# ---- expand_paths -------------------------------------------------------------------


def test_a_directory_expands_to_its_export_files_sorted(tmp_path: Path) -> None:
    for name in (
        "b.jsonl",
        "a.jsonl.gz",
        "c.ndjson",
        "d.ndjson.gz",
        "EXPECTED.json",
        "README.md",
        "notes.txt",
        "e.jsonl.bak",
    ):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "deep.jsonl").write_bytes(b"")
    (tmp_path / "looks-like.jsonl").mkdir()
    assert expand_paths([tmp_path]) == [
        tmp_path / "a.jsonl.gz",
        tmp_path / "b.jsonl",
        tmp_path / "c.ndjson",
        tmp_path / "d.ndjson.gz",
    ]


def test_files_are_kept_as_given_and_in_order(tmp_path: Path) -> None:
    folder = tmp_path / "dir"
    folder.mkdir()
    (folder / "x.jsonl").write_bytes(b"")
    given_file = tmp_path / "z.jsonl"
    missing = tmp_path / "missing.jsonl"
    assert expand_paths([given_file, folder, missing]) == [given_file, folder / "x.jsonl", missing]


def test_an_empty_directory_expands_to_nothing(tmp_path: Path) -> None:
    assert expand_paths([tmp_path]) == []


# ---- unreadable files ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["missing.jsonl", "missing.jsonl.gz"])
def test_a_missing_file_is_a_source_error_naming_the_path(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    with pytest.raises(SourceError) as caught:
        list(read_lines(path))
    assert str(path) in str(caught.value)
    assert "No such file or directory" in str(caught.value)
    with pytest.raises(SourceError, match=str(path)):
        fingerprint(path)


def test_a_directory_given_as_a_file_is_a_source_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "folder.jsonl"
    path.mkdir()
    with pytest.raises(SourceError) as caught:
        list(read_lines(path))
    assert str(path) in str(caught.value)
    with pytest.raises(SourceError, match=str(path)):
        fingerprint(path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_a_file_without_read_permission_is_a_source_error_naming_the_path(tmp_path: Path) -> None:
    path = write(tmp_path / "secret.jsonl", CONTENT)
    path.chmod(0)
    try:
        with pytest.raises(SourceError) as caught:
            list(read_lines(path))
        assert str(path) in str(caught.value)
        assert "Permission denied" in str(caught.value)
    finally:
        path.chmod(0o600)


def test_a_truncated_gzip_is_a_source_error_naming_the_path(tmp_path: Path) -> None:
    content = b"".join(
        b'{"id": "log-%d", "created_at": "2026-07-25T11:14:18Z"}\n' % n for n in range(2000)
    )
    packed = gzip.compress(content)
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(packed[: len(packed) // 2])
    read: list[SourceLine] = []
    with pytest.raises(SourceError) as caught:
        read.extend(read_lines(path))
    message = str(caught.value)
    assert str(path) in message
    assert "truncated or corrupt" in message
    assert 0 < len(read) < 2000  # what came before the cut was still delivered
    assert isinstance(caught.value, DamagedFile)
    assert (caught.value.offset, caught.value.line) == (read[-1].end_offset, read[-1].line_no)
    assert f"past byte {read[-1].end_offset:,} (line {read[-1].line_no:,}):" in message
    assert content[: caught.value.offset].endswith(b"\n")  # whole lines only


def test_a_file_that_is_not_gzip_but_named_gz_is_a_source_error(tmp_path: Path) -> None:
    path = tmp_path / "plain.jsonl.gz"
    path.write_bytes(CONTENT)
    with pytest.raises(SourceError) as caught:
        list(read_lines(path))
    assert str(path) in str(caught.value)
    assert "truncated or corrupt" in str(caught.value)


# ---- property: every non-blank line is accounted for exactly once --------------------

record_lines = st.builds(
    lambda log_id, second: json.dumps(
        {"id": log_id, "created_at": f"2026-07-25T11:14:{second:02d}Z"}
    ).encode(),
    st.text(min_size=1, max_size=12).filter(str.strip),
    st.integers(0, 59),
)
blank_lines = st.sampled_from([b"", b" ", b"\t", b"\r", b"  \t "])
raw_lines = st.binary(max_size=40).map(lambda data: data.replace(b"\n", b""))
tagged_lines = st.lists(
    st.tuples(st.just("record"), record_lines)
    | st.tuples(st.just("blank"), blank_lines)
    | st.tuples(st.just("raw"), raw_lines),
    max_size=15,
)


@settings(max_examples=200, deadline=None)
@given(
    tagged_lines,
    st.sampled_from([b"\n", b"\r\n"]),
    st.booleans(),
    st.sampled_from(["in.jsonl", "in.jsonl.gz"]),
)
def test_every_non_blank_line_becomes_one_record_or_one_record_error(
    tagged: list[tuple[str, bytes]], newline: bytes, final_newline: bool, name: str
) -> None:
    content = newline.join(data for _, data in tagged)
    if final_newline and tagged:
        content += newline
    with tempfile.TemporaryDirectory() as folder:
        path = write(Path(folder) / name, content)
        outcomes: list[LogRecord | RecordError] = []
        lines = list(read_lines(path))
        for line in lines:
            try:
                outcomes.append(parse_record(decode_line(line)))
            except RecordError as exc:
                outcomes.append(exc)

    expected = [(no, kind, data.strip()) for no, (kind, data) in enumerate(tagged, 1)]
    expected = [entry for entry in expected if entry[2]]  # blank lines are skipped
    assert [(line.line_no, line.data) for line in lines] == [(no, d) for no, _, d in expected]
    assert len(outcomes) == len(expected)
    for (_, kind, _), outcome in zip(expected, outcomes, strict=True):
        assert kind != "blank"
        if kind == "record":
            assert isinstance(outcome, LogRecord)
    # Each offset is just past the line's own newline (or the end of the file for the last).
    ends = [
        min(len(content), sum(len(d) + len(newline) for _, d in tagged[:no]))
        for no, _, _ in expected
    ]
    assert [line.end_offset for line in lines] == ends


def test_a_utf8_bom_before_the_first_line_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"id": "a"}\n{"id": "b"}\n')
    assert [decode_line(line)["id"] for line in read_lines(path)] == ["a", "b"]


# ---- line length cap -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["export.jsonl", "export.jsonl.gz"])
def test_a_line_over_the_cap_is_skipped_and_rejected_by_number_and_size(
    tmp_path: Path, name: str
) -> None:
    big = b'{"id": "big", "pad": "' + b"x" * 5_000 + b'"}'
    content = b'{"id": "a"}\n' + big + b'\n{"id": "b"}\n'
    path = write(tmp_path / name, content)
    lines = list(read_lines(path, max_line_bytes=1_000))
    assert [(line.line_no, line.oversized) for line in lines] == [
        (1, None), (2, len(big) + 1), (3, None),
    ]  # fmt: skip
    assert lines[1].end_offset == len(b'{"id": "a"}\n') + len(big) + 1
    assert lines[2].data == b'{"id": "b"}' and lines[2].end_offset == len(content)
    assert len(lines[1].data) <= 200  # a preview, never the line
    with pytest.raises(RecordError, match=r"line 2 is 5,025 bytes, over the limit of 1,000"):
        decode_line(lines[1])
    # Resuming after the oversized line reads on from there.
    after = list(read_lines(path, lines[1].end_offset, lines[1].line_no, max_line_bytes=1_000))
    assert [line.data for line in after] == [b'{"id": "b"}']


def test_a_line_exactly_at_the_cap_is_read(tmp_path: Path) -> None:
    line = b'{"id": "' + b"y" * 92 + b'"}'
    assert len(line) == 102
    (read,) = read_lines(write(tmp_path / "e.jsonl", line + b"\n"), max_line_bytes=102)
    assert read.oversized is None and read.data == line


def test_an_oversized_last_line_without_newline(tmp_path: Path) -> None:
    path = write(tmp_path / "e.jsonl", b'{"id": "a"}\n' + b"z" * 3_000)
    lines = list(read_lines(path, max_line_bytes=1_000))
    assert [line.oversized for line in lines] == [None, 3_000]


def test_chunks_are_bounded_in_lines_and_bytes() -> None:
    lines = [SourceLine(Path("f"), i, 0, b"x" * 100) for i in range(10)]
    assert [len(c) for c in chunk_lines(iter(lines), 4)] == [4, 4, 2]
    assert [len(c) for c in chunk_lines(iter(lines), 500, max_bytes=250)] == [3, 3, 3, 1]
