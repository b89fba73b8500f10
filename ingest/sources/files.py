"""Read Portkey export files (JSONL, optionally gzip) line by line, from disk, resumably.

Files are streamed: memory does not grow with file size (DESIGN.md, invariant 4). Each line
carries the byte offset just past it, so an interrupted import can resume after the last
verified line.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ingest.errors import RecordError, SourceError

_CHUNK = 1 << 20
EXPORT_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz")


@dataclass(frozen=True, slots=True)
class SourceLine:
    path: Path
    line_no: int  # 1-based
    end_offset: int  # byte offset just past this line, in the (decompressed) stream
    data: bytes  # the line without its newline


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


def read_lines(path: Path, start_offset: int = 0, start_line: int = 0) -> Iterator[SourceLine]:
    """Yield the non-blank lines of `path` after `start_offset` (a previous `end_offset`)."""
    with _open(path) as stream:
        try:
            if start_offset:
                stream.seek(start_offset)  # gzip streams seek by decompressing forward
            offset, line_no = start_offset, start_line
            for data in stream:
                line_no += 1
                offset += len(data)
                stripped = data.strip()
                if stripped:
                    yield SourceLine(path, line_no, offset, stripped)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise SourceError(
                f"cannot read {path} after line {line_no}: {exc}. "
                "The file may be truncated or corrupt; download it again."
            ) from exc


def decode_line(line: SourceLine) -> Any:
    """The JSON value of one line; raises `RecordError` with the reason when it is not JSON."""
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
        raise _unreadable(path, exc) from exc
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
