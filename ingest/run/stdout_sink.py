"""`convert`: the import's own path with stdout as the sink, one JSON span per line.

The same per-line step as `import` (decode, record, span, the encoder check, dedup by span
id, quarantine), so `convert` shows exactly what `import` would send; nothing is sent and
no progress is saved.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TextIO

from ingest.convert.spans import ConversionOptions, span_to_dict
from ingest.run.delivery import Batch, DeliveryStats
from ingest.run.pipeline import RunSetup, RunSummary, started_run


class PrintingSink:
    """Writes each batch's spans as JSON lines and commits it at once."""

    annotator: Any = None

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.stats = DeliveryStats()

    def run(self, batches: Iterable[Batch], commit: Callable[[Batch], None]) -> DeliveryStats:
        for batch in batches:
            for span in batch.spans:
                self.out.write(json.dumps(span_to_dict(span), ensure_ascii=False) + "\n")
            batch.delivered = len(batch.spans)
            self.stats.batches += 1
            self.stats.delivered += batch.delivered
            commit(batch)
        self.out.flush()
        return self.stats


def convert_files(
    files: list[Path],
    options: ConversionOptions,
    out: TextIO,
    quarantine_path: Path | None = None,
    echo: Callable[[str], None] | None = None,
) -> RunSummary:
    """Write one span per line to `out`; rejected records go to the quarantine (a file only
    when `quarantine_path` is given) and are told to `echo`, one line each."""
    setup = RunSetup("convert", options, quarantine_path=quarantine_path, sink=PrintingSink(out))
    with started_run(setup, store=None) as importer:
        importer.quarantine.echo = echo
        return importer.run(files)
