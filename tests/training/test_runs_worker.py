"""GRPO runs end to end: admin-side service → Celery worker on the real broker → accelerate-launched child."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from tests.training.training_helpers import (
    DENSE,
    FAST,
    make_train_tasks,
    needs_broker,
    training_worker,
    wait_finished,
    wait_for,
    weights,
)
from training.models import Backend
from training.run_tasks import _database_url
from training.runs import (
    training_run_can_resume,
    training_run_cancel,
    training_run_create,
    training_run_is_dead,
    training_run_resume,
    training_run_start,
)

pytestmark = [pytest.mark.slow, needs_broker, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _fast_cpu(settings, tmp_path, monkeypatch):
    settings.PIG = {**settings.PIG, "RUNS_DIR": tmp_path / "runs", "TRAINING_CPU_THREADS": 1}
    make_train_tasks()


def _generate(model_dir: str) -> str:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Plan a workshop."}], tokenize=False, add_generation_prompt=True
    )
    ids = tokenizer(prompt, return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=4, do_sample=False)
    assert out.shape[1] > ids["input_ids"].shape[1]
    return tokenizer.decode(out[0, ids["input_ids"].shape[1] :])


def test_alice_trains_two_grpo_steps_and_gets_a_system_that_generates(tiny_model_dir: Path, researcher):
    before = weights(tiny_model_dir / "model.safetensors")
    run = training_run_create(
        name="alice-grpo",
        base_model_path=str(tiny_model_dir),
        task_split="train",
        hyperparameters=FAST,
        reward_config=DENSE,
        device="cpu",
        created_by=researcher,
    )
    with training_worker():
        training_run_start(run=run)
        wait_finished(run)

    assert run.status == "succeeded", run.error + run.log[-3000:]
    assert run.step == 2
    metrics = list(run.metrics.order_by("step"))
    assert [m.step for m in metrics] == [1, 2]
    for metric in metrics:
        assert {"reward", "reward_std", "loss", "learning_rate", "step_seconds"} <= set(metric.values)
        assert {"rewards/elicitation_reward/mean", "rewards/concise/std", "completions/mean_length"} <= set(
            metric.values
        )
    assert run.last_completions
    assert {"task", "completion", "rewards"} <= set(run.last_completions[0])
    assert "step 2/2" in run.log

    system = run.systems.get()
    assert system.backend == Backend.TRANSFORMERS
    after = weights(Path(system.model_path) / "model.safetensors")
    assert any(not before[k].equal(after[k]) for k in before), "no trainable parameter changed"
    assert isinstance(_generate(system.model_path), str)


def test_a_lora_run_freezes_the_base_and_saves_a_loadable_adapter(tiny_model_dir: Path):
    base_file = tiny_model_dir / "model.safetensors"
    base_bytes = base_file.read_bytes()
    hp = {**FAST, "lora": True, "lora_r": 4, "lora_alpha": 8, "lora_target_modules": ["q_proj", "v_proj"]}
    run = training_run_create(
        name="bob-lora", base_model_path=str(tiny_model_dir), task_split="train", hyperparameters=hp,
        reward_config=DENSE, device="cpu",
    )  # fmt: skip
    with training_worker():
        training_run_start(run=run)
        wait_finished(run)

    assert run.status == "succeeded", run.error + run.log[-3000:]
    system = run.systems.get()
    final = Path(system.model_path)
    assert (final / "adapter_config.json").is_file()
    assert not (final / "model.safetensors").exists()
    assert system.generation_params["adapter"] is True
    assert system.generation_params["base_model_path"] == str(tiny_model_dir)
    assert base_file.read_bytes() == base_bytes, "the base model was modified"
    adapter = weights(final / "adapter_model.safetensors")
    lora_b = [t for k, t in adapter.items() if "lora_B" in k]
    assert lora_b
    assert any(t.abs().sum() > 0 for t in lora_b), "LoRA B starts at zero: training should move it"

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), final)
    assert sum(p.numel() for n, p in model.named_parameters() if "lora_" in n) > 0
    assert isinstance(_generate(str(final)), str)  # transformers loads base + adapter from the adapter dir


def test_cancelling_a_running_run_stops_it_cleanly_with_a_checkpoint(tiny_model_dir: Path):
    run = training_run_create(
        name="charlie-cancel", base_model_path=str(tiny_model_dir), task_split="train",
        hyperparameters={**FAST, "max_steps": 500, "save_steps": 1000}, reward_config=DENSE, device="cpu",
    )  # fmt: skip
    with training_worker():
        training_run_start(run=run)
        wait_for(lambda: run.refresh_from_db() or run.step >= 1, 120, "the first step")
        training_run_cancel(run=run)
        wait_finished(run)

    assert run.status == "cancelled", run.error + run.log[-3000:]
    assert 1 <= run.step < 500
    assert (Path(run.output_dir) / f"checkpoint-{run.step}").is_dir(), "cancel keeps progress for a resume"
    assert not run.systems.exists()


def test_a_run_whose_worker_died_is_detected_as_dead_and_resumes_from_its_checkpoint(tiny_model_dir: Path, settings):
    run = training_run_create(
        name="alice-resume", base_model_path=str(tiny_model_dir), task_split="train",
        hyperparameters={**FAST, "max_steps": 8, "save_steps": 2}, reward_config=DENSE, device="cpu",
    )  # fmt: skip
    env = {**os.environ, "DATABASE_URL": _database_url(), "PIG_TRAINING_CPU_THREADS": "1"}
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "pigplatform", "worker", "-Q", "training", "-P", "solo",
         "-c", "1", "--loglevel", "WARNING"],
        cwd=django_settings.BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        training_run_start(run=run)
        wait_for(lambda: (Path(run.output_dir) / "checkpoint-2").is_dir(), 120, "the first checkpoint")
    finally:
        worker.send_signal(signal.SIGKILL)  # the worker dies mid-run, without any chance to clean up
        worker.wait()

    # Its orphaned training process notices the supervisor is gone and stops: the heartbeat goes quiet.
    time.sleep(3)
    run.refresh_from_db()
    beat, step_at_death = run.heartbeat_at, run.step
    time.sleep(2)
    run.refresh_from_db()
    assert run.status == "running"
    assert run.heartbeat_at == beat
    assert run.step == step_at_death
    assert 2 <= step_at_death < 8
    assert training_run_is_dead(run, dead_after=timedelta(seconds=1))
    settings.PIG = {**settings.PIG, "TRAINING_DEAD_AFTER_S": 1}
    assert training_run_can_resume(run)

    with training_worker():
        training_run_resume(run=run)
        wait_finished(run)

    assert run.status == "succeeded", run.error + run.log[-3000:]
    assert run.attempt == 2
    assert run.step == 8
    assert "resuming from checkpoint-" in run.log
    resumed_from = int(run.log.split("resuming from checkpoint-")[1].split()[0])
    assert 2 <= resumed_from <= step_at_death
    assert sorted(run.metrics.values_list("step", flat=True)) == list(range(1, 9))
    assert run.systems.count() == 1
