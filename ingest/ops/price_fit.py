"""Token prices that reproduce a bill: a non-negative least-squares fit per model, split where
the price changed. Pure functions, no I/O.

Phoenix prices an LLM span from its token counts (cost_tracking/cost_details_calculator.py):
each `llm.token_count.prompt_details.<type>` at the model's `<type>` price (else the input
price), the rest of the prompt at the input price, and the completion at the output price
(its details likewise fall back to the output price). `billable_tokens` mirrors that split, so
prices fitted against it make Phoenix's own computation reproduce the bill. An image request
billed per image carries its image count as the completion detail `image`: a fifth unit, priced
per image (stored, like every Phoenix price, per million units).

The fit has at most five unknowns (input, output, cache read, cache write, image), so
non-negative least squares is solved exactly by trying every subset of the unknowns with
ordinary least squares on its normal equations (Lawson-Hanson's answer is one of them): no
numpy needed.
Residuals are relative (each log weighted by 1/cost), because the fit quality users read is
the largest relative error. Normal equations are sums, so prefix sums give every split point's
fit in O(1): a price change is found as the split that best explains the logs, and segments are
split again (binary segmentation) until each one fits or the model is refused.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

TOKEN_TYPES: tuple[str, ...] = ("input", "output", "cache_read", "cache_write", "image")
PROMPT_KIND = {"input": True, "output": False, "cache_read": True, "cache_write": True,
               "image": False}  # fmt: skip
IMAGE = TOKEN_TYPES.index("image")
DEFAULT_TOLERANCE = 0.01  # largest relative error a period may have (1%)
MAX_PERIODS = 4  # at most three price changes per model in one plan
SIGNIFICANT_DIGITS = 4  # list prices have few digits; rounding makes re-fits idempotent

_PROMPT = "llm.token_count.prompt"
_COMPLETION = "llm.token_count.completion"
_TOTAL = "llm.token_count.total"
_PROMPT_DETAILS = "llm.token_count.prompt_details."
_COMPLETION_DETAILS = "llm.token_count.completion_details."


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return 0
    return max(0, int(value))


def billable_tokens(attributes: Mapping[str, Any]) -> tuple[int, int, int, int, int]:
    """(input, output, cache read, cache write) tokens and images as Phoenix splits a span's
    counts, for a model priced with exactly these five types (other details fall back to the
    input or output price, so they count as input or output here)."""
    prompt, completion, total = (_int(attributes.get(k)) for k in (_PROMPT, _COMPLETION, _TOTAL))
    if total > prompt + completion:  # helpers.get_aggregated_tokens: the gap goes to one side
        if not prompt:
            prompt = total - completion
        else:
            completion = total - prompt
    prompt_details = {
        key[len(_PROMPT_DETAILS) :]: _int(value)
        for key, value in attributes.items()
        if key.startswith(_PROMPT_DETAILS) and isinstance(value, int | float)
    }
    completion_details = {
        key[len(_COMPLETION_DETAILS) :]: _int(value)
        for key, value in attributes.items()
        if key.startswith(_COMPLETION_DETAILS) and isinstance(value, int | float)
    }
    images = completion_details.pop("image", 0)
    cache_read = prompt_details.pop("cache_read", 0)
    cache_write = prompt_details.pop("cache_write", 0)
    other_prompt = sum(prompt_details.values())
    input_ = max(0, prompt - cache_read - cache_write - other_prompt) + other_prompt
    other_completion = sum(completion_details.values())
    output = max(0, completion - images - other_completion) + other_completion
    return input_, output, cache_read, cache_write, images


@dataclass(frozen=True, slots=True)
class Observation:
    """One billed log: when, its billable units (TOKEN_TYPES order) and its cost in USD."""

    at: datetime
    tokens: tuple[int, int, int, int, int]
    cost_usd: float
    log_id: str = ""


@dataclass(frozen=True, slots=True)
class Period:
    start: datetime  # the price's start in Phoenix (startTime)
    first: datetime  # the first and last log it was fitted on
    last: datetime
    prices: dict[str, float]  # USD per million units, by token type (only types the logs carry)
    logs: int
    max_relative_error: float
    billed_usd: float


@dataclass(slots=True)
class ModelFit:
    periods: list[Period] = field(default_factory=list)
    refused: str | None = None  # why no prices could be fitted


# ---- small dense linear algebra on the normal equations ----------------------------------


@dataclass(slots=True)
class _Sums:
    """Σ aaᵀ, Σ a and Σ 1 over relative rows a = tokens/cost (in millions of tokens)."""

    gram: list[list[float]]
    rhs: list[float]
    count: float

    @classmethod
    def zero(cls, k: int) -> _Sums:
        return cls([[0.0] * k for _ in range(k)], [0.0] * k, 0.0)

    def minus(self, other: _Sums) -> _Sums:
        k = len(self.rhs)
        return _Sums(
            [[self.gram[i][j] - other.gram[i][j] for j in range(k)] for i in range(k)],
            [self.rhs[i] - other.rhs[i] for i in range(k)],
            self.count - other.count,
        )


def _row(obs: Observation, columns: Sequence[int]) -> list[float]:
    return [obs.tokens[c] / 1e6 / obs.cost_usd for c in columns]


def _prefix_sums(observations: Sequence[Observation], columns: Sequence[int]) -> list[_Sums]:
    k = len(columns)
    sums = [_Sums.zero(k)]
    for obs in observations:
        row, last = _row(obs, columns), sums[-1]
        sums.append(
            _Sums(
                [[last.gram[i][j] + row[i] * row[j] for j in range(k)] for i in range(k)],
                [last.rhs[i] + row[i] for i in range(k)],
                last.count + 1,
            )
        )
    return sums


def _solve(matrix: list[list[float]], vector: list[float]) -> list[float] | None:
    """Gaussian elimination with partial pivoting; None when (nearly) singular."""
    n = len(vector)
    a = [[*row, vector[i]] for i, row in enumerate(matrix)]
    scale = max((abs(a[i][i]) for i in range(n)), default=0.0)
    if scale == 0.0:
        return None
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(a[r][col]))
        if abs(a[pivot][col]) <= 1e-12 * scale:
            return None
        a[col], a[pivot] = a[pivot], a[col]
        for r in range(col + 1, n):
            factor = a[r][col] / a[col][col]
            for c in range(col, n + 1):
                a[r][c] -= factor * a[col][c]
    x = [0.0] * n
    for r in range(n - 1, -1, -1):
        x[r] = (a[r][n] - sum(a[r][c] * x[c] for c in range(r + 1, n))) / a[r][r]
    return x


def nnls(sums: _Sums) -> tuple[list[float], float]:
    """Non-negative least squares from normal equations: (solution, residual sum of squares).
    Exact for a handful of unknowns: the optimum is the unconstrained optimum of its own
    support, so the best non-negative subset solution is it."""
    k = len(sums.rhs)
    best: tuple[list[float], float] = ([0.0] * k, sums.count)
    for size in range(1, k + 1):
        for subset in itertools.combinations(range(k), size):
            solution = _solve(
                [[sums.gram[i][j] for j in subset] for i in subset], [sums.rhs[i] for i in subset]
            )
            if solution is None or min(solution) < 0:
                continue
            sse = sums.count - sum(x * sums.rhs[i] for x, i in zip(solution, subset, strict=True))
            if sse < best[1] - 1e-15:
                full = [0.0] * k
                for x, i in zip(solution, subset, strict=True):
                    full[i] = x
                best = (full, sse)
    return best


# ---- fitting -----------------------------------------------------------------------------


def round_price(value: float) -> float:
    if value <= 0:
        return 0.0
    digits = SIGNIFICANT_DIGITS - 1 - math.floor(math.log10(value))
    return round(value, digits)


def predicted(prices: Mapping[str, float], tokens: Sequence[int]) -> float:
    return math.fsum(prices.get(t, 0.0) * n / 1e6 for t, n in zip(TOKEN_TYPES, tokens, strict=True))


def max_relative_error(
    observations: Sequence[Observation], prices: Mapping[str, float]
) -> tuple[float, Observation | None]:
    worst, which = 0.0, None
    for obs in observations:
        error = abs(predicted(prices, obs.tokens) - obs.cost_usd) / obs.cost_usd
        if error > worst:
            worst, which = error, obs
    return worst, which


def carried_types(observations: Sequence[Observation]) -> list[int]:
    """Input and output always (Phoenix requires both); cache types and images when some log
    has them."""
    return [0, 1] + [c for c in (2, 3, IMAGE) if any(obs.tokens[c] for obs in observations)]


def min_logs(columns: Sequence[int]) -> int:
    """Logs a period needs: more than unknowns, so that a bad fit can show."""
    return len(columns) + 3


def _period_start(previous: Observation | None, first: Observation) -> datetime:
    """Midnight UTC of the first log's day for the first period; for a later one, the last
    midnight after the previous period's last log, else the first log's second."""
    midnight = first.at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if previous is None or midnight > previous.at:
        return midnight
    return first.at.replace(microsecond=0)


def _fit_segment(
    obs: Sequence[Observation], sums: _Sums, columns: Sequence[int]
) -> dict[str, float]:
    solution, _ = nnls(sums)
    prices = {TOKEN_TYPES[c]: round_price(x) for c, x in zip(columns, solution, strict=True)}
    for c in columns:  # a cache type or images absent from this segment: no price to tell
        if c >= 2 and not any(o.tokens[c] for o in obs):
            prices.pop(TOKEN_TYPES[c])
    return prices


def _best_split(prefix: list[_Sums], lo: int, hi: int, obs: Sequence[Observation],
                least: int) -> int | None:  # fmt: skip
    """The split index in [lo+least, hi-least] with the smallest total squared error
    (coarse grid first, then refined around its best); only between distinct times."""

    def sse(m: int) -> float:
        left = prefix[m].minus(prefix[lo])
        right = prefix[hi].minus(prefix[m])
        return nnls(left)[1] + nnls(right)[1]

    candidates = [m for m in range(lo + least, hi - least + 1) if obs[m - 1].at < obs[m].at]
    if not candidates:
        return None
    step = max(1, len(candidates) // 200)
    coarse = min(candidates[::step], key=sse)
    position = candidates.index(coarse)
    near = candidates[max(0, position - step) : position + step + 1]
    return min(near, key=sse)


def fit_model(
    observations: Sequence[Observation],
    tolerance: float = DEFAULT_TOLERANCE,
    max_periods: int = MAX_PERIODS,
) -> ModelFit:
    """Prices per period for one model's billed logs (any order), or the reason there are none."""
    obs = sorted((o for o in observations if o.cost_usd > 0), key=lambda o: o.at)
    columns = carried_types(obs)
    least = min_logs(columns)
    if len(obs) < least:
        return ModelFit(refused=f"too few billed logs ({len(obs)}; a fit needs {least})")
    prefix = _prefix_sums(obs, columns)
    segments = [(0, len(obs))]
    done: list[tuple[int, int, dict[str, float], float, Observation | None]] = []
    while segments:
        lo, hi = segments.pop()
        prices = _fit_segment(obs[lo:hi], prefix[hi].minus(prefix[lo]), columns)
        error, worst = max_relative_error(obs[lo:hi], prices)
        split = None
        if error > tolerance and len(done) + len(segments) + 2 <= max_periods:
            split = _best_split(prefix, lo, hi, obs, least)
        if split is None:
            done.append((lo, hi, prices, error, worst))
        else:
            segments += [(lo, split), (split, hi)]
    done.sort(key=lambda item: item[0])
    bad = [item for item in done if item[3] > tolerance]
    if bad:
        _, _, _, error, worst = max(bad, key=lambda item: item[3])
        changes = f" after {len(done) - 1} price change(s)" if len(done) > 1 else ""
        where = f" (log {worst.log_id})" if worst is not None and worst.log_id else ""
        units = "tokens and images" if IMAGE in columns else "tokens"  # images: sizes, quality
        return ModelFit(
            refused=f"cost not linear in {units}: the best fit{changes} is off by up to "
            f"{error:.1%}{where}, above the {tolerance:.1%} tolerance"
        )
    periods = []
    for lo, hi, prices, error, _ in done:
        previous = obs[lo - 1] if lo else None
        periods.append(
            Period(
                start=_period_start(previous, obs[lo]),
                first=obs[lo].at,
                last=obs[hi - 1].at,
                prices=prices,
                logs=hi - lo,
                max_relative_error=error,
                billed_usd=math.fsum(o.cost_usd for o in obs[lo:hi]),
            )
        )
    return ModelFit(periods=periods)


