"""Automatic evaluation: every system's candidates scored under ONE reward spec, with paired differences.

`auto_eval_scores` is the metric computation (callable from a Celery task or a script); `auto_eval_run` is the
service that stores one AutoEvalResult per system. The spec is the one given, else the baseline's (the spec
its training run or generation job stored), else the evaluation default: never each system's own K."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from django.core.exceptions import ValidationError
from django.db import transaction

from annotation.models import Candidate

from .facts import facts_of
from .models import AutoEvalResult, GenerationJob, System
from .rewards import METRICS, CandidateInput, RewardSpec, candidates_scores, default_spec
from .simulator import UserSimulator

COMPARED = ("reward", "coverage", "outline_coverage")


def bootstrap_mean(values: Sequence[float], *, n_boot: int = 2000, seed: int = 0) -> dict[str, float]:
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return {"mean": float("nan"), "lo": float("nan"), "hi": float("nan")}
    rng = np.random.default_rng(seed)
    means = arr[rng.integers(0, arr.size, size=(n_boot, arr.size))].mean(axis=1)
    return {"mean": float(arr.mean()), "lo": float(np.quantile(means, 0.025)), "hi": float(np.quantile(means, 0.975))}


def paired_difference(
    system_values: Sequence[float], baseline_values: Sequence[float], *, n_boot: int = 2000, seed: int = 0
) -> dict[str, Any]:
    """Mean(system − baseline) over paired tasks with a bootstrap interval over tasks; the relative change
    only when the baseline mean's own interval lies above zero (a ratio to a mean near or below zero says
    nothing), else `relative` is None and `relative_note` says why."""
    s, b = np.asarray(system_values, dtype=float), np.asarray(baseline_values, dtype=float)
    nan = {"mean": float("nan"), "lo": float("nan"), "hi": float("nan")}
    if s.size == 0:
        return {"difference": nan, "baseline": nan, "relative": None, "relative_note": "no paired tasks"}
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, s.size, size=(n_boot, s.size))
    diffs = (s[idx] - b[idx]).mean(axis=1)
    base_means = b[idx].mean(axis=1)
    difference = {
        "mean": float((s - b).mean()),
        "lo": float(np.quantile(diffs, 0.025)),
        "hi": float(np.quantile(diffs, 0.975)),
    }
    baseline = {
        "mean": float(b.mean()),
        "lo": float(np.quantile(base_means, 0.025)),
        "hi": float(np.quantile(base_means, 0.975)),
    }
    if baseline["lo"] <= 0:
        note = (
            f"no relative change: the baseline mean's 95% interval [{baseline['lo']:.3f}, {baseline['hi']:.3f}] "
            "is not above zero"
        )
        return {"difference": difference, "baseline": baseline, "relative": None, "relative_note": note}
    ratios = diffs / base_means
    relative = {
        "mean": difference["mean"] / baseline["mean"],
        "lo": float(np.quantile(ratios, 0.025)),
        "hi": float(np.quantile(ratios, 0.975)),
    }
    return {"difference": difference, "baseline": baseline, "relative": relative, "relative_note": ""}


def system_reward_spec(system: System) -> RewardSpec | None:
    """The spec a system was made under: its training run's, else its latest generation job's."""
    stored: Mapping[str, Any] | None = None
    if system.training_run_id and system.training_run.reward_spec:
        stored = system.training_run.reward_spec
    else:
        job = GenerationJob.objects.filter(system=system).exclude(reward_spec={}).order_by("-created_at").first()
        stored = job.reward_spec if job else None
    return RewardSpec.from_dict(stored) if stored else None


def auto_eval_spec(*, baseline: System | None, spec: RewardSpec | None = None) -> RewardSpec:
    if spec is not None:
        return spec
    return (system_reward_spec(baseline) if baseline is not None else None) or default_spec()


def auto_eval_scores(
    candidates: Sequence[Candidate], *, spec: RewardSpec, simulator: UserSimulator
) -> dict[int, dict[int, dict[str, float]]]:
    """system id → task id → metric → value, every candidate under the same spec and simulator."""
    inputs = [
        CandidateInput(
            questions=list(c.questions or []),
            outline=c.outline,
            masked_task=c.task.masked_task,
            hidden_facts=facts_of(list(c.task.hidden_facts or []), c.task.fact_slots),
        )
        for c in candidates
    ]
    scores: dict[int, dict[int, dict[str, float]]] = {}
    for cand, values in zip(candidates, candidates_scores(inputs, spec=spec, simulator=simulator), strict=True):
        scores.setdefault(cand.system_id, {})[cand.task_id] = values
    return scores


def auto_eval_run(
    *,
    systems: Sequence[System],
    split: str = "",
    baseline: System | None = None,
    spec: RewardSpec | None = None,
    n_boot: int = 2000,
) -> list[AutoEvalResult]:
    """Score every system's candidates on the split's tasks under one spec; store one AutoEvalResult each."""
    from .generation import spec_simulator

    if not systems:
        raise ValidationError("choose at least one system")
    spec = auto_eval_spec(baseline=baseline, spec=spec)
    everyone = list({s.pk: s for s in [*systems, *([baseline] if baseline else [])]}.values())
    candidates = Candidate.objects.filter(system__in=everyone).select_related("task")
    if split:
        candidates = candidates.filter(task__split=split)
    scores = auto_eval_scores(list(candidates.order_by("task_id")), spec=spec, simulator=spec_simulator(spec))
    results = []
    with transaction.atomic():
        for system in systems:
            mine = scores.get(system.pk, {})
            metrics: dict[str, Any] = {
                name: bootstrap_mean([v[name] for v in mine.values()], n_boot=n_boot) for name in METRICS
            }
            metrics["spec_label"] = spec.label()
            if baseline is not None and baseline.pk != system.pk:
                theirs = scores.get(baseline.pk, {})
                shared = sorted(set(mine) & set(theirs))
                metrics["vs_baseline"] = {
                    "baseline": baseline.name,
                    "n_paired": len(shared),
                    **{
                        name: paired_difference(
                            [mine[t][name] for t in shared], [theirs[t][name] for t in shared], n_boot=n_boot
                        )
                        for name in COMPARED
                    },
                }
            results.append(
                AutoEvalResult.objects.create(
                    system=system,
                    baseline=baseline,
                    split=split,
                    n_tasks=len(mine),
                    metrics=_finite(metrics),
                    reward_spec=spec.as_dict(),
                )
            )
    return results


def _finite(value: Any) -> Any:
    # JSON has no NaN: store None where a metric is undefined (no tasks).
    if isinstance(value, float):
        return None if value != value else round(value, 6)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value
