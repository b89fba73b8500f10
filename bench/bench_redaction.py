"""Redaction time per MB on adversarial inputs of each pattern family, and on ordinary text.

Each case is a text made by repeating a short unit (or a unit then filler) to a size. The
redactor is timed at growing sizes (10 KB, 100 KB, 1 MB) until one takes longer than
`--budget` seconds; the time per MB is then extrapolated from the largest size measured with
the growth seen between the last two sizes (an exponent near 1 is linear, near 2 quadratic).
Times are CPU seconds of the process (robust to other load on the machine). The `text`
column is `Redactor().scrub(text)` (quarantine lines, reasons, log lines); the `record`
column cleans a decoded record holding the text as one string value (spans).

    python bench/bench_redaction.py [--budget 2] [--sizes 10000,100000,1000000]
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import common

from ingest.convert.redact import Redactor


def _repeat(unit: str) -> Callable[[int], str]:
    return lambda size: (unit * (size // len(unit) + 1))[:size]


def _then(head: str, filler: str) -> Callable[[int], str]:
    return lambda size: head + (filler * size)[: max(size - len(head), 0)]


_PROSE = (
    "The model answered at 12:30: the key point is that a token budget of 4,096 is enough. "
    'Notes: see {"role": "user", "content": "hello"} and https://example.com/a?b=c&d=e. '
)
CASES: dict[str, Callable[[int], str]] = {
    "ordinary prose": _repeat(_PROSE),
    "ordinary JSON text": _repeat('{"role": "assistant", "content": "Sure: here it is", "n": 3}, '),
    "separators only": _repeat("a=1; b: 2, "),
    "named: 'key=' repeated": _repeat("key="),
    "named: all masked": _repeat("password=x "),
    "named: secret word repeated": _repeat("secret_"),
    "named: 'password' repeated": _repeat("password"),
    "named: 'password-' repeated": _repeat("password-"),
    "named: 'token.' repeated": _repeat("token."),
    "named: 'auth_' repeated": _repeat("auth_"),
    "named: quoted name repeated": _repeat("'password':'"),
    "named: 'api_key' repeated": _repeat("api_key"),
    "named: long name, no separator": _then("x", "a_password"),
    "named: unterminated quoted value": _then('password: "', "a"),
    "named: escaped quotes": _repeat('password=\\\\"'),
    "named: spaces after separator": _then("password=", " "),
    "cookie pairs": _repeat("Cookie: a=1; "),
    "bearer repeated": _repeat("bearer "),
    "bearer, then spaces": _then("Bearer", " "),
    "basic, then base64": _then("Basic ", "a"),
    "query: x-amz- then word": _then("?x-amz-", "a"),
    "query: '&sig' repeated": _repeat("&sig"),
    "shape: 'eyJ' repeated": _repeat("eyJ"),
    "shape: 'eyJaaaaaaaaa-' repeated": _repeat("eyJaaaaaaaaa-"),
    "shape: 'sk-' repeated": _repeat("sk-"),
    "shape: 'AKIA' repeated": _repeat("AKIA"),
    "userinfo: 'http://' repeated": _repeat("http://"),
    "userinfo: no '@'": _then("http://admin:", "x"),
    "percent: 'api_key%3D' repeated": _repeat("api_key%3D"),
    'nested JSON: \'{"a":"\' repeated': _repeat('{"a":"'),
    "backslashes": _repeat("\\"),
}


def _time(work: Callable[[], object]) -> float:
    """CPU seconds of this process: on a shared machine, wall time measures the others."""
    started = time.process_time()
    work()
    return time.process_time() - started


def measure(make: Callable[[int], str], sizes: list[int], budget: float, record: bool) -> str:
    points: list[tuple[int, float]] = []
    for size in sizes:
        text = make(size)
        redactor = Redactor()
        if record:
            body = {"messages": [{"role": "user", "content": text}]}
            seconds = _time(lambda r=redactor, b=body: r.clean(b))  # type: ignore[misc]
        else:
            seconds = _time(lambda r=redactor, t=text: r.scrub(t))  # type: ignore[misc]
        points.append((size, seconds))
        if seconds > budget:
            break
    size, seconds = points[-1]
    exponent = 1.0
    if len(points) > 1 and points[-2][1] > 1e-4:
        (size0, seconds0) = points[-2]
        exponent = max(1.0, math.log(seconds / seconds0) / math.log(size / size0))
    per_mb = seconds * (1_000_000 / size) ** exponent
    note = "" if size >= 1_000_000 else f" (from {size // 1000} KB, n^{exponent:.1f})"
    return f"{per_mb:.3g} s{note}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=2.0, help="stop growing past this (s)")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    common.print_machine()
    rows = []
    for name, make in CASES.items():
        rows.append((name, measure(make, sizes, args.budget, False),
                     measure(make, sizes, args.budget, True)))  # fmt: skip
        print(f"  {name}: {rows[-1][1]} / {rows[-1][2]}", flush=True)
    common.print_table("Redaction time per MB", ["input", "text", "record"], rows)


if __name__ == "__main__":
    main()
