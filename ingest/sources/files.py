"""Read Portkey export files (JSONL, optionally gzip) line by line, from disk, resumably.

Files are streamed: memory does not grow with file size (docs/design.md, invariant 4), nor with
the length of a line. A line longer than `max_line_bytes` is never held whole: it is read
past in pieces and handed on as an oversized line (its number, its size, a short preview),
which `decode_line` rejects with the reason, so it is quarantined like any bad record. Each
line carries the byte offset just past it, so an interrupted import can resume after the
last verified line. A file that cannot be read on (truncated or corrupt gzip, a read error,
a file gone) raises `DamagedFile` with the offset and line of the last complete line: every
line yielded before it is whole.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ingest.errors import DamagedFile, RecordError, SourceError

_CHUNK = 1 << 20
EXPORT_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz")
MAX_LINE_BYTES = 32 << 20  # one export line; a real Portkey log is far below this
MAX_CHUNK_BYTES = 32 << 20  # estimated memory of the lines decoded together (`chunk_lines`)
# What one line may take once decoded. JSON is far denser than Python objects: `{}` is 2
# bytes of text and a 64-byte dict, so a 32 MiB line of them decodes to about 1 GB.
MAX_DECODED_BYTES = 96 << 20
_PREVIEW_BYTES = 200


@dataclass(frozen=True, slots=True)
class SourceLine:
    path: Path
    line_no: int  # 1-based
    end_offset: int  # byte offset just past this line, in the (decompressed) stream
    data: bytes  # the line without its newline; a preview when `oversized`
    oversized: int | None = None  # the line's size in bytes when it was too long to read
    limit: int = MAX_LINE_BYTES  # the per-line limit it was read with


def _open(path: Path) -> IO[bytes]:
    try:
        if path.name.endswith(".gz"):
            return gzip.open(path, "rb")
        return path.open("rb")
    except OSError as exc:
        raise _unreadable(path, exc) from exc


def _unreadable(path: Path, exc: OSError) -> SourceError:
    reason = exc.strerror or str(exc)
    return SourceError(f"cannot read {path}: {reason}. Check the path and its permissions.")


def read_lines(
    path: Path, start_offset: int = 0, start_line: int = 0, max_line_bytes: int = MAX_LINE_BYTES
) -> Iterator[SourceLine]:
    """Yield the non-blank lines of `path` after `start_offset` (a previous `end_offset`)."""
    offset, line_no = start_offset, start_line  # just past the last whole line read
    try:
        stream = _open(path)
    except SourceError as exc:
        raise DamagedFile(str(exc), offset=offset, line=line_no) from exc.__cause__
    with stream:
        try:
            if start_offset:
                stream.seek(start_offset)  # gzip streams seek by decompressing forward
            while data := stream.readline(max_line_bytes + 1):
                if len(data) > max_line_bytes and not data.endswith(b"\n"):
                    size = len(data) + _skip_rest_of_line(stream)
                    offset += size
                    line_no += 1
                    yield SourceLine(
                        path,
                        line_no,
                        offset,
                        data[:_PREVIEW_BYTES],
                        oversized=size,
                        limit=max_line_bytes,
                    )
                    continue
                offset += len(data)
                line_no += 1
                stripped = data.strip()
                if stripped:
                    yield SourceLine(path, line_no, offset, stripped)
        except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
            raise DamagedFile(
                f"cannot read {path} past byte {offset:,} (line {line_no:,}): {exc}. "
                "The file may be truncated or corrupt; download it again.",
                offset=offset,
                line=line_no,
            ) from exc


def until_damage(lines: Iterator[SourceLine], damage: list[DamagedFile]) -> Iterator[SourceLine]:
    """`lines` up to the damage, which is kept in `damage`: the whole lines read before it
    still reach the caller's last group (`chunk_lines` ends normally)."""
    try:
        yield from lines
    except DamagedFile as exc:
        damage.append(exc)


