"""Simulation: peeking at fixed-sample tests vs anytime-valid ones, and judgments saved by adaptive allocation.

    PYTHONPATH=. python benchmarks/sequential_sim.py [--null-studies 1000] [--studies 200] [--seed 0]

1. Error under peeking. Two truly equal systems (20% ties). The researcher looks after every 20 judgments,
   up to 2,000, and stops at the first "significant" result: the fixed-sample sign test (p < 0.05 on the
   decisive judgments, what the results page shows as p) vs the anytime-valid confidence sequence
   excluding 50% (annotation/stats/sequential.py, α = 0.05).
2. Savings. Four systems with Bradley–Terry strengths (log-odds of winning a decisive judgment)
   ours +0.73, o3-mini 0, sft −0.365, base −0.73, and 20% ties: ours vs o3-mini is the paper's outline
   result (28-point margin: 54% wins, 26% losses), the two weaker variants sit half that gap apart.
   Goal: decide every pair (6 pairs, Bonferroni: each sequence at α/6). Judgments until the goal is met:
   - adaptive: the engine's own policy (annotation/stats/goal.py: open pairs weighted by expected
     shrinkage, 5% drift checks on decided pairs), acting on pair states refreshed every 20 judgments
     (a refresh lag, as in production);
   - uniform: today's allocation (every pair in turn), the same anytime-valid stopping, same refresh cadence;
   - fixed: a design sized in advance by today's estimate: a pilot of 20 judgments per pair, then
     `items_needed` (extra judgments for a ±5-point Wilson half-width at the pilot's rates), the largest
     over pairs given to every pair (today's studies give every pair the same overlap). It is analysed
     once at the end with sign tests and Holm; the table shows how often it then decides every pair.
   Errors: a pair decided in the wrong direction, per study (family-wise).
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from annotation.stats.goal import DECIDE_ALL, PairState, judgments_left, pair_order, shrink_weight
from annotation.stats.proportions import holm, items_needed, sign_test
from annotation.stats.sequential import confidence_sequence, first_decision

ALPHA = 0.05
TIES = 0.2
LOOK_EVERY = 20
LOOKS_UP_TO = 2000
STRENGTHS = {"ours": 0.73, "o3-mini": 0.0, "sft": -0.365, "base": -0.73}
REFRESH_EVERY = 20
DRIFT_SHARE = 0.05
PILOT = 20
MAX_PER_PAIR = 20_000  # stream length per pair; a pair not decided by then counts as never decided
ESTIMATE_AT = (400, 1200)  # judgments after which the "judgments left" estimate is compared with what it took


def draw(rng: np.random.Generator, p_a: float, shape: tuple[int, ...]) -> np.ndarray:
    """Outcomes for system a: 1 win, ½ tie, 0 loss."""
    u = rng.random(shape)
    return np.where(u < TIES, 0.5, np.where(u < TIES + (1 - TIES) * p_a, 1.0, 0.0))


def peeking(null_studies: int, rng: np.random.Generator) -> tuple[float, float]:
    x = draw(rng, 0.5, (null_studies, LOOKS_UP_TO))
    looks = np.arange(LOOK_EVERY, LOOKS_UP_TO + 1, LOOK_EVERY)
    wins = np.cumsum(x == 1.0, axis=1)[:, looks - 1]
    losses = np.cumsum(x == 0.0, axis=1)[:, looks - 1]
    fixed = (sign_test(wins, wins + losses) < ALPHA).any(axis=1).mean()
    first, _ = first_decision(x, ALPHA)
    # Once the running intersection excludes ½ it stays excluded, so a decision at any time ≤ 2000 is
    # seen at the next look.
    anytime = (first > 0).mean()
    return float(fixed), float(anytime)


def study_streams(rng: np.random.Generator) -> tuple[list[tuple[int, int]], np.ndarray, np.ndarray]:
    names = list(STRENGTHS)
    pairs = list(itertools.combinations(range(len(names)), 2))
    p_a = np.array([1 / (1 + np.exp(STRENGTHS[names[b]] - STRENGTHS[names[a]])) for a, b in pairs])
    streams = np.stack([draw(rng, p, (MAX_PER_PAIR,)) for p in p_a])
    return pairs, p_a, streams


def decisions(streams: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Per pair: judgments at which its sequence first excludes ½, and the side. Depends only on the
    pair's own stream, so it is the same under any allocation."""
    return first_decision(streams, alpha)


def adaptive(pairs, streams, first, seed: int) -> tuple[int | None, dict[int, tuple[int, int]]]:  # type: ignore[no-untyped-def]
    """(judgments until every pair is decided, {ESTIMATE_AT point: (estimated, actual) judgments left})."""
    rng = random.Random(seed)
    m = len(pairs)
    served = [0] * m
    decided = [False] * m
    weights = [1.0] * m
    total = 0
    estimates: dict[int, tuple[int, int]] = {}  # point -> (total then, estimate then)
    while True:
        for _ in range(REFRESH_EVERY):
            order = pair_order([not d for d in decided], weights, DRIFT_SHARE, rng)
            served[order[0]] += 1
            total += 1
        left: list[int | None] = []
        for j in range(m):  # the refresh: what the worker computes from the judgments so far
            decided[j] = 0 < first[j] <= served[j]
            if not decided[j]:
                seen = streams[j, : served[j]]
                low, high = confidence_sequence(seen, ALPHA / m)
                wins, ties = int((seen == 1.0).sum()), int((seen == 0.5).sum())
                state = PairState(
                    *pairs[j], served[j], wins, served[j] - wins - ties, ties, float(low), float(high), None
                )
                weights[j] = shrink_weight(state)
                left.append(judgments_left(state, DECIDE_ALL))
        for point in ESTIMATE_AT:
            if point not in estimates and total >= point and left and None not in left:
                estimates[point] = (total, sum(left))  # type: ignore[arg-type]
        if all(decided):
            return total, {point: (guess, total - then) for point, (then, guess) in estimates.items()}
        if max(served) >= MAX_PER_PAIR:
            return None, {}


