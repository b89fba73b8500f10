"""Time windows for Portkey export jobs: half-open UTC ranges, their filters, bisection, and
the plan of a run (a range cut into fixed windows, a shard's share of them, their state keys).

Portkey filters exports with `time_of_generation_min <= created_at < time_of_generation_max`
(half-open, UTC; docs/design.md). A window whose log count exceeds the export
limit is bisected until every part fits; both halves share the midpoint, so a log exactly on
it lands in exactly one of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

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


def plan_windows(since: datetime, until: datetime, size: timedelta) -> list[Window]:
    """Consecutive half-open windows of `size` covering [since, until) exactly."""
    windows: list[Window] = []
    start = since
    while start < until:
        end = min(start + size, until)
        windows.append(Window(start, end))
        start = end
    return windows


def shard_windows(windows: list[Window], shard: tuple[int, int] | None) -> list[Window]:
    """Shard I of N takes every N-th window of the plan, starting with the I-th (1-based)."""
    if shard is None:
        return windows
    index, count = shard
    return windows[index - 1 :: count]


def window_key(window: Window) -> str:
    """The window's key in the state file (whole seconds, as earlier versions wrote it)."""
    return f"{_state_iso(window.since)}/{_state_iso(window.until)}"


def _state_iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