def line_at(path: Path, start: int, line: int, max_line_bytes: int = MAX_LINE_BYTES) -> bytes:
    """The first non-blank line from byte `start` (numbered `line`), or b"" if unreadable."""
    try:
        found = next(read_lines(path, start, line - 1, max_line_bytes), None)
    except DamagedFile:
        return b""
    return found.data if found is not None else b""


def prefix_digest(path: Path, length: int) -> str | None:
    """sha256 of the first `length` bytes of the file's (decompressed) data; None when it
    has fewer or cannot be read that far. A repaired file resumes where the damaged one
    stopped only when what came before is the same."""
    digest = hashlib.sha256()
    left = length
    try:
        with _open(path) as stream:
            while left and (chunk := stream.read(min(_CHUNK, left))):
                digest.update(chunk)
                left -= len(chunk)
    except (SourceError, OSError, EOFError, zlib.error):
        return None
    return None if left else digest.hexdigest()


def _skip_rest_of_line(stream: IO[bytes]) -> int:
    """Read past the rest of the current line in pieces; return how many bytes it had."""
    skipped = 0
    while piece := stream.readline(_CHUNK):
        skipped += len(piece)
        if piece.endswith(b"\n"):
            break
    return skipped


def decoded_cost(data: bytes) -> int:
    """An upper estimate of the bytes `json.loads` allocates for `data`: each container a
    dict or list (~72 bytes), each string an object (~57 bytes, two quotes), each separator a
    slot or a number (~16 bytes). Four `count` scans, linear and fast."""
    containers = data.count(b"{") + data.count(b"[")
    return len(data) + 72 * containers + 28 * data.count(b'"') + 16 * data.count(b",")


def chunk_lines(
    lines: Iterator[SourceLine], max_lines: int, max_bytes: int = MAX_CHUNK_BYTES
) -> Iterator[list[SourceLine]]:
    """Lines in groups of at most `max_lines` and about `max_bytes` once decoded, so that a
    group of large (or dense) lines is never decoded at once."""
    chunk: list[SourceLine] = []
    size = 0
    for line in lines:
        chunk.append(line)
        size += decoded_cost(line.data)
        if len(chunk) >= max_lines or size >= max_bytes:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def decode_line(line: SourceLine) -> Any:
    """The JSON value of one line; raises `RecordError` with the reason when it is not JSON."""
    if line.oversized is not None:
        raise RecordError(
            f"line {line.line_no} is {line.oversized:,} bytes, over the limit of "
            f"{line.limit:,} bytes per line (--max-line-bytes); skipped without reading it whole"
        )
    if (cost := decoded_cost(line.data)) > MAX_DECODED_BYTES:
        raise RecordError(
            f"line {line.line_no} ({len(line.data):,} bytes) would take about {cost >> 20:,} MB "
            f"of memory once decoded (its many small objects), over the limit of "
            f"{MAX_DECODED_BYTES >> 20} MB; skipped without decoding it"
        )
    try:
        text = line.data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordError(f"not UTF-8 text (byte {exc.start})") from None
    try:
        return json.loads(text.removeprefix("\ufeff"))  # a UTF-8 BOM before the first line
    except ValueError as exc:
        raise RecordError(f"not valid JSON: {exc}") from None
    except RecursionError:
        raise RecordError("not valid JSON: nested too deeply") from None


def fingerprint(path: Path) -> str:
    """sha256 of the file's bytes: progress follows the content, not the file name."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as stream:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise DamagedFile(str(_unreadable(path, exc)), offset=0, line=0) from exc
    return digest.hexdigest()


def expand_paths(paths: list[Path]) -> list[Path]:
    """Files as given, directories expanded to their export files (sorted, not recursive)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = (p for p in path.iterdir() if p.is_file() and p.name.endswith(EXPORT_SUFFIXES))
            files.extend(sorted(found))
        else:
            files.append(path)
    return files