def priced_as(observations: Sequence[Observation], prices: Mapping[str, float]) -> Period:
    """One period over all `observations` at given prices (Portkey's own, or an exact fit),
    with the error those prices make on them."""
    obs = sorted(observations, key=lambda o: o.at)
    error, _ = max_relative_error(obs, prices)
    return Period(
        start=_period_start(None, obs[0]),
        first=obs[0].at,
        last=obs[-1].at,
        prices=dict(prices),
        logs=len(obs),
        max_relative_error=error,
        billed_usd=math.fsum(o.cost_usd for o in obs),
    )


def exact_fit(observations: Sequence[Observation]) -> dict[str, float] | None:
    """Prices that reproduce a few logs (fewer than a checked fit needs): the non-negative
    least-squares solution, which is exact when the logs allow one; None without logs."""
    obs = [o for o in observations if o.cost_usd > 0]
    if not obs:
        return None
    columns = carried_types(obs)
    return _fit_segment(obs, _prefix_sums(obs, columns)[-1], columns)


def choose_prices(
    observations: Sequence[Observation],
    tolerance: float,
    listed: Callable[[], dict[str, float] | None],
) -> tuple[ModelFit, str]:
    """Prices for one model's billed logs and where they came from: a checked fit when there
    are enough logs; else the list price (`listed()`, asked only then) when it reproduces
    them; else an exact fit of the few logs. Refused when none is within `tolerance`."""
    fit = fit_model(observations, tolerance)
    count = len(observations)
    if fit.refused is None:
        return fit, f"fit of {count} logs"
    if not fit.refused.startswith("too few"):
        return fit, ""
    price = listed()
    if price is not None:
        period = priced_as(observations, price)
        if period.max_relative_error <= tolerance:
            return ModelFit(periods=[period]), "Portkey's price"
    exact = exact_fit(observations)
    if exact is not None:
        period = priced_as(observations, exact)
        if period.max_relative_error <= tolerance:
            off = ""
            if price is not None:
                error = priced_as(observations, price).max_relative_error
                off = f"; Portkey's price is off by {error:.0%}"
            return ModelFit(periods=[period]), f"exact fit of {count} log(s){off}"
    return fit, ""
