"""Time windows for Portkey export jobs: half-open UTC ranges, their filters, and bisection.

Portkey filters exports with `time_of_generation_min <= created_at < time_of_generation_max`
(half-open, UTC; reference/portkey-api.md 2.2). A window whose log count exceeds the export
limit is bisected until every part fits; both halves share the midpoint, so a log exactly on
it lands in exactly one of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ingest.errors import ConfigError

MIN_SPLIT = timedelta(seconds=1)  # below this a window is not split any further
_SECOND = timedelta(seconds=1)
_MILLISECOND = timedelta(milliseconds=1)


@dataclass(frozen=True)
class Window:
    """`[since, until)` in aware UTC datetimes."""

    since: datetime
    until: datetime

    def __post_init__(self) -> None:
        for name in ("since", "until"):
            value = getattr(self, name)
            if not isinstance(value, datetime) or value.tzinfo is None:
                raise ConfigError(f"window {name} must be a timezone-aware datetime: {value!r}")
            object.__setattr__(self, name, value.astimezone(UTC))
        if self.since >= self.until:
            raise ConfigError(
                f"window start {iso(self.since)} is not before its end {iso(self.until)}"
            )

    @property
    def duration(self) -> timedelta:
        return self.until - self.since

    def __str__(self) -> str:
        return f"[{iso(self.since)}, {iso(self.until)})"

    def filters(self) -> dict[str, str]:
        """Portkey's export filters for this window."""
        return {
            "time_of_generation_min": iso(self.since),
            "time_of_generation_max": iso(self.until),
        }

    def can_split(self) -> bool:
        return self.duration >= MIN_SPLIT

    def halves(self) -> tuple[Window, Window]:
        """Two adjacent windows covering this one; the midpoint is on a whole second when the
        window is 2 s or longer (else on a millisecond), so filters stay short and exact."""
        unit = _SECOND if self.duration >= 2 * _SECOND else _MILLISECOND
        mid = self.since + (self.duration / 2 // unit) * unit
        if not self.since < mid < self.until:
            raise ValueError(f"window {self} is too short to split")
        return Window(self.since, mid), Window(mid, self.until)

    def file_name(self) -> str:
        """A file name for this window's export (no colons, so it is portable)."""
        return f"portkey-{_stamp(self.since)}--{_stamp(self.until)}.jsonl"


def iso(moment: datetime) -> str:
    """ISO-8601 UTC with `Z`: whole seconds without a fraction, else milliseconds (Portkey's
    precision), else microseconds (never rounded, so a boundary is never moved)."""
    t = moment.astimezone(UTC)
    text = f"{t:%Y-%m-%dT%H:%M:%S}"
    if t.microsecond == 0:
        return text + "Z"
    if t.microsecond % 1000 == 0:
        return f"{text}.{t.microsecond // 1000:03d}Z"
    return f"{text}.{t.microsecond:06d}Z"


def _stamp(moment: datetime) -> str:
    return iso(moment).replace("-", "").replace(":", "")


def concatenate(parts: list[Path], dest: Path) -> None:
    """Write `parts` one after the other into `dest` (atomically), streaming from disk."""
    tmp = dest.with_name(dest.name + ".part")
    try:
        with tmp.open("wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while chunk := src.read(1 << 20):
                        out.write(chunk)
                # a complete part may end without a final newline: never glue two records
                if part.stat().st_size and not _ends_with_newline(part):
                    out.write(b"\n")
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as src:
        src.seek(-1, 2)
        return src.read(1) == b"\n"