def uniform(first: np.ndarray) -> int | None:
    """Every pair in turn; the goal is checked at the same refresh cadence."""
    m = len(first)
    if np.any(first == 0):
        return None
    needed = int(max(m * (t - 1) + j + 1 for j, t in enumerate(first)))
    return -(-needed // REFRESH_EVERY) * REFRESH_EVERY


def fixed_design(p_a: np.ndarray, streams: np.ndarray) -> tuple[int, bool, bool]:
    """(judgments, every pair decided correctly, some pair decided wrongly) for the pilot-sized design."""
    pilot = streams[:, :PILOT]
    extra = [items_needed(int((row == 1.0).sum()), int((row == 0.0).sum()), PILOT, target=0.05) or 0 for row in pilot]
    per_pair = min(PILOT + max(extra), MAX_PER_PAIR)
    data = streams[:, :per_pair]
    wins, losses = (data == 1.0).sum(axis=1), (data == 0.0).sum(axis=1)
    significant = holm(sign_test(wins, wins + losses)) < ALPHA
    right = np.sign(wins - losses) == np.sign(p_a - 0.5)
    return per_pair * len(p_a), bool(np.all(significant & right)), bool(np.any(significant & ~right))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--null-studies", type=int, default=1000)
    parser.add_argument("--studies", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    rng = np.random.default_rng(args.seed)

    fixed_fp, anytime_fp = peeking(args.null_studies, rng)
    se = np.sqrt(0.05 * 0.95 / args.null_studies)
    print(f"1. Error under peeking: {args.null_studies} studies of two equal systems, a look every {LOOK_EVERY}")
    print(f"   judgments up to {LOOKS_UP_TO}, stop at the first significant look")
    print(f"   {'test':<46}{'false-positive rate':>20}")
    print(f"   {'fixed-sample sign test, p < 0.05':<46}{100 * fixed_fp:>19.1f}%")
    print(f"   {'anytime-valid confidence sequence (α = 0.05)':<46}{100 * anytime_fp:>19.1f}%")
    print(f"   (simulation standard error at 5%: ±{100 * se:.1f} points)")

    results: dict[str, list] = {"adaptive": [], "uniform": [], "fixed": []}
    wrong = {"adaptive": 0, "uniform": 0, "fixed": 0}
    undecided = {"adaptive": 0, "uniform": 0}
    fixed_all = 0
    paired: list[float] = []
    estimates: dict[int, list[float]] = {}
    for s in range(args.studies):
        pairs, p_a, streams = study_streams(rng)
        first, side = decisions(streams, ALPHA / len(pairs))
        truth = np.sign(p_a - 0.5)
        made_error = bool(np.any((side != 0) & (side != truth)))
        adaptive_total, guesses = adaptive(pairs, streams, first, seed=s)
        for point, (guess, actual) in guesses.items():
            if actual > 0:
                estimates.setdefault(point, []).append(guess / actual)
        totals = {"adaptive": adaptive_total, "uniform": uniform(first)}
        for name, total in totals.items():
            if total is None:
                undecided[name] += 1
            else:
                results[name].append(total)
            # Each pair's judgments are the same stream under both allocations, so its decision is too:
            # the allocation changes only how many judgments the other pairs get meanwhile.
            wrong[name] += made_error
        if None not in totals.values():
            paired.append(totals["adaptive"] / totals["uniform"])
        total, all_right, any_wrong = fixed_design(p_a, streams)
        results["fixed"].append(total)
        fixed_all += all_right
        wrong["fixed"] += any_wrong

    print()
    print(f"2. Savings: {args.studies} studies, 4 systems {STRENGTHS}, {100 * TIES:.0f}% ties,")
    print("   goal: decide every pair (6 pairs, family-wise α = 0.05)")
    print(f"   {'allocation':<44}{'mean':>8}{'median':>8}{'p90':>8}{'wrong dir.':>11}{'goal met':>10}")
    rows = (
        ("adaptive (open pairs by expected shrinkage)", "adaptive"),
        ("uniform, same anytime-valid stopping", "uniform"),
        ("fixed, sized by today's estimate (pilot 20)", "fixed"),
    )
    for label, key in rows:
        arr = np.array(results[key], dtype=float)
        met = (
            f"{100 * fixed_all / args.studies:.0f}%"
            if key == "fixed"
            else f"{100 * (args.studies - undecided[key]) / args.studies:.0f}%"
        )
        print(
            f"   {label:<44}{arr.mean():>8.0f}{np.median(arr):>8.0f}{np.percentile(arr, 90):>8.0f}"
            f"{100 * wrong[key] / args.studies:>10.1f}%{met:>10}"
        )
    adaptive_mean, uniform_mean = np.mean(results["adaptive"]), np.mean(results["uniform"])
    print(
        f"   adaptive uses {100 * (1 - adaptive_mean / uniform_mean):.1f}% fewer judgments than uniform "
        f"(mean of totals; median per-study saving {100 * (1 - np.median(paired)):.1f}%); target ≥ 40%"
    )
    for point, ratios in sorted(estimates.items()):
        ratio = np.array(ratios)
        print(
            f"   'judgments left' estimate after {point} judgments / what it took: median {np.median(ratio):.2f}, "
            f"within a factor 2 in {100 * np.mean((ratio > 0.5) & (ratio < 2)):.0f}% of {len(ratio)} studies still open"
        )
    print(f"   ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
