"""The pure statistics, each figure checked against an independent implementation on random data."""

from __future__ import annotations

import itertools
import math

import krippendorff
import numpy as np
import pytest
from scipy import optimize, stats
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import fleiss_kappa
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from annotation.stats import TableError, make_table, preference_report, table_from_rows
from annotation.stats.agreement import cohen_kappa_mean, krippendorff_alpha_nominal, percent_agreement
from annotation.stats.bt import ELO_SCALE
from annotation.stats.proportions import items_needed, wilson_half_width

SYSTEMS = ["ours", "o3-mini", "gpt-4o", "llama"]


def random_columns(seed: int, *, items: int = 300, per_item: int | None = 3, annotators: int = 12) -> dict:
    rng = np.random.default_rng(seed)
    strength = dict(zip(SYSTEMS, rng.normal(0, 0.6, len(SYSTEMS)), strict=True))
    cols: dict[str, list] = {k: [] for k in ("item", "annotator", "system_a", "system_b", "choice", "kind", "domain")}
    cols["left"] = []
    cols["created_at"] = []
    for item in range(items):
        a, b = rng.choice(SYSTEMS, 2, replace=False)
        kind = ["questions", "outline"][item % 2]
        domain = ["travel", "legal", "grant"][rng.integers(3)]
        m = per_item or int(rng.integers(1, 5))
        for who in rng.choice(annotators, m, replace=False):
            p_a = 1 / (1 + math.exp(strength[b] - strength[a]))
            u = rng.random()
            choice = "tie" if u < 0.2 else ("a" if rng.random() < p_a else "b")
            cols["item"].append(f"c{item}")
            cols["annotator"].append(f"ann{who}")
            cols["system_a"].append(a)
            cols["system_b"].append(b)
            cols["choice"].append(choice)
            cols["kind"].append(kind)
            cols["domain"].append(domain)
            cols["left"].append(a if rng.random() < 0.6 else b)  # a deliberate lean to the left
            cols["created_at"].append(1.8e9 + 17.0 * len(cols["created_at"]))  # arrival order = row order
    return cols


def oriented_rows(cols: dict, reference: str | None = None):
    for i in range(len(cols["item"])):
        a, b, c = cols["system_a"][i], cols["system_b"][i], cols["choice"][i]
        flip = (b != reference and (a == reference or a > b)) if reference else a > b
        if flip:
            a, b, c = b, a, {"a": "b", "b": "a", "tie": "tie"}[c]
        yield cols["item"][i], cols["annotator"][i], cols["kind"][i], cols["domain"][i], a, b, c


@pytest.fixture(scope="module")
def cols() -> dict:
    return random_columns(7)


@pytest.fixture(scope="module")
def report(cols) -> dict:
    return preference_report(make_table(cols))


def test_pairs_are_oriented_alphabetically_and_count_every_judgment(cols, report):
    assert sum(row["n"] for row in report["pairs"]) == len(cols["item"])
    for row in report["pairs"]:
        assert row["system_a"] < row["system_b"]
        expected = {"a": 0, "b": 0, "tie": 0}
        for _, _, kind, _, a, b, c in oriented_rows(cols):
            if (kind, a, b) == (row["kind"], row["system_a"], row["system_b"]):
                expected[c] += 1
        assert (row["wins_a"], row["wins_b"], row["ties"]) == (expected["a"], expected["b"], expected["tie"])
        n = row["n"]
        assert row["win_rate_a"] == pytest.approx((row["wins_a"] + row["ties"] / 2) / n)
        assert row["margin_a"] == pytest.approx((row["wins_a"] - row["wins_b"]) / n)
        assert row["win_share"] + row["tie_share"] + row["loss_share"] == pytest.approx(1)


def test_a_reference_system_is_always_system_b(cols):
    report = preference_report(make_table(cols), reference="ours", rounds=1000)
    with_ours = [row for row in report["pairs"] if "ours" in (row["system_a"], row["system_b"])]
    assert with_ours
    assert all(row["system_b"] == "ours" for row in with_ours)
    others = [row for row in report["pairs"] if "ours" not in (row["system_a"], row["system_b"])]
    assert all(row["system_a"] < row["system_b"] for row in others)


