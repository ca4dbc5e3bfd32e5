"""Reads for the training pages: what the training worker can do, and how long a step took last time."""

from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache

from .models import Device, TrainingMetric, TrainingRun

# Written by a worker that serves the `training` queue when it starts (training/worker_info.py).
TRAINING_WORKER_KEY = "pig:training-worker"

# What the add form offers when the training worker has no GPU (or none has reported yet): the demo's
# LoRA run, which takes minutes on a laptop CPU, instead of 100 full-model steps that would take hours.
CPU_HYPERPARAMETERS: dict[str, Any] = {
    "max_steps": 6,
    "num_generations": 4,
    "per_device_train_batch_size": 4,
    "max_completion_length": 64,
    "learning_rate": 0.0002,
    "save_steps": 3,
    "lora": True,
    "lora_r": 8,
    "lora_alpha": 16,
}


def training_worker_info() -> dict[str, Any] | None:
    """{"hostname", "gpus", "reported_at"} from the last training worker that started, or None."""
    info = cache.get(TRAINING_WORKER_KEY)
    return info if isinstance(info, dict) else None


@dataclass(frozen=True)
class StepTime:
    run_name: str
    device: str
    seconds: float
    steps: int  # how many steps the estimate rests on


def training_step_seconds(*, device: str | None = None, runs_to_search: int = 20) -> StepTime | None:
    """Median seconds per step of the most recent run with at least two logged steps (on `device` when
    given), from the times its metrics were stored."""
    runs = TrainingRun.objects.order_by("-created_at")
    if device is not None:
        runs = runs.filter(device=device)
    for run in runs[:runs_to_search]:
        points = list(TrainingMetric.objects.filter(run=run).order_by("step").values_list("step", "created_at"))
        per_step = [
            (t2 - t1).total_seconds() / (s2 - s1)
            for (s1, t1), (s2, t2) in itertools.pairwise(points)
            if s2 > s1 and t2 > t1
        ]
        if per_step:
            return StepTime(run.name, run.device, statistics.median(per_step), len(per_step))
    return None


def training_form_defaults() -> tuple[dict[str, Any], str]:
    """Overrides for the add form's defaults, and a sentence saying why."""
    info = training_worker_info()
    if info and info.get("gpus"):
        return {}, f"The training worker {info.get('hostname', '')} has {info['gpus']} GPU(s): full-size defaults."
    why = (
        f"The training worker {info.get('hostname', '')} has no GPU"
        if info
        else "No training worker has reported a GPU yet"
    )
    return (
        {"device": Device.CPU, "hyperparameters": CPU_HYPERPARAMETERS},
        f"{why}: the form is pre-filled for CPU (LoRA, {CPU_HYPERPARAMETERS['max_steps']} short steps).",
    )
