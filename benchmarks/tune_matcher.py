"""Fit the offline slot matcher's logistic weights on the elicitation benchmark's DEV split only, and print them
with the DEV and TEST figures. TEST is never used to choose anything: the regularisation strength and the
probability threshold are chosen by leave-one-task-out cross-validation within DEV.

    python benchmarks/tune_matcher.py            # needs scikit-learn (the dev extra)

Copy the printed weights into `training/slotscore.py` (`DEFAULT_MODEL`) with a new REWARD_SPEC_VERSION."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.benchmarks.elicitation import load_tasks
from training.embedding import embed
from training.slotscore import FEATURES, pair_features

C_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
THRESHOLDS = np.round(np.arange(0.2, 0.8, 0.05), 2)


def split_data(split: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per task: (features of every (question, fact) pair, labels)."""
    out = []
    for task in load_tasks(split):
        questions = [q for family in task.question_sets.values() for q in family]
        feats, _ = pair_features([q.text for q in questions], list(task.facts), task.masked_task, embed)
        labels = np.array([[j in q.asks for j in range(len(task.facts))] for q in questions])
        out.append((feats.reshape(-1, len(FEATURES)), labels.reshape(-1)))
    return out


def prf(pred: np.ndarray, gold: np.ndarray) -> tuple[float, float, float]:
    tp, fp, fn = int((pred & gold).sum()), int((pred & ~gold).sum()), int((~pred & gold).sum())
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    return p, r, 2 * p * r / (p + r) if p + r else 0.0


def main() -> None:
    from sklearn.linear_model import LogisticRegression

    dev, test = split_data("dev"), split_data("test")
    best = None
    for c in C_GRID:
        # Leave one DEV task out: probabilities for each task from a model fitted on the other DEV tasks.
        probs, golds = [], []
        for k in range(len(dev)):
            x = np.vstack([d[0] for i, d in enumerate(dev) if i != k])
            y = np.concatenate([d[1] for i, d in enumerate(dev) if i != k])
            model = LogisticRegression(C=c, max_iter=5000).fit(x, y)
            probs.append(model.predict_proba(dev[k][0])[:, 1])
            golds.append(dev[k][1])
        p, g = np.concatenate(probs), np.concatenate(golds)
        for t in THRESHOLDS:
            f1 = prf(p >= t, g)[2]
            if best is None or f1 > best[0]:
                best = (f1, c, float(t))
            if t in (0.3, 0.5):
                print(f"C={c:<5} threshold={t:.2f} DEV cross-validated F1={f1:.3f}")
    assert best is not None
    _, c, threshold = best
    x_dev, y_dev = np.vstack([d[0] for d in dev]), np.concatenate([d[1] for d in dev])
    model = LogisticRegression(C=c, max_iter=5000).fit(x_dev, y_dev)
    print(f"\nchosen on DEV (cross-validated F1 {best[0]:.3f}): C={c}, threshold={threshold}")
    print("weights = (" + ", ".join(f"{w:.4f}" for w in model.coef_[0]) + f"), bias = {model.intercept_[0]:.4f}")
    for name, w in zip(FEATURES, model.coef_[0], strict=True):
        print(f"  {name:18} {w:+.3f}")
    for name, data in (("DEV", dev), ("TEST", test)):
        x, y = np.vstack([d[0] for d in data]), np.concatenate([d[1] for d in data])
        p, r, f1 = prf(model.predict_proba(x)[:, 1] >= threshold, y)
        print(f"{name:4} question→fact pairs, before the simulator's rules: P {p:.3f} R {r:.3f} F1 {f1:.3f}")


if __name__ == "__main__":
    main()
