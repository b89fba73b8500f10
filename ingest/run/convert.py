"""`convert`: the import's conversion without sending, one JSON span per line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TextIO

import click

from ingest.convert.records import parse_record
from ingest.convert.spans import ConversionOptions, make_resource, span_to_dict, to_span
from ingest.convert.trees import ParentIndex
from ingest.errors import RecordError
from ingest.run.quarantine import Quarantine
from ingest.sources.files import decode_line, read_lines


def convert_files(
    files: list[Path],
    options: ConversionOptions,
    out: TextIO,
    quarantine_path: Path | None = None,
) -> int:
    """Write one span per line to `out`; return how many records were rejected."""
    resource = make_resource(options.project)
    quarantine = Quarantine(quarantine_path) if quarantine_path else None
    seen: set[str] = set()
    parents = ParentIndex()
    rejected = 0
    try:
        for path in files:
            seen.clear()  # per file, as `import` does: memory stays flat over many files
            for line in read_lines(path, max_line_bytes=options.max_line_bytes):
                try:
                    record = parse_record(decode_line(line))
                    if record.log_id in seen:
                        continue  # a log id seen twice is one span
                    parents.remember(record)
                    parent = parents.parent_of(record)
                    span = span_to_dict(to_span(record, options, resource, parent))
                except RecordError as exc:
                    reason = str(exc)
                except Exception as exc:  # a converter bug must not stop the run
                    reason = f"conversion failed: {type(exc).__name__}: {exc}"
                else:
                    seen.add(record.log_id)
                    out.write(json.dumps(span, ensure_ascii=False) + "\n")
                    continue
                rejected += 1
                click.echo(f"{path}:{line.line_no}: rejected: {reason}", err=True)
                if quarantine:
                    quarantine.add(path, line.line_no, reason, line.data)
    finally:
        if quarantine:
            quarantine.close()
    return rejected
