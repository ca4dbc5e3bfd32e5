"""Simulator fidelity: how far the user simulator is from people who answer the same questions in character.

Pure: numpy/scipy only, no Django. Input: one `TranscriptRecord` per human answer set, already scored with
the reward's matcher (training/human_answers.py). Every interval is a 95% percentile bootstrap over tasks
(a task's transcripts move together, since answers about one task are not independent)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DEFAULT_ROUNDS = 1000
MAX_EXAMPLES = 5


@dataclass(frozen=True)
class TranscriptRecord:
    transcript_id: int
    task: str
    system: str
    questions: list[str]
    facts: list[str]
    human_answers: list[str]
    simulated_answers: list[str]
    human_revealed: list[list[int]]  # per question, indices into facts
    simulated_revealed: list[list[int]]
    human_reward: float
    simulated_reward: float
    human_coverage: float
    simulated_coverage: float
    extra: dict[str, Any] = field(default_factory=dict)


def cohen_kappa(a: Sequence[Any], b: Sequence[Any]) -> float | None:
    """Cohen's κ of two raters' labels; None when chance agreement is 1 (both raters constant and equal)."""
    a_arr, b_arr = np.asarray(a), np.asarray(b)
    if a_arr.shape != b_arr.shape or a_arr.size == 0:
        raise ValueError("two label sequences of the same, non-zero length are needed")
    labels = np.union1d(a_arr, b_arr)
    ai, bi = np.searchsorted(labels, a_arr), np.searchsorted(labels, b_arr)
    confusion = np.zeros((labels.size, labels.size))
    np.add.at(confusion, (ai, bi), 1)
    n = confusion.sum()
    observed = np.trace(confusion) / n
    expected = float(confusion.sum(axis=1) @ confusion.sum(axis=0)) / n**2
    return None if expected >= 1 else float((observed - expected) / (1 - expected))


def kappa_from_counts(n11: np.ndarray, n10: np.ndarray, n01: np.ndarray, n00: np.ndarray) -> np.ndarray:
    """Binary Cohen's κ from 2×2 counts (rater 1 = human, rater 2 = simulator), vectorised; NaN where undefined."""
    n11, n10, n01, n00 = (np.asarray(x, dtype=float) for x in (n11, n10, n01, n00))
    n = n11 + n10 + n01 + n00
    with np.errstate(invalid="ignore", divide="ignore"):
        observed = (n11 + n00) / n
        human_yes, sim_yes = (n11 + n10) / n, (n11 + n01) / n
        expected = human_yes * sim_yes + (1 - human_yes) * (1 - sim_yes)
        kappa = (observed - expected) / (1 - expected)
    return np.where(expected >= 1 - 1e-12, np.nan, kappa)


def _cells(record: TranscriptRecord) -> tuple[np.ndarray, np.ndarray]:
    """Per (question, fact): did the human reveal it, did the simulator."""
    q, f = len(record.questions), len(record.facts)
    human, sim = np.zeros((q, f), dtype=bool), np.zeros((q, f), dtype=bool)
    for i, facts in enumerate(record.human_revealed):
        human[i, list(facts)] = True
    for i, facts in enumerate(record.simulated_revealed):
        sim[i, list(facts)] = True
    return human.ravel(), sim.ravel()


def _interval(values: np.ndarray, point: float | None) -> dict[str, float | None]:
    finite = values[np.isfinite(values)]
    if point is None or not np.isfinite(point) or finite.size == 0:
        return {"mean": None if point is None or not np.isfinite(point) else float(point), "lo": None, "hi": None}
    return {"mean": float(point), "lo": float(np.quantile(finite, 0.025)), "hi": float(np.quantile(finite, 0.975))}


def _task_weights(n_tasks: int, rounds: int, rng: np.random.Generator) -> np.ndarray:
    """(rounds, n_tasks): how often each task is drawn in each bootstrap resample."""
    draws = rng.integers(0, n_tasks, size=(rounds, n_tasks))
    weights = np.zeros((rounds, n_tasks))
    np.add.at(weights, (np.repeat(np.arange(rounds), n_tasks), draws.ravel()), 1)
    return weights


_SUMS = ("n11", "n10", "n01", "n00", "transcripts", "human_cov", "sim_cov", "human_reward", "sim_reward")


def _per_task_sums(records: Sequence[TranscriptRecord], tasks: list[str]) -> np.ndarray:
    """(n_tasks, len(_SUMS)) sufficient statistics per task; every figure below is a ratio of these."""
    index = {t: i for i, t in enumerate(tasks)}
    sums = np.zeros((len(tasks), len(_SUMS)))
    for r in records:
        human, sim = _cells(r)
        row = sums[index[r.task]]
        row += [
            np.sum(human & sim),
            np.sum(human & ~sim),
            np.sum(~human & sim),
            np.sum(~human & ~sim),
            1,
            r.human_coverage,
            r.simulated_coverage,
            r.human_reward,
            r.simulated_reward,
        ]
    return sums


def _figures(totals: np.ndarray) -> dict[str, np.ndarray]:
    """Figures from summed statistics; `totals` is (..., len(_SUMS))."""
    col = {name: totals[..., i] for i, name in enumerate(_SUMS)}
    cells = col["n11"] + col["n10"] + col["n01"] + col["n00"]
    with np.errstate(invalid="ignore", divide="ignore"):
        n = col["transcripts"]
        human_cov, sim_cov = col["human_cov"] / n, col["sim_cov"] / n
        human_reward, sim_reward = col["human_reward"] / n, col["sim_reward"] / n
        return {
            "kappa": kappa_from_counts(col["n11"], col["n10"], col["n01"], col["n00"]),
            "agreement": (col["n11"] + col["n00"]) / cells,
            "human_coverage": human_cov,
            "simulated_coverage": sim_cov,
            "optimism": sim_cov - human_cov,
            "human_reward": human_reward,
            "simulated_reward": sim_reward,
            "reward_difference": sim_reward - human_reward,
        }