def test_wilson_interval_matches_statsmodels(report):
    for row in report["pairs"] + report["domains"]:
        low, high = proportion_confint(row["wins_a"], row["wins_a"] + row["wins_b"], method="wilson")
        assert row["wilson_low"] == pytest.approx(low, abs=1e-12)
        assert row["wilson_high"] == pytest.approx(high, abs=1e-12)


def test_p_values_match_scipy_binomtest_and_holm_matches_statsmodels(report):
    for key in ("pairs", "domains"):
        rows = report[key]
        for row in rows:
            expected = stats.binomtest(row["wins_a"], row["wins_a"] + row["wins_b"], 0.5).pvalue
            assert row["p_value"] == pytest.approx(expected, rel=1e-9, abs=1e-15)
        holm = multipletests([row["p_value"] for row in rows], method="holm")[1]
        assert [row["p_holm"] for row in rows] == pytest.approx(list(holm), abs=1e-12)


def test_item_bootstrap_agrees_with_a_naive_item_resampling(cols, report):
    row = report["pairs"][0]
    by_item: dict[str, list[str]] = {}
    for item, _, kind, _, a, b, c in oriented_rows(cols):
        if (kind, a, b) == (row["kind"], row["system_a"], row["system_b"]):
            by_item.setdefault(item, []).append(c)
    counts = np.array([[v.count("a"), v.count("b"), v.count("tie")] for v in by_item.values()])
    rng = np.random.default_rng(123)
    rates = []
    for _ in range(4000):
        s = counts[rng.integers(0, len(counts), len(counts))].sum(0)
        rates.append((s[0] + s[2] / 2) / s.sum())
    low, high = np.percentile(rates, [2.5, 97.5])
    assert row["bootstrap_low"] == pytest.approx(low, abs=0.015)
    assert row["bootstrap_high"] == pytest.approx(high, abs=0.015)
    assert row["bootstrap_low"] < row["win_rate_a"] < row["bootstrap_high"]


def test_the_bootstrap_is_seeded(cols, report):
    again = preference_report(make_table(cols))
    assert again == report
    other = preference_report(make_table(cols), seed=1)
    assert other["pairs"][0]["bootstrap_low"] != report["pairs"][0]["bootstrap_low"]


def test_row_order_and_item_names_do_not_change_any_figure(cols, report):
    order = np.random.default_rng(3).permutation(len(cols["item"]))
    shuffled = {k: [v[i] for i in order] for k, v in cols.items()}
    shuffled["item"] = [int(x[1:]) * 7 + 1 for x in shuffled["item"]]  # numbered, not named
    assert preference_report(make_table(shuffled)) == report


def bt_by_scipy(cols, kind: str) -> dict[str, float]:
    names = sorted({s for _, _, k, _, a, b, _ in oriented_rows(cols) for s in (a, b) if k == kind})
    idx = {s: i for i, s in enumerate(names)}
    w = np.zeros((len(names), len(names)))
    for _, _, k, _, a, b, c in oriented_rows(cols):
        if k == kind:
            w[idx[a], idx[b]] += {"a": 1, "b": 0, "tie": 0.5}[c]
            w[idx[b], idx[a]] += {"a": 0, "b": 1, "tie": 0.5}[c]

    def nll(beta):
        d = beta[:, None] - beta[None, :]
        return -(w * -np.logaddexp(0, -d)).sum()

    beta = optimize.minimize(nll, np.zeros(len(names)), method="BFGS", options={"gtol": 1e-10}).x
    beta -= beta.mean()
    return {s: 1000 + ELO_SCALE * beta[i] for s, i in idx.items()}


