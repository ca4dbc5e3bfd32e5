"""Anytime-valid figures: the confidence sequence's guarantee on simulated streams, an independent
brute-force version of the same construction, and the `sequential` rows of the report."""

from __future__ import annotations

import numpy as np
import pytest

from annotation.stats import TableError, make_table, preference_report
from annotation.stats.sequential import (
    TOLERANCE,
    confidence_sequence,
    e_value_path,
    ever_excludes,
    evidence_path,
    first_decision,
    outcomes,
    predictable_bets,
    sequential,
)

STREAMS = 2000
# Binomial simulation error of a coverage estimate near 95% over 2,000 streams is about 0.5 points;
# three standard errors of slack keeps the test honest without making it flaky.
SLACK = 3 * np.sqrt(0.95 * 0.05 / STREAMS)


def streams(p_a: float, p_tie: float, *, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.choice([1.0, 0.5, 0.0], size=(STREAMS, n), p=[p_a, p_tie, 1 - p_a - p_tie])


@pytest.mark.parametrize(("p_a", "p_tie"), [(0.45, 0.2), (0.7, 0.1), (0.3, 0.4)])
def test_the_sequence_covers_the_win_rate_at_every_time_in_95_percent_of_streams(p_a, p_tie):
    x = streams(p_a, p_tie, n=400, seed=int(100 * p_a))
    win_rate = p_a + p_tie / 2
    # "Never excluded at any time up to 400" is coverage of the running intersection at all times at once.
    coverage = 1 - ever_excludes(x, win_rate).mean()
    assert coverage >= 0.95 - SLACK
    low, high = confidence_sequence(x)
    assert np.mean((low <= win_rate) & (win_rate <= high)) >= coverage  # the last time is one of them


def test_peeking_after_every_judgment_decides_equal_systems_at_most_5_percent_of_the_time():
    x = streams(0.4, 0.2, n=400, seed=11)  # win rate exactly 1/2
    first, _ = first_decision(x)
    assert (first > 0).mean() <= 0.05 + SLACK
    p_min = 1 / e_value_path(x).max(axis=1)
    assert (p_min <= 0.05).mean() <= 0.05 + SLACK


def test_a_real_difference_is_decided_in_its_direction():
    x = streams(0.6, 0.2, n=600, seed=5)  # win rate 0.7
    first, side = first_decision(x)
    assert (side == 1).mean() > 0.95
    assert np.all(side >= 0)
    assert np.median(first[side == 1]) < 200


def brute_force(x: np.ndarray, alpha: float, grid: int = 4000) -> tuple[float, float]:
    """The same construction written from its definition, one candidate mean at a time, with plain loops
    over time and the running intersection taken explicitly."""
    n = len(x)
    bets = []
    mean, var_sum = 0.5, 0.25
    for t in range(1, n + 1):
        sigma2_prev = var_sum / t  # regularised variance of x_1..x_{t-1} with one pseudo-observation
        bets.append(np.sqrt(2 * np.log(2 / alpha) / (sigma2_prev * t * np.log(1 + t))))
        mean = (0.5 + x[:t].sum()) / (t + 1)
        var_sum += (x[t - 1] - mean) ** 2
    lows, highs = np.zeros(n), np.ones(n)
    for m in np.linspace(0, 1, grid + 1):
        k_plus = k_minus = 1.0
        for t in range(n):
            k_plus *= 1 + min(bets[t], 0.5 / m if m > 0 else np.inf) * (x[t] - m)
            k_minus *= 1 - min(bets[t], 0.5 / (1 - m) if m < 1 else np.inf) * (x[t] - m)
            if max(k_plus, k_minus) / 2 >= 1 / alpha:  # excluded at time t: the intersection drops m
                if m < x[: t + 1].mean():
                    lows[t:] = np.maximum(lows[t:], m)
                else:
                    highs[t:] = np.minimum(highs[t:], m)
                break
    return lows[-1], highs[-1]


@pytest.mark.parametrize("seed", range(4))
def test_bisection_finds_the_end_points_that_a_grid_over_the_definition_finds(seed):
    rng = np.random.default_rng(seed)
    x = rng.choice([1.0, 0.5, 0.0], size=int(rng.integers(20, 120)), p=rng.dirichlet([2, 1, 2]))
    low, high = confidence_sequence(x, 0.05)
    grid_low, grid_high = brute_force(x, 0.05)
    # The grid's excluded points are exact; the true end point lies within one grid step above/below them,
    # and the bisection stops within TOLERANCE of it, on the excluded (conservative) side.
    step = 1 / 4000 + 1e-9
    assert grid_low - TOLERANCE <= low <= grid_low + step
    assert grid_high - step <= high <= grid_high + TOLERANCE


def test_bets_use_only_the_past():
    x = np.array([1.0, 1.0, 0.0, 0.5, 1.0, 0.0])
    changed = x.copy()
    changed[3] = 0.0
    assert np.array_equal(predictable_bets(x, 0.05)[:4], predictable_bets(changed, 0.05)[:4])
    assert not np.array_equal(predictable_bets(x, 0.05)[4:], predictable_bets(changed, 0.05)[4:])


def test_decided_means_the_sequence_excluded_one_half():
    rng = np.random.default_rng(3)
    for _ in range(50):
        x = rng.choice([1.0, 0.5, 0.0], size=int(rng.integers(1, 300)), p=rng.dirichlet([1, 1, 1]))
        result = sequential(x, 0.05)
        assert result.cs_low <= result.mean <= result.cs_high
        if result.decided == "a":
            assert result.cs_low >= 0.5 - 1e-9
        elif result.decided == "b":
            assert result.cs_high <= 0.5 + 1e-9
        else:
            assert result.cs_low <= 0.5 + 1e-9
            assert result.cs_high >= 0.5 - 1e-9
        assert (result.decided is not None) == bool(ever_excludes(x, 0.5, 0.05))
        assert result.p_anytime <= 1 / result.e_value + 1e-12


def test_an_empty_stream_knows_nothing():
    result = sequential(np.array([]))
    assert (result.cs_low, result.cs_high, result.e_value, result.decided) == (0.0, 1.0, 1.0, None)


def columns(choices: list[str], times: list[float]) -> dict:
    n = len(choices)
    return {
        "item": [f"c{i}" for i in range(n)],
        "annotator": [f"ann{i % 5}" for i in range(n)],
        "system_a": ["ours"] * n,
        "system_b": ["o3-mini"] * n,
        "choice": choices,
        "created_at": times,
    }


def test_report_rows_follow_arrival_order_not_row_order():
    # "ours" (system_b after orientation) loses early and wins late: arrival order changes the path.
    choices = ["b"] * 40 + ["a"] * 60
    times = [float(t) for t in range(100)]
    row = preference_report(make_table(columns(choices, times)))["sequential"][0]
    assert (row["system_a"], row["system_b"], row["n"], row["family_size"]) == ("o3-mini", "ours", 100, 1)
    reversed_rows = columns(choices[::-1], times[::-1])  # same judgments, listed newest first
    assert preference_report(make_table(reversed_rows))["sequential"][0] == row
    other_order = columns(choices, times[::-1])  # the same outcomes arriving the other way round
    assert preference_report(make_table(other_order))["sequential"][0] != row


def test_iso_times_as_exports_write_them_are_read_and_bad_ones_refused():
    table = make_table(columns(["a", "b"], ["2026-11-30 11:35:09.5+00", "2026-11-30T11:35:10+00:00"]))
    assert table.created_at[1] - table.created_at[0] == pytest.approx(0.5)
    with pytest.raises(TableError, match="row 2: created_at"):
        make_table(columns(["a", "b"], ["2026-11-30 11:35:09+00", "yesterday"]))


def test_bonferroni_over_the_design_widens_every_sequence():
    choices = list(np.random.default_rng(0).choice(["a", "b", "tie"], 300, p=[0.55, 0.3, 0.15]))
    table = make_table(columns(choices, list(range(300))))
    alone = preference_report(table)["sequential"][0]
    in_family = preference_report(table, family_size=6)["sequential"][0]
    assert in_family["family_size"] == 6
    assert in_family["cs_low"] < alone["cs_low"]
    assert in_family["cs_high"] > alone["cs_high"]
    stream = outcomes(make_table(columns(choices, list(range(300)))).choice)
    # o3-mini (alphabetically first) is system_a: its outcomes are the mirror image of ours.
    assert alone["cs_low"] == pytest.approx(1 - confidence_sequence(stream, 0.05)[1])


def test_the_evidence_path_reaches_the_decision_line_exactly_when_the_pair_is_decided():
    rng = np.random.default_rng(8)
    for _ in range(20):
        x = rng.choice([1.0, 0.5, 0.0], size=300, p=rng.dirichlet([2, 1, 2]))
        path = evidence_path(x, 0.05, points=50)
        first, _ = first_decision(x, 0.05)
        crossing = [n for n, v in path if v >= np.log10(1 / 0.05)]
        assert (crossing[0] if crossing else 0) == first
        assert len(path) <= 51
        assert path[-1][0] == 300
