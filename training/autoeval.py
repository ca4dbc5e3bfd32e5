"""Automatic evaluation: every system's candidates scored under ONE reward spec, with paired differences.

`auto_eval_scores` is the metric computation (callable from a Celery task or a script); `auto_eval_run` is the
service that stores one AutoEvalResult per system. The spec is the one given, else the baseline's (the spec
its training run or generation job stored), else the evaluation default: never each system's own K."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from annotation.models import Candidate

from .facts import facts_of
from .models import AutoEvalJob, AutoEvalResult, GenerationJob, JobStatus, System
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
    progress: Callable[[int, int], None] | None = None,
    job: AutoEvalJob | None = None,
) -> list[AutoEvalResult]:
    """Score every system's candidates on the split's tasks under one spec; store one AutoEvalResult each.

    `progress(scored, total)` is called as candidates are scored; with `job`, the results are stored with it and
    the job is marked succeeded in the same transaction (once, whichever delivery of its message gets there)."""
    from .generation import spec_simulator

    if not systems:
        raise ValidationError("choose at least one system")
    spec = auto_eval_spec(baseline=baseline, spec=spec)
    everyone = list({s.pk: s for s in [*systems, *([baseline] if baseline else [])]}.values())
    candidates = Candidate.objects.filter(system__in=everyone).select_related("task")
    if split:
        candidates = candidates.filter(task__split=split)
    ordered = list(candidates.order_by("task_id"))
    simulator = spec_simulator(spec)
    scores: dict[int, dict[int, dict[str, float]]] = {}
    # Scored in slices so a long evaluation shows its progress per candidate batch.
    for start in range(0, len(ordered), PROGRESS_SLICE):
        for system_id, by_task in auto_eval_scores(
            ordered[start : start + PROGRESS_SLICE], spec=spec, simulator=simulator
        ).items():
            scores.setdefault(system_id, {}).update(by_task)
        if progress is not None:
            progress(min(start + PROGRESS_SLICE, len(ordered)), len(ordered))
    if progress is not None and not ordered:
        progress(0, 0)
    results = []
    with transaction.atomic():
        if job is not None:
            _auto_eval_job_settle(job)
        for system in systems:
            mine = scores.get(system.pk, {})
            metrics: dict[str, Any] = {
                name: bootstrap_mean([v[name] for v in mine.values()], n_boot=n_boot) for name in METRICS
            }
            metrics["spec_label"] = spec.label()
            human = _human_answer_metrics(system=system, split=split, spec=spec, simulator=simulator, n_boot=n_boot)
            if human is not None:
                metrics["human_answers"] = human
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
                    job=job,
                    system=system,
                    baseline=baseline,
                    split=split,
                    n_tasks=len(mine),
                    metrics=_finite(metrics),
                    reward_spec=spec.as_dict(),
                )
            )
    return results


PROGRESS_SLICE = 32


def _human_answer_metrics(
    *, system: System, split: str, spec: RewardSpec, simulator: UserSimulator, n_boot: int
) -> dict[str, Any] | None:
    """Where people have answered this system's questions in character (answer studies): the reward and
    coverage from their answers beside the simulator's, under the same spec; None when nobody has.
    Intervals resample answer sets; annotators flagged in their study are left out."""
    from django.db.models import Exists, OuterRef

    from annotation.models import AnnotatorFlag, HumanTranscript

    from .human_answers import HumanAnswer, fidelity_matcher, score_transcript

    flagged = AnnotatorFlag.objects.filter(study=OuterRef("item__study"), annotator=OuterRef("annotator"))
    rows = (
        HumanTranscript.objects.filter(candidate__system=system, item__is_gold=False)
        .filter(~Exists(flagged))
        .select_related("candidate__task")
    )
    if split:
        rows = rows.filter(candidate__task__split=split)
    matcher = fidelity_matcher(spec)
    scores = [
        score_transcript(
            questions=list(t.questions),
            masked_task=t.candidate.task.masked_task,
            hidden_facts=facts_of(list(t.candidate.task.hidden_facts or []), t.candidate.task.fact_slots),
            answers=[HumanAnswer(str(a.get("text", "")), bool(a.get("doesnt_say"))) for a in t.answers],
            matcher=matcher,
            spec=spec,
            simulator=simulator,
        )
        for t in rows.order_by("pk")
    ]
    if not scores:
        return None
    return {
        "n_answer_sets": len(scores),
        "n_tasks": rows.values("candidate__task_id").distinct().count(),
        "reward_human": bootstrap_mean([x.human_reward for x in scores], n_boot=n_boot),
        "reward_simulated": bootstrap_mean([x.simulated_reward for x in scores], n_boot=n_boot),
        "coverage_human": bootstrap_mean([x.human_coverage for x in scores], n_boot=n_boot),
        "coverage_simulated": bootstrap_mean([x.simulated_coverage for x in scores], n_boot=n_boot),
        "optimism": bootstrap_mean([x.simulated_coverage - x.human_coverage for x in scores], n_boot=n_boot),
    }


class AutoEvalJobSettled(Exception):
    """Another delivery of the same job stored its results first."""


def _auto_eval_job_settle(job: AutoEvalJob) -> None:
    # Compare-and-set inside the transaction that stores the results: one delivery's results count.
    if not AutoEvalJob.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(
        status=JobStatus.SUCCEEDED, done=F("total"), finished_at=timezone.now()
    ):
        raise AutoEvalJobSettled


def _finite(value: Any) -> Any:
    # JSON has no NaN: store None where a metric is undefined (no tasks).
    if isinstance(value, float):
        return None if value != value else round(value, 6)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value