def test_bradley_terry_ratings_match_a_direct_scipy_fit(cols, report):
    for kind in ("questions", "outline"):
        expected = bt_by_scipy(cols, kind)
        rows = [r for r in report["ratings"] if r["kind"] == kind]
        assert {r["system"]: r["rating"] for r in rows} == pytest.approx(expected, abs=1e-3)
        assert sum(r["rating"] for r in rows) / len(rows) == pytest.approx(1000)
        for r in rows:
            assert r["rating_low"] < r["rating"] < r["rating_high"]
            assert 1 <= r["rank_low"] <= r["rank"] <= r["rank_high"] <= len(rows)
        assert [r["rank"] for r in rows] == sorted(r["rank"] for r in rows)


def test_an_unbeaten_system_gets_a_capped_finite_rating():
    cols = {
        "item": [1, 2, 3, 4],
        "annotator": ["alice"] * 4,
        "system_a": ["ours", "ours", "x", "x"],
        "system_b": ["x", "y", "y", "y"],
        "choice": ["a", "a", "a", "b"],
    }
    ratings = preference_report(make_table(cols))["ratings"]
    assert ratings[0]["system"] == "ours"
    assert all(math.isfinite(r["rating"]) for r in ratings)


def reliability(cols, kind: str) -> tuple[np.ndarray, list]:
    rows = [r for r in oriented_rows(cols) if r[2] == kind]
    items = sorted({r[0] for r in rows})
    people = sorted({r[1] for r in rows})
    data = np.full((len(people), len(items)), np.nan)
    for item, who, _, _, _, _, c in rows:
        data[people.index(who), items.index(item)] = {"a": 0, "b": 1, "tie": 2}[c]
    return data, rows


def test_krippendorff_alpha_matches_the_krippendorff_package():
    cols = random_columns(11, per_item=None)  # 1 to 4 judgments per item: unbalanced
    report = preference_report(make_table(cols), rounds=1000)
    for row in report["agreement"]:
        data, _ = reliability(cols, row["kind"])
        expected = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
        assert row["krippendorff_alpha"] == pytest.approx(expected, abs=1e-10)
        assert row["fleiss_kappa"] is None  # unbalanced


def test_fleiss_kappa_matches_statsmodels_when_balanced(cols, report):
    for row in report["agreement"]:
        data, _ = reliability(cols, row["kind"])
        table = np.stack([(data == c).sum(0) for c in range(3)], 1)
        assert row["fleiss_kappa"] == pytest.approx(fleiss_kappa(table, method="fleiss"), abs=1e-10)


def test_mean_cohen_kappa_matches_sklearn_over_pairs_sharing_ten_items(report, cols):
    for row in report["agreement"]:
        data, _ = reliability(cols, row["kind"])
        kappas = []
        for u, v in itertools.combinations(range(len(data)), 2):
            both = ~np.isnan(data[u]) & ~np.isnan(data[v])
            if both.sum() >= 10:
                kappas.append(cohen_kappa_score(data[u][both], data[v][both], labels=[0, 1, 2]))
        assert row["cohen_pairs"] == len(kappas) > 0
        assert row["cohen_kappa_mean"] == pytest.approx(np.mean(kappas), abs=1e-10)


def test_percent_agreement_counts_agreeing_pairs_of_judgments():
    counts = np.array([[3, 0, 0], [1, 1, 1], [2, 0, 0], [1, 0, 0]])
    # item 1: 3 of 3 pairs agree; item 2: 0 of 3; item 3: 1 of 1; item 4: no pair
    assert percent_agreement(counts) == pytest.approx(4 / 7)


def test_agreement_is_undefined_rather_than_invented_for_a_single_value():
    assert krippendorff_alpha_nominal(np.array([[2, 0, 0], [3, 0, 0]])) is None
    assert cohen_kappa_mean(np.arange(3), np.zeros(3), np.zeros(3, dtype=np.int8)) == (None, 0)


