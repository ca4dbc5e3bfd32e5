"""Training-run services: fail-fast validation, start/cancel/resume rules, fencing, System registration."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone

from tests import factories
from tests.training.training_helpers import DENSE, FAST, make_train_tasks
from training.grpo import FINAL_DIR, FINAL_INFO
from training.models import Backend, JobStatus, TrainingMetric, TrainingRun
from training.rewards import DEFAULT_SPEC
from training.runs import (
    TrainingRunError,
    training_run_beat,
    training_run_cancel,
    training_run_claim,
    training_run_create,
    training_run_finish,
    training_run_is_dead,
    training_run_record_metrics,
    training_run_register_system,
    training_run_resume,
    training_run_spec,
    training_run_start,
    training_run_validate,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    # Validation only looks for the files; no weights are loaded before a worker picks the run up.
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    return tmp_path / "model"


@pytest.fixture(autouse=True)
def _runs_dir(settings, tmp_path):
    settings.PIG = {**settings.PIG, "RUNS_DIR": tmp_path / "runs"}


def _run(model_dir: Path, name: str = "alice-run", **kwargs) -> TrainingRun:
    make_train_tasks(2)
    defaults = {"base_model_path": str(model_dir), "task_split": "train", "hyperparameters": FAST}
    return training_run_create(name=name, **{**defaults, **kwargs})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"base_model_path": "/nowhere/model"}, "unknown model path '/nowhere/model'"),
        ({"hyperparameters": {**FAST, "num_generations": 1}}, "num_generations must be at least 2"),
        ({"hyperparameters": {**FAST, "per_device_train_batch_size": 3}}, "must be divisible by num_generations (2)"),
        ({"task_split": "nosuchsplit"}, "no training tasks"),
        ({"reward_config": {"weights": {"redundant": -1}}}, "reward weight 'redundant' must be a non-negative"),
        ({"reward_config": {"weights": {"coverage": 2}}}, "unknown reward weight(s): coverage"),
        ({"hyperparameters": {**FAST, "learning_rte": 1}}, "unknown hyperparameter 'learning_rte'"),
        ({"reward_config": {"terms": {"elicitation": 0}}}, "at least one reward term needs a non-zero weight"),
        ({"hyperparameters": {**FAST, "gradient_accumulation_steps": 4}}, "samples 4 distinct prompts but"),
    ],
)
def test_a_bad_configuration_fails_fast_with_a_clear_message_and_nothing_enqueued(
    model_dir, changes, message, settings, django_capture_on_commit_callbacks
):
    run = _run(model_dir, **changes)
    with django_capture_on_commit_callbacks() as callbacks:
        started = training_run_start(run=run)
    assert callbacks == []
    assert started.status == JobStatus.FAILED
    assert message in started.error
    assert started.error.startswith("Configuration refused")
    assert started.attempt == 0
    assert started.enqueued_at is None
    assert started.started_at is None
    assert started.output_dir == ""
    assert not Path(settings.PIG["RUNS_DIR"]).exists()


def test_a_refused_run_can_be_fixed_and_started(model_dir, django_capture_on_commit_callbacks):
    run = _run(model_dir, hyperparameters={**FAST, "num_generations": 1})
    training_run_start(run=run)
    TrainingRun.objects.filter(pk=run.pk).update(hyperparameters=FAST)
    run.refresh_from_db()
    with django_capture_on_commit_callbacks() as callbacks:
        started = training_run_start(run=run)
    assert started.status == JobStatus.QUEUED
    assert started.error == ""
    assert started.attempt == 1
    assert started.enqueued_at is not None
    assert started.output_dir.endswith("alice-run")
    assert len(callbacks) == 1  # enqueued once the transaction commits


def test_validate_reports_every_problem_at_once(model_dir):
    run = _run(model_dir, base_model_path="", hyperparameters={"num_generations": 1}, task_split="")
    problems = training_run_validate(run=run)
    assert any("no base model" in p for p in problems)
    assert any("num_generations" in p for p in problems)
    assert any("exactly one task source" in p for p in problems)


def test_a_tasks_file_is_checked_line_by_line(model_dir, tmp_path):
    path = tmp_path / "tasks.jsonl"
    path.write_text(
        '{"masked_task": "Plan a trip.", "hidden_facts": ["Budget is $900."]}\nnot json\n{"masked_task": ""}\n'
    )
    run = _run(model_dir, task_split="", tasks_file=str(path))
    problems = training_run_validate(run=run)
    assert "tasks file line 2: bad JSON" in problems[0]
    assert "tasks file line 3: masked_task must be a non-empty string" in problems[1]


def test_training_tasks_carry_slot_value_facts_from_a_file_or_the_database(model_dir, tmp_path):
    path = tmp_path / "tasks.jsonl"
    facts = ["The budget is $900.", {"slot": "travellers", "value": "two adults"}]
    path.write_text(json.dumps({"masked_task": "Plan a trip.", "hidden_facts": facts}) + "\n")
    [task] = training_run_spec(_run(model_dir, task_split="", tasks_file=str(path))).tasks
    assert task["hidden_facts"] == ["The budget is $900.", "The travellers is two adults."]
    assert task["fact_slots"] == [{"slot": "budget", "value": "$900"}, {"slot": "travellers", "value": "two adults"}]
    factories.TaskFactory(
        split="train", hidden_facts=["Audience: nurses."], fact_slots=[{"slot": "audience", "value": "nurses"}]
    )
    tasks = training_run_spec(_run(model_dir, name="from-db")).tasks
    assert {"slot": "audience", "value": "nurses"} in [s for t in tasks for s in t["fact_slots"]]


def test_a_run_cannot_be_started_twice(model_dir, django_capture_on_commit_callbacks):
    run = _run(model_dir)
    with django_capture_on_commit_callbacks() as callbacks:
        training_run_start(run=run)
        with pytest.raises(TrainingRunError, match="already started"):
            training_run_start(run=run)
    assert len(callbacks) == 1


def test_a_task_claims_its_attempt_once(model_dir, django_capture_on_commit_callbacks):
    run = _run(model_dir)
    with django_capture_on_commit_callbacks():
        training_run_start(run=run)
    assert training_run_claim(run_id=run.pk, attempt=1)
    assert not training_run_claim(run_id=run.pk, attempt=1)  # a redelivered message does nothing
    run.refresh_from_db()
    assert run.status == JobStatus.RUNNING
    assert run.started_at is not None


def test_cancelling_a_queued_run_cancels_it_at_once_and_its_task_then_skips(
    model_dir, django_capture_on_commit_callbacks
):
    run = _run(model_dir)
    with django_capture_on_commit_callbacks():
        training_run_start(run=run)
    cancelled = training_run_cancel(run=run)
    assert cancelled.status == JobStatus.CANCELLED
    assert not training_run_claim(run_id=run.pk, attempt=1)


def test_cancelling_a_running_run_raises_its_flag_for_the_training_process(
    model_dir, django_capture_on_commit_callbacks
):
    run = _run(model_dir)
    with django_capture_on_commit_callbacks():
        training_run_start(run=run)
    training_run_claim(run_id=run.pk, attempt=1)
    assert training_run_cancel(run=run).cancel_requested
    assert training_run_beat(run_id=run.pk, attempt=1, step=3) == "cancelled"
    training_run_finish(run_id=run.pk, attempt=1, status=JobStatus.CANCELLED)
    with pytest.raises(TrainingRunError, match="only queued or running"):
        training_run_cancel(run=run)


def test_a_finished_run_cannot_be_cancelled(model_dir):
    run = _run(model_dir)
    with pytest.raises(TrainingRunError, match="only queued or running"):
        training_run_cancel(run=run)


def test_a_dead_run_is_detected_by_its_old_heartbeat_and_resumed_with_a_new_attempt(
    model_dir, django_capture_on_commit_callbacks
):
    run = _run(model_dir)
    with django_capture_on_commit_callbacks():
        training_run_start(run=run)
    training_run_claim(run_id=run.pk, attempt=1)
    training_run_beat(run_id=run.pk, attempt=1, step=5)
    run.refresh_from_db()
    assert not training_run_is_dead(run)
    with pytest.raises(TrainingRunError, match="only failed, cancelled or dead"):
        training_run_resume(run=run)

    TrainingRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    run.refresh_from_db()
    assert training_run_is_dead(run)
    with django_capture_on_commit_callbacks() as callbacks:
        resumed = training_run_resume(run=run)
    assert resumed.status == JobStatus.QUEUED
    assert resumed.attempt == 2
    assert resumed.step == 5
    assert len(callbacks) == 1
    # Whatever survives of attempt 1 is fenced off: its writes are refused and it is told to stop.
    assert training_run_beat(run_id=run.pk, attempt=1, step=6) == "superseded"
    assert training_run_record_metrics(run_id=run.pk, attempt=1, step=6, values={"loss": 1.0}, completions=[]) == (
        "superseded"
    )
    assert not TrainingMetric.objects.filter(run=run).exists()
    assert not training_run_finish(run_id=run.pk, attempt=1, status=JobStatus.FAILED, error="old")


def test_metrics_of_a_replayed_step_replace_the_old_ones(model_dir, django_capture_on_commit_callbacks):
    run = _run(model_dir)
    with django_capture_on_commit_callbacks():
        training_run_start(run=run)
    training_run_claim(run_id=run.pk, attempt=1)
    completions = [{"task": "t", "completion": "<b>What?</b>", "rewards": {"elicitation_reward": 0.1}}]
    training_run_record_metrics(run_id=run.pk, attempt=1, step=1, values={"loss": 1.0}, completions=completions)
    training_run_record_metrics(run_id=run.pk, attempt=1, step=1, values={"loss": 0.5}, completions=[])
    run.refresh_from_db()
    assert run.metrics.get().values == {"loss": 0.5}
    assert run.step == 1
    assert run.last_completions == completions


def _fake_final(run: TrainingRun, *, adapter: bool) -> Path:
    final = Path(run.output_dir) / FINAL_DIR
    final.mkdir(parents=True)
    info = {"base_model_path": run.base_model_path, "adapter": adapter, "steps": 2}
    (final / FINAL_INFO).write_text(json.dumps(info))
    return final


def test_success_registers_the_trained_model_as_a_transformers_system(model_dir, django_capture_on_commit_callbacks):
    factories.SystemFactory(name="alice-run")  # name taken: the new system gets a distinct one
    run = _run(model_dir, reward_config={**DENSE, "weights": {"max_questions": 3}})
    with django_capture_on_commit_callbacks():
        training_run_start(run=run)
    training_run_claim(run_id=run.pk, attempt=1)
    final = _fake_final(run, adapter=True)
    assert training_run_finish(run_id=run.pk, attempt=1, status=JobStatus.SUCCEEDED)
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED
    assert run.step == 2
    system = run.systems.get()
    assert system.name == f"alice-run-run{run.pk}"
    assert system.backend == Backend.TRANSFORMERS
    assert system.model_path == str(final)
    assert system.generation_params == {"max_questions": 3, "adapter": True, "base_model_path": str(model_dir)}
    assert training_run_register_system(run=run) == system  # idempotent


def test_success_without_a_saved_model_is_recorded_as_a_failure(model_dir, django_capture_on_commit_callbacks):
    run = _run(model_dir)
    with django_capture_on_commit_callbacks():
        training_run_start(run=run)
    training_run_claim(run_id=run.pk, attempt=1)
    training_run_finish(run_id=run.pk, attempt=1, status=JobStatus.SUCCEEDED)
    run.refresh_from_db()
    assert run.status == JobStatus.FAILED
    assert "could not be registered: no finished model" in run.error


DECODING = {"temperature": 0.3, "top_p": 0.8, "max_new_tokens": 200, "seed": 11, "max_questions": 4}


def _finished(run: TrainingRun, django_capture_on_commit_callbacks) -> TrainingRun:
    with django_capture_on_commit_callbacks():
        training_run_start(run=run)
    training_run_claim(run_id=run.pk, attempt=1)
    _fake_final(run, adapter=False)
    assert training_run_finish(run_id=run.pk, attempt=1, status=JobStatus.SUCCEEDED)
    run.refresh_from_db()
    return run


def test_a_trained_system_is_generated_exactly_like_its_base_system(model_dir, django_capture_on_commit_callbacks):
    base = factories.SystemFactory(name="base", backend=Backend.TRANSFORMERS, model_path=str(model_dir),
                                   generation_params=DECODING)  # fmt: skip
    run = _finished(_run(model_dir, base_model_path="", base_system=base), django_capture_on_commit_callbacks)
    assert run.systems.get().generation_params == DECODING
    # …and it was trained on the prompt it will be asked with: the base's K, not the reward's.
    assert training_run_spec(run).max_questions == 4


def test_a_run_from_a_model_path_inherits_the_system_serving_that_path(model_dir, django_capture_on_commit_callbacks):
    factories.SystemFactory(name="smol", backend=Backend.TRANSFORMERS, model_path=str(model_dir),
                            generation_params=DECODING)  # fmt: skip
    run = _finished(_run(model_dir), django_capture_on_commit_callbacks)
    assert run.systems.get().generation_params == DECODING


def test_the_run_may_override_decoding_parameters_one_by_one(model_dir, django_capture_on_commit_callbacks):
    base = factories.SystemFactory(name="base", backend=Backend.TRANSFORMERS, model_path=str(model_dir),
                                   generation_params=DECODING)  # fmt: skip
    run = _run(model_dir, base_model_path="", base_system=base, decoding_overrides={"temperature": 0.0})
    run = _finished(run, django_capture_on_commit_callbacks)
    assert run.systems.get().generation_params == {**DECODING, "temperature": 0.0}


def test_unknown_decoding_overrides_are_refused(model_dir):
    run = _run(model_dir, decoding_overrides={"temprature": 0.0})
    assert any("unknown decoding parameter 'temprature'" in p for p in training_run_validate(run=run))


def test_a_run_freezes_the_evaluation_spec_at_start_and_its_page_shows_any_override(
    model_dir, client, researcher, django_capture_on_commit_callbacks
):
    same = _run(model_dir, name="same")
    other = _run(model_dir, name="other", reward_config={"spec": {"matcher": "lexical", "k": 3}})
    with django_capture_on_commit_callbacks():
        training_run_start(run=same)
        training_run_start(run=other)
    same.refresh_from_db()
    other.refresh_from_db()
    assert same.reward_spec == DEFAULT_SPEC.as_dict()
    assert other.reward_spec["matcher"] == "lexical"
    assert other.reward_spec["k"] == 3
    client.force_login(researcher)
    page = client.get(reverse("admin:training_trainingrun_change", args=[other.pk])).content.decode()
    assert "trains on a different reward than evaluation uses" in page
    assert "<td>matcher</td><td>lexical</td><td>embedding</td>" in page
    assert (
        "Same reward spec as evaluation."
        in client.get(reverse("admin:training_trainingrun_change", args=[same.pk])).content.decode()
    )
