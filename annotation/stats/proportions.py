"""Intervals, exact tests, multiplicity and power for one proportion. Vectorised over arrays."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps

Z95 = float(sps.norm.ppf(0.975))


def wilson(successes: np.ndarray, trials: np.ndarray, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """95% Wilson score interval; nan where there are no trials."""
    k = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / n
        denom = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return centre - half, centre + half


def wilson_half_width(p: float, n: float, z: float = Z95) -> float:
    return z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)


def sign_test(successes: np.ndarray, trials: np.ndarray) -> np.ndarray:
    """Exact two-sided binomial test at 0.5. The null is symmetric, so doubling the smaller tail is exact."""
    k = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    tail = np.minimum(sps.binom.cdf(k, n, 0.5), sps.binom.sf(k - 1, n, 0.5))
    return np.where(n > 0, np.minimum(1.0, 2 * tail), 1.0)


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm step-down adjustment (family = all values given)."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    adjusted = np.maximum.accumulate(p[order] * (m - np.arange(m)))
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def items_needed(wins_a: int, wins_b: int, items: int, target: float = 0.05) -> int | None:
    """Extra items for the Wilson half-width of wins_a/(wins_a+wins_b) to reach `target`,
    assuming the observed preference rate and the observed decisive judgments per item."""
    decisive = wins_a + wins_b
    if decisive == 0 or items == 0:
        return None
    p = wins_a / decisive
    if wilson_half_width(p, decisive) <= target:
        return 0
    lo, hi = decisive, max(decisive * 2, 4)
    while wilson_half_width(p, hi) > target:  # half-width falls like 1/sqrt(n): doubling ends quickly
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if wilson_half_width(p, mid) > target else (lo, mid)
    return math.ceil((hi - decisive) / (decisive / items))
