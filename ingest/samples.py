"""Where the bundled sample Portkey export files live (wheel or source checkout)."""

from __future__ import annotations

from pathlib import Path

from .errors import ConfigError


def sample_logs_dir() -> Path:
    here = Path(__file__).resolve().parent
    for candidate in (here / "sample_logs", here.parent / "sample_logs"):
        if (candidate / "EXPECTED.json").is_file():
            return candidate
    raise ConfigError(
        "the bundled sample logs were not found; reinstall portkey-phoenix-ingest, "
        "or pass the directory of export files explicitly."
    )
