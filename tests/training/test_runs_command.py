"""`manage.py train --config run.toml`: the shell path to the same services."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from tests.conftest import uses_postgres
from tests.training.training_helpers import make_train_tasks
from training.models import TrainingRun

CONFIG = """
name = "{name}"
model = "{model}"
tasks_split = "train"
device = "cpu"
[hyperparameters]
max_steps = 2
num_generations = 2
per_device_train_batch_size = 2
gradient_accumulation_steps = 1
max_completion_length = 16
learning_rate = 0.001
save_steps = 2
[reward]
terms = {{ elicitation = 1.0, concise = 0.5 }}
"""


@pytest.fixture
def config(tmp_path: Path, settings):
    settings.PIG = {**settings.PIG, "RUNS_DIR": tmp_path / "runs"}

    def write(text: str) -> Path:
        path = tmp_path / "run.toml"
        path.write_text(text)
        return path

    return write


@pytest.mark.django_db
def test_a_config_is_created_and_queued(config, tiny_model_dir, django_capture_on_commit_callbacks, capsys):
    make_train_tasks(2)
    with django_capture_on_commit_callbacks() as callbacks:
        call_command("train", config=config(CONFIG.format(name="cli-run", model=tiny_model_dir)))
    run = TrainingRun.objects.get(name="cli-run")
    assert run.status == "queued"
    assert run.hyperparameters["num_generations"] == 2
    assert run.reward_config == {"terms": {"elicitation": 1.0, "concise": 0.5}}
    assert len(callbacks) == 1
    assert "queued" in capsys.readouterr().out


@pytest.mark.django_db
def test_a_bad_config_is_refused_with_the_reason(config, tmp_path):
    make_train_tasks(2)
    with pytest.raises(CommandError, match="unknown model path"):
        call_command("train", config=config(CONFIG.format(name="bad-run", model=tmp_path / "missing")))
    assert TrainingRun.objects.get(name="bad-run").status == "failed"
    with pytest.raises(CommandError, match="unknown key"):
        call_command("train", config=config('name = "x"\nmodle = "typo"\n'))
    with pytest.raises(CommandError, match="cannot read"):
        call_command("train", config=config("name = "))


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not uses_postgres(), reason="the training process must reach the test database")
def test_inline_runs_to_completion_without_a_worker(config, tiny_model_dir, settings, capsys):
    settings.PIG = {**settings.PIG, "TRAINING_CPU_THREADS": 1}
    make_train_tasks(2)
    call_command("train", config=config(CONFIG.format(name="inline-run", model=tiny_model_dir)), inline=True)
    run = TrainingRun.objects.get(name="inline-run")
    assert run.status == "succeeded"
    assert run.step == 2
    out = capsys.readouterr().out
    assert "run inline-run: succeeded after 2 steps" in out
    assert "registered system inline-run" in out
