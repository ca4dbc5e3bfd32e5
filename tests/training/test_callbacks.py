"""The progress callback: what it records per logging step, and how it obeys cancel and fencing."""

from __future__ import annotations

from collections import defaultdict, deque
from types import SimpleNamespace

import pytest
from transformers import TrainerControl, TrainerState

from tests.training.training_helpers import FAST, make_train_tasks
from training.callbacks import DatabaseSink, FileSink, RunProgressCallback
from training.models import JobStatus
from training.runs import training_run_cancel, training_run_claim, training_run_create, training_run_start


def _state(step: int) -> TrainerState:
    state = TrainerState(max_steps=10)
    state.global_step = step
    return state


def _trainer_with_samples() -> SimpleNamespace:
    rewards = defaultdict(deque, {"elicitation_reward": deque([0.25, float("nan")])})
    prompts = [[{"role": "user", "content": "Plan a <trip>."}]] * 2
    completions = [[{"role": "assistant", "content": "<script>alert(1)</script> When?\x00"}]] * 2
    return SimpleNamespace(_logs={"prompt": deque(prompts), "completion": deque(completions), "rewards": rewards})


def test_each_logging_step_records_metrics_and_the_latest_samples(tmp_path):
    sink = FileSink(tmp_path / "m.jsonl", tmp_path)
    callback = RunProgressCallback(sink, trainer=_trainer_with_samples())
    control = TrainerControl()
    callback.on_step_begin(None, _state(0), control)
    callback.on_step_end(None, _state(1), control)
    callback.on_log(None, _state(1), control, logs={"loss": 0.5, "reward": 0.25, "kl": float("nan"), "note": "x"})
    line = (tmp_path / "m.jsonl").read_text()
    assert '"loss": 0.5' in line
    assert '"step_seconds"' in line
    assert "kl" not in line
    assert "note" not in line
    assert '"completion": "<script>alert(1)</script> When?\\ufffd"' in line  # raw (escaped when shown), no NUL
    assert '"elicitation_reward": null' in line
    assert not control.should_training_stop


def test_a_cancel_stops_training_and_saves_a_checkpoint(tmp_path):
    callback = RunProgressCallback(FileSink(tmp_path / "m.jsonl", tmp_path))
    (tmp_path / "CANCEL").touch()
    control = TrainerControl()
    callback.on_step_end(None, _state(3), control)
    assert control.should_training_stop
    assert control.should_save
    assert callback.stop_reason == "cancelled"


@pytest.mark.django_db
def test_the_database_sink_sees_cancel_and_a_dead_supervisor(tmp_path, settings, django_capture_on_commit_callbacks):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    settings.PIG = {**settings.PIG, "RUNS_DIR": tmp_path / "runs"}
    make_train_tasks(2)
    run = training_run_create(name="bob-run", base_model_path=str(tmp_path / "model"), task_split="train",
                              hyperparameters=FAST)  # fmt: skip
    with django_capture_on_commit_callbacks():
        training_run_start(run=run)
    training_run_claim(run_id=run.pk, attempt=1)

    callback = RunProgressCallback(DatabaseSink(run.pk, 1))
    control = TrainerControl()
    callback.on_step_end(None, _state(1), control)
    callback.on_log(None, _state(1), control, logs={"loss": 0.1})
    run.refresh_from_db()
    assert run.step == 1
    assert run.metrics.get().values["loss"] == 0.1
    assert not control.should_training_stop

    training_run_cancel(run=run)
    callback.on_step_end(None, _state(2), control)
    assert control.should_training_stop
    assert callback.stop_reason == "cancelled"
    assert run.status == JobStatus.RUNNING  # the supervisor, not the callback, records the final status

    orphan = RunProgressCallback(DatabaseSink(run.pk, 1, supervisor_pid=2**22 + 12345))
    control = TrainerControl()
    orphan.on_step_end(None, _state(2), control)
    assert orphan.stop_reason == "superseded"
    assert control.should_training_stop
    assert not control.should_save
