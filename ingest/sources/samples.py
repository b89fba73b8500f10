"""Where the bundled sample Portkey export files live (wheel or source checkout)."""

from __future__ import annotations

from pathlib import Path

from ingest.errors import ConfigError


def sample_logs_dir() -> Path:
    package = Path(__file__).resolve().parent.parent  # ingest/
    # The wheel bundles them inside the package; a checkout has them beside it.
    for candidate in (package / "sample_logs", package.parent / "sample_logs"):
        if (candidate / "EXPECTED.json").is_file():
            return candidate
    raise ConfigError(
        "the bundled sample logs were not found; reinstall portkey-phoenix-ingest, "
        "or pass the directory of export files explicitly."
    )