def _group_summary(records: Sequence[TranscriptRecord], rounds: int, seed: int) -> dict[str, Any]:
    tasks = sorted({r.task for r in records})
    sums = _per_task_sums(records, tasks)
    point = _figures(sums.sum(axis=0))
    boot = _figures(_task_weights(len(tasks), rounds, np.random.default_rng(seed)) @ sums)
    out: dict[str, Any] = {
        "n_tasks": len(tasks),
        "n_transcripts": len(records),
        "n_questions": sum(len(r.questions) for r in records),
        "n_cells": int(sums[:, :4].sum()),
        "false_reveals": int(sums[:, 2].sum()),  # the simulator revealed a fact the person did not
        "misses": int(sums[:, 1].sum()),  # the person revealed a fact the simulator did not
        "both_revealed": int(sums[:, 0].sum()),
    }
    for name, value in point.items():
        out[name] = _interval(boot[name], float(value))
    return out


def _examples(records: Sequence[TranscriptRecord], want: tuple[bool, bool]) -> list[dict[str, Any]]:
    """Cells where (human, simulator) revealed == want, as readable examples linked to their transcript."""
    found = []
    for r in records:
        for qi in range(len(r.questions)):
            human = set(r.human_revealed[qi]) if qi < len(r.human_revealed) else set()
            sim = set(r.simulated_revealed[qi]) if qi < len(r.simulated_revealed) else set()
            for fi, fact in enumerate(r.facts):
                if ((fi in human), (fi in sim)) == want:
                    found.append(
                        {
                            "transcript_id": r.transcript_id,
                            "task": r.task,
                            "system": r.system,
                            "question_index": qi,
                            "question": r.questions[qi],
                            "fact": fact,
                            "human_answer": r.human_answers[qi],
                            "simulated_answer": r.simulated_answers[qi] if qi < len(r.simulated_answers) else "",
                        }
                    )
                    if len(found) >= MAX_EXAMPLES:
                        return found
    return found


def _ranks(values: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(-values, method="min").astype(int)  # 1 = best


def _kendall_tau(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import kendalltau

    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(kendalltau(x, y).statistic)


def _ranking(records: Sequence[TranscriptRecord], rounds: int, seed: int) -> dict[str, Any]:
    """Whether the simulator orders systems as people do: per-system mean reward under each, ranks, Kendall τ-b."""
    systems = sorted({r.system for r in records})
    tasks = sorted({r.task for r in records})
    # (n_tasks, n_systems) sums of reward and counts, so a resample of tasks reweights every system at once.
    index_t, index_s = {t: i for i, t in enumerate(tasks)}, {s: i for i, s in enumerate(systems)}
    human, sim, count = (np.zeros((len(tasks), len(systems))) for _ in range(3))
    for r in records:
        t, s = index_t[r.task], index_s[r.system]
        human[t, s] += r.human_reward
        sim[t, s] += r.simulated_reward
        count[t, s] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        human_mean, sim_mean = human.sum(0) / count.sum(0), sim.sum(0) / count.sum(0)
        weights = _task_weights(len(tasks), rounds, np.random.default_rng(seed + 1))
        n_boot = weights @ count
        human_boot, sim_boot = (weights @ human) / n_boot, (weights @ sim) / n_boot
    taus = np.full(rounds, np.nan)
    for b in range(rounds):
        ok = np.isfinite(human_boot[b]) & np.isfinite(sim_boot[b])  # a system absent from a resample drops out
        taus[b] = _kendall_tau(human_boot[b][ok], sim_boot[b][ok])
    human_rank, sim_rank = _ranks(human_mean), _ranks(sim_mean)
    return {
        "kendall_tau": _interval(taus, _kendall_tau(human_mean, sim_mean)),
        "systems": [
            {
                "system": system,
                "human_reward": float(human_mean[i]),
                "simulated_reward": float(sim_mean[i]),
                "human_rank": int(human_rank[i]),
                "simulated_rank": int(sim_rank[i]),
            }
            for i, system in enumerate(systems)
        ],
    }


def fidelity_report(
    records: Sequence[TranscriptRecord], *, rounds: int = DEFAULT_ROUNDS, seed: int = 0
) -> dict[str, Any]:
    """The simulator-fidelity report: overall, per system, ranking agreement, per-task rewards, examples."""
    if not records:
        return {"n_transcripts": 0, "overall": None, "systems": [], "ranking": None, "per_task": []}
    by_system: dict[str, list[TranscriptRecord]] = {}
    for r in records:
        by_system.setdefault(r.system, []).append(r)
    per_task: dict[tuple[str, str], list[TranscriptRecord]] = {}
    for r in records:
        per_task.setdefault((r.system, r.task), []).append(r)
    return {
        "n_transcripts": len(records),
        "bootstrap_rounds": rounds,
        "overall": _group_summary(records, rounds, seed),
        "systems": [
            {
                "system": system,
                **_group_summary(rows, rounds, seed),
                "false_reveal_examples": _examples(rows, (False, True)),
                "miss_examples": _examples(rows, (True, False)),
            }
            for system, rows in sorted(by_system.items())
        ],
        "ranking": _ranking(records, rounds, seed) if len(by_system) >= 2 else None,
        "per_task": [
            {
                "system": system,
                "task": task,
                "transcripts": len(rows),
                "human_reward": float(np.mean([r.human_reward for r in rows])),
                "simulated_reward": float(np.mean([r.simulated_reward for r in rows])),
            }
            for (system, task), rows in sorted(per_task.items())
        ],
    }
