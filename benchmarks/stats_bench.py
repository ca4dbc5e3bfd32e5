"""Benchmark 1: preference statistics on 1,000,000 synthetic judgments (5 systems, 2 kinds).

Ours: the whole report (pairs with Wilson/sign test/Holm/item bootstrap, Bradley–Terry with 1000
item-bootstrap rounds and rank bounds, agreement, position bias, per-domain breakdown).
Baseline: only the Bradley–Terry bootstrap, the way Chatbot Arena's notebook does it — per round,
resample the battles with pandas and refit scikit-learn's LogisticRegression on the pivoted win
table. The baseline runs BASELINE_ROUNDS rounds per kind and is extrapolated linearly to 1000.

Each side runs in its own child process so that peak RSS is its own. Run:
    PYTHONPATH=. python benchmarks/stats_bench.py
"""

from __future__ import annotations

import json
import math
import resource
import subprocess
import sys
import time

import numpy as np

N = 1_000_000
ROUNDS = 1000
BASELINE_ROUNDS = 10
SYSTEMS = np.array(["gpt-4o", "llama-3-8b", "o3-mini", "ours", "qwen-2.5-7b"])
STRENGTH = np.array([0.0, -0.4, 0.2, 0.5, -0.2])


def synthetic(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    per_item = 3
    items = N // per_item + 1
    pairs = np.array([(i, j) for i in range(5) for j in range(i + 1, 5)])
    pair = pairs[rng.integers(0, len(pairs), items)]
    swap = rng.random(items) < 0.5  # candidate_a is not always the alphabetically first system
    sa, sb = np.where(swap, pair[:, 1], pair[:, 0]), np.where(swap, pair[:, 0], pair[:, 1])
    item = np.repeat(np.arange(items), per_item)[:N]
    a, b = sa[item], sb[item]
    p_a = 1 / (1 + np.exp(STRENGTH[b] - STRENGTH[a]))
    tie = rng.random(N) < 0.2
    choice = np.where(tie, "tie", np.where(rng.random(N) < p_a, "a", "b"))
    return {
        "item": item,
        "annotator": rng.integers(0, 300, N),
        "system_a": SYSTEMS[a],
        "system_b": SYSTEMS[b],
        "choice": choice,
        "kind": np.array(["outline", "questions"])[(item % 2)],
        "domain": np.array([f"domain-{d}" for d in range(9)])[item % 9],
        "left": np.where(rng.random(N) < 0.5, SYSTEMS[a], SYSTEMS[b]),
    }


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_ours() -> dict:
    from annotation.stats import make_table, preference_report

    cols = synthetic()
    before = rss_mb()
    started = time.perf_counter()
    report = preference_report(make_table(cols), rounds=ROUNDS)
    wall = time.perf_counter() - started
    ratings = {(r["kind"], r["system"]): round(r["rating"], 1) for r in report["ratings"]}
    return {"wall_s": wall, "peak_rss_mb": rss_mb(), "rss_after_data_mb": before, "ratings": str(ratings)}


def compute_mle_elo(df, scale: float = 400, base: float = 10, init: float = 1000):
    """Chatbot Arena's notebook function, unchanged in substance."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    a_win = pd.pivot_table(
        df[df["winner"] == "model_a"], index="model_a", columns="model_b", aggfunc="size", fill_value=0
    )
    tie = pd.pivot_table(df[df["winner"] == "tie"], index="model_a", columns="model_b", aggfunc="size", fill_value=0)
    tie = tie + tie.T
    b_win = pd.pivot_table(
        df[df["winner"] == "model_b"], index="model_a", columns="model_b", aggfunc="size", fill_value=0
    )
    win = a_win * 2 + b_win.T * 2 + tie
    models = pd.Series(np.arange(len(win.index)), index=win.index)
    p = len(models)
    x = np.zeros([p * (p - 1) * 2, p])
    y = np.zeros(p * (p - 1) * 2)
    row, weights = 0, []
    for m_a in win.index:
        for m_b in win.columns:
            if m_a == m_b or math.isnan(win.loc[m_a, m_b]) or math.isnan(win.loc[m_b, m_a]):
                continue
            x[row, models[m_a]], x[row, models[m_b]], y[row] = math.log(base), -math.log(base), 1.0
            weights.append(win.loc[m_a, m_b])
            x[row + 1, models[m_a]], x[row + 1, models[m_b]], y[row + 1] = math.log(base), -math.log(base), 0.0
            weights.append(win.loc[m_b, m_a])
            row += 2
    lr = LogisticRegression(fit_intercept=False, penalty=None, tol=1e-6)
    lr.fit(x[:row], y[:row], sample_weight=weights)
    return pd.Series(scale * lr.coef_[0] + init, index=models.index)


def run_baseline() -> dict:
    import pandas as pd

    cols = synthetic()
    df = pd.DataFrame(
        {
            "model_a": cols["system_a"],
            "model_b": cols["system_b"],
            "winner": pd.Series(cols["choice"]).map({"a": "model_a", "b": "model_b", "tie": "tie"}),
            "kind": cols["kind"],
        }
    )
    before = rss_mb()
    started = time.perf_counter()
    for kind in ("outline", "questions"):
        battles = df[df["kind"] == kind]
        compute_mle_elo(battles)
        for _ in range(BASELINE_ROUNDS):
            compute_mle_elo(battles.sample(frac=1.0, replace=True))
    measured = time.perf_counter() - started
    per_round = measured / (2 * (BASELINE_ROUNDS + 1))
    return {
        "wall_s_measured": measured,
        "wall_s": per_round * 2 * (ROUNDS + 1),
        "peak_rss_mb": rss_mb(),
        "rss_after_data_mb": before,
    }


def child(part: str) -> dict:
    out = subprocess.run([sys.executable, __file__, part], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ours, base = child("ours"), child("baseline")
    print(f"Stats benchmark: {N:,} judgments, 5 systems, 2 kinds, {ROUNDS} item-bootstrap rounds")
    print(f"{'':34}{'wall time':>14}{'peak RSS':>12}{'RSS after data':>16}")
    print(
        f"{'ours (full report)':34}{ours['wall_s']:>12.2f} s{ours['peak_rss_mb']:>9.0f} MB"
        f"{ours['rss_after_data_mb']:>13.0f} MB"
    )
    print(
        f"{'baseline (Arena BT bootstrap only)':34}{base['wall_s']:>12.1f} s{base['peak_rss_mb']:>9.0f} MB"
        f"{base['rss_after_data_mb']:>13.0f} MB"
    )
    print(
        f"  baseline measured {BASELINE_ROUNDS} rounds per kind in {base['wall_s_measured']:.1f} s, "
        f"extrapolated linearly to {ROUNDS} rounds"
    )
    print(f"speed-up: {base['wall_s'] / ours['wall_s']:.0f}x")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        print(json.dumps(run_ours() if sys.argv[1] == "ours" else run_baseline()))
    else:
        main()
