"""Anytime-valid figures for one pair: a confidence sequence for the win rate and an e-value for 1/2.

Pure numpy. The construction is the hedged-capital betting confidence sequence of Waudby-Smith &
Ramdas (2023, "Estimating means of bounded random variables by betting", JRSS-B 86(1), Section 4.2,
Theorem 3) with their predictable plug-in empirical-Bernstein bets (PrPl-EB, their eq. 26), with the
same defaults as the reference implementation's `confseq.betting.hedged_cs` (θ = 1/2, bets truncated
at 1/(2m) and 1/(2(1−m)), prior mean 1/2 and variance 1/4 with one pseudo-observation). `confseq`
ships no wheels (a C++ build), so this is a re-implementation; tests check it against its guarantee
(coverage on simulated streams) and against a brute-force grid version of the same construction.

One judgment is x ∈ {1, ½, 0} (A wins, tie, B wins), so the mean is the win rate with ties counted
half. For a candidate mean m the two capital processes are

    K⁺ₜ(m) = ∏ᵢ≤ₜ (1 + λ⁺ᵢ(m)(xᵢ − m)),   K⁻ₜ(m) = ∏ᵢ≤ₜ (1 − λ⁻ᵢ(m)(xᵢ − m)),

with bets λᵢ that use only x₁…xᵢ₋₁. If the conditional mean of every judgment is m, θK⁺ + (1−θ)K⁻ is
a nonnegative martingale with initial value 1, so by Ville's inequality it reaches 1/α with
probability at most α, at any time, however often anyone looks. Hence:

* the confidence sequence {m : max(θK⁺ₜ(m), (1−θ)K⁻ₜ(m)) < 1/α}, intersected over time, covers the
  win rate at every time simultaneously with probability ≥ 1 − α;
* the hedged wealth at m = ½ is an e-value for "A and B are equally preferred" at any stopping time,
  and 1 / (its running maximum) an always-valid p-value.

Bets do not depend on m except through the truncation, and each factor decreases in m (K⁺) or
increases (K⁻), so the excluded set from below is an interval [0, L) and from above (U, 1]: the running
intersection's end points are found exactly by bisection on m (no grid), one pass over the stream each.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ALPHA = 0.05
THETA = 0.5
TRUNCATION = 0.5
_BISECTIONS = 14
TOLERANCE = 2.0**-_BISECTIONS  # ≈ 6e-5, rounded outwards: below the 0.1% that the figures show


@dataclass(frozen=True)
class Sequential:
    n: int
    mean: float | None
    cs_low: float
    cs_high: float
    e_value: float  # hedged wealth at 1/2 now: an e-value at any stopping time
    p_anytime: float  # 1 / running max of that wealth: an always-valid p-value
    decided: str | None  # "a" (win rate > 1/2), "b" (< 1/2) once the sequence has excluded 1/2


def outcomes(choice: np.ndarray) -> np.ndarray:
    """Choice codes (0 = A, 1 = B, 2 = tie, as in table.py) to x ∈ {1, 0, ½}."""
    return np.array([1.0, 0.0, 0.5])[np.asarray(choice, dtype=np.int64)]


def predictable_bets(x: np.ndarray, alpha: float) -> np.ndarray:
    """PrPl-EB bets λₜ = √(2 log(1/α) / (σ̂²ₜ₋₁ t log(1+t))), σ̂² regularised by one pseudo-observation
    of variance 1/4 at mean 1/2. x may be (n,) or (streams, n); bets are along the last axis."""
    x = np.asarray(x, dtype=float)
    t = np.arange(1, x.shape[-1] + 1, dtype=float)
    mu = (0.5 + np.cumsum(x, axis=-1)) / (t + 1)
    sigma2 = (0.25 + np.cumsum((x - mu) ** 2, axis=-1)) / (t + 1)
    previous = np.concatenate([np.full((*x.shape[:-1], 1), 0.25), sigma2[..., :-1]], axis=-1)
    return np.sqrt(2 * np.log(1 / alpha) / (t * np.log1p(t) * previous))


def _bets(x: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Bets of K⁺ (at level αθ) and K⁻ (α(1−θ)): one computation when θ = ½ makes them equal."""
    plus = predictable_bets(x, alpha * THETA)
    return plus, plus if THETA == 0.5 else predictable_bets(x, alpha * (1 - THETA))


def _log_factors(x: np.ndarray, bets: np.ndarray, m: np.ndarray, sign: int) -> np.ndarray:
    """log of each factor of K⁺ (sign +1) or K⁻ (sign −1) at the per-stream candidate mean m."""
    m = np.asarray(m, dtype=float)[..., None]
    # The truncation keeps every factor ≥ 1/2, so the capital can never hit 0 (nor a log of ≤ 0).
    with np.errstate(divide="ignore"):
        cap = TRUNCATION / (m if sign > 0 else 1 - m)
    return np.log1p(sign * np.minimum(bets, cap) * (x - m))


def running_max_log_capital(x: np.ndarray, bets: np.ndarray, m: np.ndarray, sign: int) -> np.ndarray:
    """max over t of log K^±ₜ(m), per stream (0 for an empty stream: the capital starts at 1)."""
    if x.shape[-1] == 0:
        return np.zeros(np.shape(m))
    return np.maximum(np.cumsum(_log_factors(x, bets, m, sign), axis=-1).max(axis=-1), 0.0)


