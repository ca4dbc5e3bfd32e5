"""Study goals on the anytime-valid state: open pairs, weights, serving order, estimates (pure)."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from annotation.stats.goal import (
    DECIDE_ALL,
    HALF_WIDTH,
    RANK,
    RANK_WARMUP,
    PairState,
    goal_met,
    judgments_left,
    open_pairs,
    pair_order,
    shrink_weight,
)


def state(a: int, b: int, *, n: int = 100, wins_a: int = 50, low: float = 0.4, high: float = 0.6, decided=None):
    return PairState(a, b, n, wins_a, n - wins_a, 0, low, high, decided)


def test_deciding_every_pair_needs_the_undecided_ones():
    pairs = [state(0, 1, decided="a"), state(0, 2), state(1, 2, decided="b")]
    assert open_pairs(pairs, DECIDE_ALL) == [False, True, False]
    assert not goal_met(pairs, DECIDE_ALL)
    assert goal_met([pairs[0], pairs[2]], DECIDE_ALL)


def test_the_half_width_goal_needs_wide_pairs_even_when_decided():
    pairs = [state(0, 1, low=0.70, high=0.78, decided="a"), state(0, 2, low=0.45, high=0.60)]
    assert open_pairs(pairs, HALF_WIDTH, 0.05) == [False, True]
    assert open_pairs(pairs, HALF_WIDTH, 0.08) == [False, False]
    with pytest.raises(ValueError, match="half-width"):
        open_pairs(pairs, HALF_WIDTH, None)


def test_ranking_needs_only_the_adjacent_pairs_once_every_pair_is_warmed_up():
    # True order 0 > 1 > 2 (system_a wins most against later systems).
    pairs = [
        state(0, 1, wins_a=70, low=0.52, high=0.85),
        state(0, 2, wins_a=90, low=0.8, high=0.97, decided="a"),
        state(1, 2, wins_a=65, low=0.45, high=0.8),
    ]
    assert open_pairs(pairs, RANK) == [True, False, True]
    cold = [state(0, 1, n=RANK_WARMUP - 1, wins_a=5), state(0, 2, n=3, wins_a=3), state(1, 2, n=200, wins_a=100)]
    assert open_pairs(cold, RANK)[1] is True  # not adjacent, but too few judgments to know the order yet
    decided = [
        state(0, 1, wins_a=70, low=0.55, high=0.85, decided="a"),
        pairs[1],
        state(1, 2, wins_a=70, low=0.52, high=0.8, decided="a"),
    ]
    assert goal_met(decided, RANK)
    assert not goal_met(pairs, RANK)


def test_the_expected_shrinkage_favours_wide_and_little_judged_pairs():
    fresh = state(0, 1, n=0, wins_a=0, low=0.0, high=1.0)
    wide = state(0, 1, n=20, wins_a=10, low=0.2, high=0.8)
    narrow = state(0, 1, n=20, wins_a=10, low=0.4, high=0.6)
    many = state(0, 1, n=400, wins_a=200, low=0.2, high=0.8)
    assert shrink_weight(fresh) == 1.0
    assert shrink_weight(wide) > shrink_weight(narrow) > 0
    assert shrink_weight(wide) > shrink_weight(many)


def test_open_pairs_are_served_in_proportion_to_their_weight_and_closed_ones_only_for_drift():
    rng = random.Random(0)
    firsts = Counter(pair_order([True, True, False], [3.0, 1.0, 5.0], 0.0, rng)[0] for _ in range(4000))
    assert set(firsts) == {0, 1}
    assert firsts[0] / 4000 == pytest.approx(0.75, abs=0.03)
    drift = Counter(pair_order([True, True, False], [3.0, 1.0, 5.0], 0.1, rng)[0] for _ in range(4000))
    assert drift[2] / 4000 == pytest.approx(0.1, abs=0.02)
    assert pair_order([False, False], [1.0, 1.0], 0.5, rng) == []  # nothing open: nothing served, not even drift


def test_the_estimate_of_judgments_left_grows_as_the_effect_shrinks():
    big = judgments_left(state(0, 1, n=100, wins_a=70, low=0.55, high=0.85), DECIDE_ALL)
    small = judgments_left(state(0, 1, n=100, wins_a=55, low=0.4, high=0.7), DECIDE_ALL)
    assert 0 <= big < small
    assert judgments_left(state(0, 1, wins_a=50), DECIDE_ALL) is None  # an exact tie: cannot tell
    assert judgments_left(state(0, 1, decided="a"), DECIDE_ALL) == 0
    assert judgments_left(state(0, 1, low=0.4, high=0.6), HALF_WIDTH, 0.1) == 0
    assert judgments_left(state(0, 1, low=0.4, high=0.6), HALF_WIDTH, 0.05) > 300  # halving takes > 4x
