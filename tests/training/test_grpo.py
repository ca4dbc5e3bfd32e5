"""The GRPO child process: config mapping, dataset, launcher, and a real run in file mode (no database)."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from django.conf import settings

from tests.training.training_helpers import DENSE, FAST
from training.grpo import (
    TrainingSpec,
    build_dataset,
    grpo_config_kwargs,
    hyperparameter_problems,
    launch_command,
)
from training.prompts import questions_prompt
from training.rewards import DEFAULT_SPEC

TASKS = [
    {"masked_task": f"Write an outline for grant proposal {i}.", "hidden_facts": ["The budget is $5,000."]}
    for i in range(4)
]


def _spec(tmp_path: Path, model: str = "/models/m", **hp) -> TrainingSpec:
    return TrainingSpec(
        model_path=model, tasks=TASKS, output_dir=str(tmp_path / "out"), hyperparameters={**FAST, **hp},
        reward_config=DENSE, device="cpu",
    )  # fmt: skip


def test_cpu_runs_use_the_cpu_and_no_bf16(tmp_path):
    kwargs = grpo_config_kwargs(_spec(tmp_path, beta=0.04), device="cpu", has_vllm=True, bf16_supported=True)
    assert kwargs["use_cpu"] is True
    assert kwargs["bf16"] is False
    assert "use_vllm" not in kwargs
    assert kwargs["beta"] == 0.04
    assert kwargs["num_generations"] == 2
    assert kwargs["logging_steps"] == 1
    assert kwargs["reward_weights"] == [1.0, 0.0, 0.5]  # elicitation, coverage (logged only), concise


def test_cuda_runs_use_bf16_and_vllm_colocate_when_vllm_is_installed(tmp_path):
    kwargs = grpo_config_kwargs(_spec(tmp_path), device="cuda", has_vllm=True, bf16_supported=True)
    assert kwargs["bf16"] is True
    assert kwargs["use_vllm"] is True
    assert kwargs["vllm_mode"] == "colocate"
    assert kwargs["model_init_kwargs"] == {"dtype": "bfloat16"}
    plain = grpo_config_kwargs(_spec(tmp_path), device="cuda", has_vllm=False, bf16_supported=True)
    assert "use_vllm" not in plain
    server = grpo_config_kwargs(
        _spec(tmp_path, vllm_mode="server", vllm_server_base_url="http://gpu7:8000"), device="cuda", has_vllm=True
    )
    assert server["vllm_mode"] == "server"
    assert server["vllm_server_base_url"] == "http://gpu7:8000"


def test_the_effective_batch_counts_processes_and_accumulation():
    assert hyperparameter_problems({**FAST, "per_device_train_batch_size": 1}, num_processes=2) == []
    assert "= 3)" in hyperparameter_problems({**FAST, "per_device_train_batch_size": 3})[0]


def test_prompts_are_chat_messages_asking_for_questions_about_the_masked_task(tmp_path):
    row = build_dataset(_spec(tmp_path))[0]
    assert row["prompt"][0]["role"] == "system"
    assert "clarification questions" in row["prompt"][0]["content"]
    assert row["prompt"][1]["role"] == "user"
    assert row["prompt"][1]["content"].startswith(TASKS[0]["masked_task"])
    # Trained on exactly the prompt that candidate generation later uses.
    assert row["prompt"] == questions_prompt(TASKS[0]["masked_task"], DEFAULT_SPEC.k)
    k3 = build_dataset(replace(_spec(tmp_path), max_questions=3))[0]
    assert k3["prompt"] == questions_prompt(TASKS[0]["masked_task"], 3)
    assert row["masked_task"] == TASKS[0]["masked_task"]
    assert row["hidden_facts"] == TASKS[0]["hidden_facts"]


def test_the_launcher_uses_accelerate_with_one_cpu_process_or_deepspeed_on_gpus(tmp_path):
    cpu = launch_command("s.json", device="cpu")
    assert cpu[1:3] == ["-m", "accelerate.commands.launch"]
    assert "--cpu" in cpu
    assert cpu[cpu.index("--num_processes") + 1] == "1"
    assert cpu[-4:] == ["-m", "training.grpo", "--spec", "s.json"]
    gpu = launch_command("s.json", num_processes=8, deepspeed_config="zero3.json", run_id=5)
    assert gpu[gpu.index("--deepspeed_config_file") + 1] == "zero3.json"
    assert "--use_deepspeed" in gpu
    assert gpu[-2:] == ["--run-id", "5"]


def _launch(spec: TrainingSpec, path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(settings.BASE_DIR)}
    cmd = launch_command(spec.save(path), device="cpu", cpu_threads=1)
    return subprocess.run(cmd, cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_without_a_database_the_child_writes_metrics_to_a_file_and_saves_the_model(tmp_path, tiny_model_dir):
    spec = _spec(tmp_path, model=str(tiny_model_dir))
    result = _launch(spec, tmp_path / "spec.json")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2]
    assert "rewards/elicitation_reward/mean" in lines[0]["values"]
    assert lines[0]["completions"]
    info = json.loads((tmp_path / "out" / "final" / "pig_training.json").read_text())
    assert info["base_model_path"] == info["initial_model_path"] == str(tiny_model_dir)
    assert (info["run_id"], info["adapter"], info["steps"], info["warm_start_steps"]) == (None, False, 2, 0)


@pytest.mark.slow
def test_without_a_database_a_cancel_file_stops_the_run_after_one_step(tmp_path, tiny_model_dir):
    spec = _spec(tmp_path, model=str(tiny_model_dir), max_steps=50)
    Path(spec.output_dir).mkdir(parents=True)
    (Path(spec.output_dir) / "CANCEL").touch()
    result = _launch(spec, tmp_path / "spec.json")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "stopped: cancelled at step 1" in result.stdout
    assert (Path(spec.output_dir) / "STOPPED").read_text() == "cancelled"
    assert (Path(spec.output_dir) / "checkpoint-1").is_dir()
    assert not (Path(spec.output_dir) / "final").exists()


def test_resume_skips_a_checkpoint_left_half_written_by_a_killed_worker(tmp_path):
    from training.grpo import last_complete_checkpoint

    for step in (2, 4):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"weights")
        (folder / "trainer_state.json").write_text("{}")
    half = tmp_path / "checkpoint-6"
    half.mkdir()
    (half / "model.safetensors").write_bytes(b"weights")  # killed before trainer_state.json

    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-4")
    assert not half.exists()
    assert len(list(tmp_path.glob("incomplete-checkpoint-6-*"))) == 1
    assert last_complete_checkpoint(tmp_path / "missing") is None