def test_position_bias_matches_binomtest_per_kind_and_annotator(cols, report):
    for row in report["position_bias"]:
        left = n = 0
        for i in range(len(cols["item"])):
            if cols["kind"][i] != row["kind"] or cols["choice"][i] == "tie":
                continue
            if row["annotator"] is not None and cols["annotator"][i] != row["annotator"]:
                continue
            chosen = cols["system_a"][i] if cols["choice"][i] == "a" else cols["system_b"][i]
            n += 1
            left += chosen == cols["left"][i]
        assert (row["n"], row["left"]) == (n, left)
        if n:
            assert row["p_value"] == pytest.approx(stats.binomtest(left, n, 0.5).pvalue, rel=1e-9)
        mine = [
            c
            for k, c, a in zip(cols["kind"], cols["choice"], cols["annotator"], strict=True)
            if k == row["kind"] and row["annotator"] in (None, a)
        ]
        assert (row["judgments"], row["ties"]) == (len(mine), mine.count("tie"))
        assert row["tie_share"] == pytest.approx(mine.count("tie") / len(mine))
    overall = [r for r in report["position_bias"] if r["annotator"] is None]
    assert len(overall) == 2
    assert all(r["left_share"] > 0.5 for r in overall)  # the generator leans left


def test_domains_break_down_every_pair(cols, report):
    for row in report["pairs"]:
        parts = [
            d
            for d in report["domains"]
            if (d["kind"], d["system_a"], d["system_b"]) == (row["kind"], row["system_a"], row["system_b"])
        ]
        assert {d["domain"] for d in parts} <= {"travel", "legal", "grant"}
        assert sum(d["n"] for d in parts) == row["n"]
        assert sum(d["wins_a"] for d in parts) == row["wins_a"]
        assert all(d["bootstrap_low"] <= d["win_rate_a"] <= d["bootstrap_high"] for d in parts)


def test_excluded_annotators_leave_no_trace(cols):
    report = preference_report(make_table(cols), exclude_annotators=["ann0", "ann1"])
    kept = sum(1 for a in cols["annotator"] if a not in ("ann0", "ann1"))
    assert sum(row["n"] for row in report["pairs"]) == kept
    assert not {"ann0", "ann1"} & {r["annotator"] for r in report["position_bias"]}


@pytest.mark.parametrize(("wins_a", "wins_b", "items"), [(30, 20, 25), (70, 10, 40), (5, 5, 5), (400, 380, 300)])
def test_items_needed_is_the_smallest_number_reaching_the_target(wins_a, wins_b, items):
    extra = items_needed(wins_a, wins_b, items, target=0.05)
    p, per_item = wins_a / (wins_a + wins_b), (wins_a + wins_b) / items
    assert wilson_half_width(p, wins_a + wins_b + extra * per_item) <= 0.05
    if extra > 0:
        assert wilson_half_width(p, wins_a + wins_b + (extra - 1) * per_item) > 0.05


def test_items_needed_is_zero_when_the_interval_is_already_narrow_enough():
    assert items_needed(3000, 2000, 2000) == 0
    assert items_needed(0, 0, 4) is None


def test_a_bad_choice_is_reported_with_its_row():
    with pytest.raises(TableError, match=r"row 2: choice 'left'"):
        make_table(
            {
                "item": [1, 2],
                "annotator": ["a", "b"],
                "system_a": ["x", "x"],
                "system_b": ["y", "y"],
                "choice": ["a", "left"],
            }
        )


def test_a_missing_column_and_a_self_comparison_are_refused():
    with pytest.raises(TableError, match="missing column"):
        table_from_rows([{"item": 1, "choice": "a"}])
    with pytest.raises(TableError, match="same system"):
        make_table({"item": [1], "annotator": ["a"], "system_a": ["x"], "system_b": ["x"], "choice": ["a"]})


def test_an_item_judged_under_two_pairs_is_refused():
    with pytest.raises(ValueError, match="different system pairs"):
        preference_report(
            make_table(
                {
                    "item": [1, 1],
                    "annotator": ["a", "b"],
                    "system_a": ["x", "x"],
                    "system_b": ["y", "z"],
                    "choice": ["a", "a"],
                }
            )
        )
