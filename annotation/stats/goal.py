"""Study goals on the anytime-valid figures: which pairs are still open, how much one more judgment is
expected to help each, which pair to serve next, and a rough estimate of the judgments left.

Pure (numpy only). The assignment engine and `benchmarks/sequential_sim.py` both use these functions, so
the simulation measures the policy that production runs.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import bt

DECIDE_ALL = "decide_all"
HALF_WIDTH = "half_width"
RANK = "rank"
GOALS = (DECIDE_ALL, HALF_WIDTH, RANK)
# Under the rank goal every pair first gets this many judgments, so that the order the adjacent pairs
# are read from rests on some evidence about every system rather than on the arbitrary starting order.
RANK_WARMUP = 10


@dataclass(frozen=True)
class PairState:
    system_a: int  # index into the study's systems
    system_b: int
    n: int
    wins_a: int
    wins_b: int
    ties: int
    cs_low: float
    cs_high: float
    decided: str | None  # "a", "b" or None

    @property
    def half_width(self) -> float:
        return (self.cs_high - self.cs_low) / 2

    @property
    def mean(self) -> float | None:
        return (self.wins_a + self.ties / 2) / self.n if self.n else None


def rank_order(pairs: Sequence[PairState], systems: int) -> list[int]:
    """Systems strongest first by a Bradley–Terry fit to the pairs' counts (ties half a win each)."""
    wins = np.zeros((systems, systems))
    for p in pairs:
        wins[p.system_a, p.system_b] += p.wins_a + p.ties / 2
        wins[p.system_b, p.system_a] += p.wins_b + p.ties / 2
    beta = bt.fit(wins)
    return sorted(range(systems), key=lambda s: (-beta[s], s))


def open_pairs(pairs: Sequence[PairState], goal: str, half_width: float | None = None) -> list[bool]:
    """Per pair, whether the goal still needs it."""
    if goal == DECIDE_ALL:
        return [p.decided is None for p in pairs]
    if goal == HALF_WIDTH:
        if not half_width or half_width <= 0:
            raise ValueError("the half-width goal needs a half-width > 0")
        return [p.half_width > half_width for p in pairs]
    if goal == RANK:
        systems = 1 + max((max(p.system_a, p.system_b) for p in pairs), default=-1)
        order = rank_order(pairs, systems)
        adjacent = {frozenset(order[i : i + 2]) for i in range(len(order) - 1)}
        return [
            p.decided is None and (frozenset((p.system_a, p.system_b)) in adjacent or p.n < RANK_WARMUP) for p in pairs
        ]
    raise ValueError(f"unknown goal {goal!r}")


def goal_met(pairs: Sequence[PairState], goal: str, half_width: float | None = None) -> bool:
    if goal == RANK:
        systems = 1 + max((max(p.system_a, p.system_b) for p in pairs), default=-1)
        order = rank_order(pairs, systems)
        by_pair = {frozenset((p.system_a, p.system_b)): p for p in pairs}
        adjacent = [by_pair.get(frozenset(order[i : i + 2])) for i in range(len(order) - 1)]
        return bool(pairs) and all(p is not None and p.decided is not None for p in adjacent)
    return bool(pairs) and not any(open_pairs(pairs, goal, half_width))


def shrink_weight(pair: PairState) -> float:
    """Expected narrowing of the pair's interval from one more judgment: its width times 1 − √(n/(n+1))
    (widths fall roughly like 1/√n). A pair never judged has width 1 and gains the most."""
    width = pair.cs_high - pair.cs_low
    return width * (1 - math.sqrt(pair.n / (pair.n + 1)))


def _n_for_half_width(pair: PairState, target: float) -> int | None:
    """Judgments at which the half-width would reach `target`, if it keeps falling like √(log n / n), the
    rate of the betting sequence's bets (λₜ ∝ 1/√(t log t))."""
    if pair.n < 2 or target <= 0:
        return None
    now = pair.half_width
    if now <= target:
        return pair.n

    def at(m: float) -> float:
        return now * math.sqrt(pair.n * math.log1p(m) / (m * math.log1p(pair.n)))

    lo, hi = pair.n, 2 * pair.n
    while at(hi) > target:
        lo, hi = hi, 2 * hi
        if hi > 10**9:
            return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if at(mid) > target else (lo, mid)
    return hi


def judgments_left(pair: PairState, goal: str, half_width: float | None = None) -> int | None:
    """Rough extra judgments this pair needs (None: cannot tell yet, e.g. an estimate of exactly ½).

    Deciding needs the half-width to fall below the distance of the estimate from ½."""
    if goal == HALF_WIDTH:
        needed = _n_for_half_width(pair, half_width or 0)
    else:
        if pair.decided is not None:
            return 0
        mean = pair.mean
        if mean is None or mean == 0.5:
            return None
        needed = _n_for_half_width(pair, abs(mean - 0.5))
    return None if needed is None else max(0, needed - pair.n)


def pair_order(open_: Sequence[bool], weights: Sequence[float], drift_share: float, rng: random.Random) -> list[int]:
    """Indices of the pairs to try, best first: open pairs in a random order weighted by expected
    shrinkage (Efraimidis–Spirakis keys u^(1/w)); with probability `drift_share` one closed pair, chosen
    uniformly, goes first to keep checking for drift. Closed pairs are otherwise never served."""
    keyed = [(rng.random() ** (1 / max(w, 1e-12)), i) for i, (o, w) in enumerate(zip(open_, weights, strict=True)) if o]
    order = [i for _, i in sorted(keyed, reverse=True)]
    closed = [i for i, o in enumerate(open_) if not o]
    if order and closed and rng.random() < drift_share:
        order.insert(0, rng.choice(closed))
    return order
