"""The trainer callback that reports a GRPO run's progress and obeys its cancel flag.

It writes through a *sink*: `DatabaseSink` (the platform: metrics rows, step, heartbeat, last completions,
cancel flag, all through services in `training.runs`) or `FileSink` (no database: metrics as JSONL, cancel
by creating a `CANCEL` file). Only the main process talks to the sink; the decision to stop is broadcast so
every rank leaves the training loop at the same step (a rank that kept going would hang in all-reduce)."""

from __future__ import annotations

import json
import math
import os
import time
from collections import deque
from pathlib import Path
from typing import Any, Literal, Protocol

from transformers import TrainerCallback

State = Literal["continue", "cancelled", "superseded"]
_STATES: tuple[State, ...] = ("continue", "cancelled", "superseded")
# Metrics that the run page plots and prints; everything numeric TRL logs is stored anyway.
_SUMMARY_KEYS = (
    "reward", "reward_std", "frac_reward_zero_std", "loss", "mean_token_accuracy", "kl", "completions/mean_length",
    "rewards/accuracies", "rewards/margins",
    "step_seconds",
)  # fmt: skip


class ProgressSink(Protocol):
    def poll(self, step: int) -> State: ...

    def record(
        self, step: int, values: dict[str, float], completions: list[dict[str, Any]], phase: str = "grpo"
    ) -> State: ...


def _process_alive(pid: int | None) -> bool:
    if not pid:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DatabaseSink:
    def __init__(self, run_id: int, attempt: int, supervisor_pid: int | None = None) -> None:
        self.run_id, self.attempt, self.supervisor_pid = run_id, attempt, supervisor_pid

    def poll(self, step: int) -> State:
        from .runs import training_run_beat

        # A worker that died leaves its training process orphaned: stop rather than train unsupervised.
        if not _process_alive(self.supervisor_pid):
            return "superseded"
        return training_run_beat(run_id=self.run_id, attempt=self.attempt, step=step)

    def record(
        self, step: int, values: dict[str, float], completions: list[dict[str, Any]], phase: str = "grpo"
    ) -> State:
        from .runs import training_run_record_metrics

        return training_run_record_metrics(
            run_id=self.run_id, attempt=self.attempt, step=step, values=values, completions=completions, phase=phase
        )


class FileSink:
    def __init__(self, metrics_file: Path | str, output_dir: Path | str) -> None:
        self.metrics_file = Path(metrics_file)
        self.cancel_file = Path(output_dir) / "CANCEL"
        self.metrics_file.parent.mkdir(parents=True, exist_ok=True)

    def poll(self, step: int) -> State:
        return "cancelled" if self.cancel_file.exists() else "continue"

    def record(
        self, step: int, values: dict[str, float], completions: list[dict[str, Any]], phase: str = "grpo"
    ) -> State:
        with self.metrics_file.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({"step": step, "phase": phase, "values": values, "completions": completions}) + "\n")
        return self.poll(step)


def sink_for(spec: Any) -> ProgressSink:
    if spec.run_id is not None:
        return DatabaseSink(spec.run_id, spec.attempt, spec.supervisor_pid)
    return FileSink(spec.metrics_file or Path(spec.output_dir) / "metrics.jsonl", spec.output_dir)


def _text(value: Any) -> str:
    if isinstance(value, list):  # chat messages: the last one is what matters (the task / the reply)
        value = value[-1].get("content", "") if value and isinstance(value[-1], dict) else value
    elif isinstance(value, dict):
        value = value.get("content", "")
    # Sampled text may hold NUL, which PostgreSQL refuses in text and JSON, and lone surrogates.
    return str(value).replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")


def sampled_completions(trainer: Any, keep: int) -> list[dict[str, Any]]:
    """The latest generation batch from GRPOTrainer's own completion log (prompts, completions, rewards)."""
    logs = getattr(trainer, "_logs", None)
    if not logs or not logs.get("completion"):
        return []
    prompts, completions = list(logs["prompt"]), list(logs["completion"])
    rewards = {name: list(values) for name, values in logs["rewards"].items()}
    start = max(0, len(completions) - keep)
    rows = []
    for i in range(start, len(completions)):
        rows.append(
            {
                "task": _text(prompts[i])[:1000] if i < len(prompts) else "",
                "completion": _text(completions[i])[:4000],
                "rewards": {name: _finite(values[i]) for name, values in rewards.items() if i < len(values)},
            }
        )
    return rows


def _finite(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


class RunProgressCallback(TrainerCallback):
    """`step_offset` and `phase`: a run's phases share one step axis (warm start 1..S, then GRPO S+1..S+G)."""

    def __init__(
        self,
        sink: ProgressSink,
        *,
        completions_to_keep: int = 8,
        trainer: Any = None,
        step_offset: int = 0,
        phase: str = "grpo",
    ) -> None:
        self.sink = sink
        self.completions_to_keep = completions_to_keep
        self.trainer = trainer
        self.step_offset = step_offset
        self.phase = phase
        self.stop_reason: State | None = None
        self._step_started = 0.0
        self._step_seconds: deque[float] = deque(maxlen=1000)

    def on_step_begin(self, args, state, control, **kwargs):
        self._step_started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self._step_started:
            self._step_seconds.append(time.perf_counter() - self._step_started)
        verdict: State = "continue"
        if state.is_world_process_zero:
            verdict = self.stop_reason or self.sink.poll(self.step_offset + state.global_step)
        self._obey(_broadcast(verdict), control)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs or "train_runtime" in logs:
            return
        values = {k: float(v) for k, v in logs.items() if _finite(v) is not None and not isinstance(v, bool)}
        if self._step_seconds:
            values["step_seconds"] = sum(self._step_seconds) / len(self._step_seconds)
            self._step_seconds.clear()
        values.update(_gpu_memory())
        keep = self.completions_to_keep
        completions = sampled_completions(self.trainer, keep) if self.trainer and keep else []
        step = self.step_offset + state.global_step
        verdict = self.sink.record(step, values, completions, self.phase)
        summary = " ".join(f"{k.split('/')[-1]}={values[k]:.4g}" for k in _SUMMARY_KEYS if k in values)
        print(f"{self.phase} step {state.global_step}/{state.max_steps} (run step {step}) {summary}", flush=True)
        # Acted upon at the next step end (broadcast there), so every rank agrees.
        if verdict != "continue" and self.stop_reason is None:
            self.stop_reason = verdict

    def _obey(self, verdict: State, control) -> None:
        if self.stop_reason is None and verdict != "continue":
            self.stop_reason = verdict
        if self.stop_reason is not None:
            control.should_training_stop = True
            # A cancelled run keeps its progress (resumable); a superseded one must not touch the output dir.
            control.should_save = self.stop_reason == "cancelled"


def _gpu_memory() -> dict[str, float]:
    import torch

    if not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return {}
    return {"gpu_peak_memory_gb": torch.cuda.max_memory_allocated() / 2**30}


def _broadcast(verdict: State) -> State:
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover - torch is always there when training
        return verdict
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return verdict
    box = [verdict]
    dist.broadcast_object_list(box, src=0)
    return box[0] if box[0] in _STATES else "continue"
