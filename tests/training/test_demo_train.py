"""`manage.py demo_train`, what `PIG_DEMO_TRAIN=1 bin/demo` runs: warm start from proactive-rl, then GRPO."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from tests.conftest import uses_postgres
from training.models import JobStatus, Phase, TrainingRun


@pytest.fixture
def demo_dirs(settings, tmp_path):
    settings.PIG = {**settings.PIG, "RUNS_DIR": tmp_path / "runs", "MODELS_DIR": tmp_path / "models"}


@pytest.mark.django_db
def test_the_queued_demo_warm_starts_from_proactive_rl_on_the_train_split(
    demo_dirs, django_capture_on_commit_callbacks, capsys
):
    call_command("demo_setup")
    with django_capture_on_commit_callbacks() as callbacks:
        call_command("demo_train", queue=True)
    run = TrainingRun.objects.get(name="demo-grpo")
    assert (run.warm_start_source, run.warm_start_steps, run.task_split) == ("system:proactive-rl", 16, "train")
    assert run.status == JobStatus.QUEUED
    assert run.max_steps == 16 + 10
    assert len(callbacks) == 1  # the training task, sent once the transaction commits
    assert "16 warm-start steps on system:proactive-rl, then 10 LoRA GRPO steps" in capsys.readouterr().out


@pytest.mark.django_db
def test_without_the_demo_data_the_demo_trains_on_the_task_file_without_a_warm_start(demo_dirs, capsys):
    call_command("demo_train", queue=True)
    run = TrainingRun.objects.get(name="demo-grpo")
    assert (run.warm_start_source, run.task_split) == ("", "")
    assert run.tasks_file.endswith("demo_tasks.jsonl")
    assert "no warm start" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not uses_postgres(), reason="the training process must reach the test database")
def test_the_demo_runs_both_phases_on_one_curve_and_registers_one_system(demo_dirs, monkeypatch, capsys):
    monkeypatch.setenv("PIG_TRAINING_CPU_THREADS", "1")
    call_command("demo_setup")
    call_command("demo_train", steps=1)  # the tiny model (no SmolLM2 prepared here): 16 SFT steps + 1 GRPO step
    run = TrainingRun.objects.get(name="demo-grpo")
    assert run.status == JobStatus.SUCCEEDED, run.error + run.log[-2000:]
    phases = list(run.metrics.order_by("step").values_list("step", "phase"))
    assert phases == [(s, Phase.SFT) for s in range(1, 17)] + [(17, Phase.GRPO)]
    system = run.systems.get()
    assert "after 16 warm-start steps on system:proactive-rl" in system.description
    assert system.generation_params["base_model_path"].endswith("warm-start/final")
