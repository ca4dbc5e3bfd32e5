"""The simulator-fidelity statistics, checked against sklearn and scipy, and at their extremes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import bootstrap, kendalltau
from sklearn.metrics import cohen_kappa_score

from annotation.stats.fidelity import TranscriptRecord, cohen_kappa, fidelity_report, kappa_from_counts


def record(
    i: int, task: str, system: str, human: list[list[int]], sim: list[list[int]], n_facts: int = 3, **extra
) -> TranscriptRecord:
    def cov(revealed: list[list[int]]) -> float:
        return len({f for q in revealed for f in q}) / n_facts

    return TranscriptRecord(
        transcript_id=i,
        task=task,
        system=system,
        questions=[f"Q{k}?" for k in range(len(human))],
        facts=[f"fact {k}" for k in range(n_facts)],
        human_answers=[f"h{k}" for k in range(len(human))],
        simulated_answers=[f"s{k}" for k in range(len(human))],
        human_revealed=human,
        simulated_revealed=sim,
        human_reward=extra.get("human_reward", cov(human)),
        simulated_reward=extra.get("simulated_reward", cov(sim)),
        human_coverage=cov(human),
        simulated_coverage=cov(sim),
    )


@pytest.mark.parametrize("seed", range(5))
def test_kappa_matches_sklearn_on_random_labels(seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2, 200)
    b = np.where(rng.random(200) < 0.7, a, rng.integers(0, 2, 200))
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b))
    n11, n10 = np.sum((a == 1) & (b == 1)), np.sum((a == 1) & (b == 0))
    n01, n00 = np.sum((a == 0) & (b == 1)), np.sum((a == 0) & (b == 0))
    assert float(kappa_from_counts(n11, n10, n01, n00)) == pytest.approx(cohen_kappa_score(a, b))
    three = rng.integers(0, 3, 200)
    assert cohen_kappa(three, b) == pytest.approx(cohen_kappa_score(three, b))


def test_report_kappa_agreement_and_coverage_difference_match_the_references():
    rng = np.random.default_rng(7)
    records = []
    for i in range(60):
        human = [sorted(set(rng.choice(4, rng.integers(0, 3), replace=False).tolist())) for _ in range(3)]
        sim = [q if rng.random() < 0.6 else sorted(set(rng.choice(4, 1).tolist())) for q in human]
        records.append(record(i, f"t{i % 20}", "s", human, sim, n_facts=4))
    report = fidelity_report(records, rounds=2000, seed=3)
    overall = report["overall"]
    h = np.concatenate([np.isin(np.arange(4), q) for r in records for q in r.human_revealed])
    s = np.concatenate([np.isin(np.arange(4), q) for r in records for q in r.simulated_revealed])
    assert overall["kappa"]["mean"] == pytest.approx(cohen_kappa_score(h, s))
    assert overall["agreement"]["mean"] == pytest.approx(np.mean(h == s))
    diff = np.array([r.simulated_coverage - r.human_coverage for r in records])
    assert overall["optimism"]["mean"] == pytest.approx(diff.mean())
    # The interval resamples tasks; scipy's percentile bootstrap over the per-task mean difference (equal
    # transcripts per task here, so the two estimands coincide) must land close by.
    per_task = diff.reshape(3, 20).mean(axis=0)
    ref = bootstrap((per_task,), np.mean, n_resamples=4000, method="percentile", random_state=1).confidence_interval
    assert overall["optimism"]["lo"] == pytest.approx(ref.low, abs=0.02)
    assert overall["optimism"]["hi"] == pytest.approx(ref.high, abs=0.02)
    assert overall["false_reveals"] == int(np.sum(~h & s))
    assert overall["misses"] == int(np.sum(h & ~s))


def test_kendall_tau_between_system_rankings_matches_scipy():
    rng = np.random.default_rng(11)
    human_means = rng.random(6)
    sim_means = human_means + rng.normal(0, 0.3, 6)
    records = [
        record(
            10 * k + t, f"t{t}", f"sys-{k}", [[0]], [[0]], human_reward=human_means[k], simulated_reward=sim_means[k]
        )
        for k in range(6)
        for t in range(4)
    ]
    ranking = fidelity_report(records, rounds=200)["ranking"]
    assert ranking["kendall_tau"]["mean"] == pytest.approx(kendalltau(human_means, sim_means).statistic)
    by_name = {r["system"]: r for r in ranking["systems"]}
    assert by_name[f"sys-{int(np.argmax(human_means))}"]["human_rank"] == 1
    assert by_name[f"sys-{int(np.argmax(sim_means))}"]["simulated_rank"] == 1


def test_perfect_agreement_gives_kappa_one_no_optimism_and_tau_one():
    records = []
    for t in range(5):
        for k, system in enumerate(("a", "b", "c")):
            revealed = [[0], [1] if k else [], []][:3]
            records.append(
                record(t * 3 + k, f"t{t}", system, revealed, revealed, human_reward=k / 3, simulated_reward=k / 3)
            )
    report = fidelity_report(records, rounds=300)
    o = report["overall"]
    assert o["kappa"]["mean"] == pytest.approx(1.0)
    assert (o["kappa"]["lo"], o["kappa"]["hi"]) == (pytest.approx(1.0), pytest.approx(1.0))
    assert o["agreement"]["mean"] == 1.0
    assert o["optimism"]["mean"] == 0.0
    assert o["false_reveals"] == o["misses"] == 0
    assert report["ranking"]["kendall_tau"]["mean"] == pytest.approx(1.0)
    assert all(s["false_reveal_examples"] == [] and s["miss_examples"] == [] for s in report["systems"])


def test_total_disagreement_gives_kappa_minus_one_full_optimism_and_reversed_ranking():
    records = []
    for t in range(5):
        for k, system in enumerate(("a", "b", "c")):
            # Every cell differs: the simulator reveals exactly the facts the person did not (and each rater says
            # "revealed" for half the cells, so κ reaches its floor of −1).
            human = [[0, 1, 2], []]
            sim = [[], [0, 1, 2]]
            records.append(
                record(t * 3 + k, f"t{t}", system, human, sim, human_reward=k / 3, simulated_reward=1 - k / 3)
            )
    report = fidelity_report(records, rounds=300)
    o = report["overall"]
    assert o["agreement"]["mean"] == 0.0
    assert o["kappa"]["mean"] == pytest.approx(-1.0)
    assert o["optimism"]["mean"] == 0.0  # both reveal all three facts once: coverage alone cannot see it
    assert o["false_reveals"] == o["misses"] == 5 * 3 * 3
    assert report["ranking"]["kendall_tau"]["mean"] == pytest.approx(-1.0)
    example = report["systems"][0]["false_reveal_examples"][0]
    assert (example["question"], example["human_answer"], example["simulated_answer"]) == ("Q1?", "h1", "s1")


def test_an_optimistic_simulator_shows_positive_optimism_with_an_interval_above_zero():
    records = [record(t, f"t{t}", "s", [[], [], []], [[0], [1], []]) for t in range(12)]
    o = fidelity_report(records, rounds=500)["overall"]
    assert o["human_coverage"]["mean"] == 0.0
    assert o["simulated_coverage"]["mean"] == pytest.approx(2 / 3)
    assert o["optimism"]["lo"] > 0


def test_an_empty_report_is_explicit():
    assert fidelity_report([]) == {"n_transcripts": 0, "overall": None, "systems": [], "ranking": None, "per_task": []}