def _bisect(x: np.ndarray, bets: np.ndarray, threshold: float, sign: int) -> np.ndarray:
    """The running intersection's end point: for sign +1 the lower end L (every m < L has been excluded
    by K⁺ at some time), for −1 the upper end U. Returned on the conservative side of the exact value."""
    shape = x.shape[:-1]
    excluded, included = (np.zeros(shape), np.ones(shape)) if sign > 0 else (np.ones(shape), np.zeros(shape))
    # Nothing excluded at the far end (m = 0 for L, 1 for U): the sequence reaches it.
    edge = running_max_log_capital(x, bets, excluded, sign) < threshold
    for _ in range(_BISECTIONS):
        mid = (excluded + included) / 2
        out = running_max_log_capital(x, bets, mid, sign) >= threshold
        excluded = np.where(out, mid, excluded)
        included = np.where(out, included, mid)
    return np.where(edge, 0.0 if sign > 0 else 1.0, excluded)


def confidence_sequence(x: np.ndarray, alpha: float = ALPHA) -> tuple[np.ndarray, np.ndarray]:
    """Running-intersection (1−α) confidence sequence for the mean of x ∈ [0, 1], at the last time.

    x: (n,) or (streams, n). Returns (low, high) with the leading shape of x."""
    x = np.asarray(x, dtype=float)
    bets_plus, bets_minus = _bets(x, alpha)
    low = _bisect(x, bets_plus, np.log(1 / alpha) - np.log(THETA), +1)
    high = _bisect(x, bets_minus, np.log(1 / alpha) - np.log(1 - THETA), -1)
    return low, high


def ever_excludes(x: np.ndarray, m: float | np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """Whether the (1−α) sequence has excluded m at some time up to now (per stream)."""
    x = np.asarray(x, dtype=float)
    m = np.broadcast_to(np.asarray(m, dtype=float), x.shape[:-1])
    plus = running_max_log_capital(x, predictable_bets(x, alpha * THETA), m, +1) >= np.log(1 / alpha / THETA)
    minus = running_max_log_capital(x, predictable_bets(x, alpha * (1 - THETA)), m, -1) >= np.log(
        1 / alpha / (1 - THETA)
    )
    return plus | minus


def _paths_at_half(x: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """log K⁺ₜ(½) and log K⁻ₜ(½) at every time t, with the bets of the (1−α) sequence."""
    half = np.full(x.shape[:-1], 0.5)
    bets_plus, bets_minus = _bets(x, alpha)
    plus = np.cumsum(_log_factors(x, bets_plus, half, +1), axis=-1)
    minus = np.cumsum(_log_factors(x, bets_minus, half, -1), axis=-1)
    return plus, minus


def first_decision(x: np.ndarray, alpha: float = ALPHA) -> tuple[np.ndarray, np.ndarray]:
    """Per stream: the first time (1-based; 0 = never) at which the sequence excluded ½, and the side
    (+1: mean > ½, −1: < ½, 0: never). For simulations that stop serving a pair once it is decided."""
    x = np.asarray(x, dtype=float)
    plus, minus = _paths_at_half(x, alpha)
    hit_plus = plus >= np.log(1 / alpha / THETA)
    hit = hit_plus | (minus >= np.log(1 / alpha / (1 - THETA)))
    any_hit = hit.any(axis=-1)
    first = np.where(any_hit, hit.argmax(axis=-1) + 1, 0)
    at = np.maximum(first - 1, 0)[..., None]
    side = np.where(any_hit, np.where(np.take_along_axis(hit_plus, at, -1)[..., 0], 1, -1), 0)
    return first, side


def e_value_path(x: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """Hedged wealth θK⁺ₜ(½) + (1−θ)K⁻ₜ(½) at every time t: a martingale from 1 when the mean is ½."""
    plus, minus = _paths_at_half(np.asarray(x, dtype=float), alpha)
    return THETA * np.exp(plus) + (1 - THETA) * np.exp(minus)


def evidence_path(x: np.ndarray, alpha: float = ALPHA, points: int = 120) -> list[tuple[int, float]]:
    """(n, log10 max(θK⁺ₙ(½), (1−θ)K⁻ₙ(½))) at up to `points` times: the pair is decided when this first
    reaches log10(1/α). Thinned for plotting; the first time it reaches the line is always kept."""
    x = np.asarray(x, dtype=float)
    if len(x) == 0:
        return []
    plus, minus = _paths_at_half(x, alpha)
    evidence = np.maximum(plus + np.log(THETA), minus + np.log(1 - THETA)) / np.log(10)
    keep = set(np.unique(np.linspace(0, len(x) - 1, min(points, len(x))).astype(int)).tolist())
    crossed = np.flatnonzero(evidence >= np.log10(1 / alpha))
    if len(crossed):
        keep.add(int(crossed[0]))
    return [(i + 1, round(float(evidence[i]), 4)) for i in sorted(keep)]


def sequential(x: np.ndarray, alpha: float = ALPHA) -> Sequential:
    """Every anytime-valid figure of one pair's stream x (in arrival order) at level α."""
    x = np.asarray(x, dtype=float)
    n = len(x)
    if n == 0:
        return Sequential(0, None, 0.0, 1.0, 1.0, 1.0, None)
    low, high = confidence_sequence(x, alpha)
    plus, minus = _paths_at_half(x, alpha)
    wealth = THETA * np.exp(plus) + (1 - THETA) * np.exp(minus)
    # Decided = the sequence has excluded ½ at some time (the running intersection then excludes it for
    # good). Both sides at once would mean an empty sequence: possible only on a ≤ α event; stay undecided.
    above = bool(plus.max() >= np.log(1 / alpha / THETA))
    below = bool(minus.max() >= np.log(1 / alpha / (1 - THETA)))
    decided = "a" if above and not below else "b" if below and not above else None
    return Sequential(
        n=n,
        mean=float(x.mean()),
        cs_low=float(low),
        cs_high=float(high),
        e_value=float(wealth[-1]),
        p_anytime=float(min(1.0, 1 / wealth.max())),
        decided=decided,
    )
