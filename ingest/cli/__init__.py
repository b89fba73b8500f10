"""Command line: parses options, calls the run layer, presents results."""

from ingest.cli.main import cli, main

__all__ = ["cli", "main"]
