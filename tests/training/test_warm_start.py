"""Warm start (an SFT phase of the run before GRPO): examples, configuration, one curve, cancel and resume."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from annotation.models import Assignment, Comparison, Judgment, StudyKind
from tests import factories
from tests.training.test_grpo import TASKS, _launch
from tests.training.training_helpers import DENSE, FAST
from training.grpo import TrainingSpec
from training.models import Phase, TrainingMetric
from training.prompts import questions_prompt
from training.runs import (
    training_run_create,
    training_run_problems,
    training_run_signal_warning,
    training_run_warm_start_examples,
)
from training.sft import sft_rows
from training.views_runs import run_curve_svg

pytestmark = pytest.mark.django_db


@pytest.fixture
def model_dir(tmp_path) -> Path:
    path = tmp_path / "model"
    path.mkdir()
    (path / "config.json").write_text("{}")
    return path


def test_warm_start_examples_use_the_generation_prompt_and_one_question_per_line():
    rows = sft_rows(
        [
            {"masked_task": "Plan a launch.", "questions": ["What is the date? ", "", "Who attends?", "Budget?"]},
            {"masked_task": "Nothing asked.", "questions": []},
        ],
        k=2,
    )
    assert len(rows) == 1
    assert rows[0]["prompt"] == questions_prompt("Plan a launch.", 2)
    assert rows[0]["completion"] == [{"role": "assistant", "content": "What is the date?\nWho attends?"}]


def _train_and_test_candidates(system_name: str) -> None:
    system = factories.SystemFactory(name=system_name)
    for split in ("train", "train", "test"):
        task = factories.TaskFactory(split=split)
        factories.CandidateFactory(task=task, system=system, questions=[f"What about {task.key}?"])
    factories.CandidateFactory(task=factories.TaskFactory(split="train"), system=system, questions=[])


def test_a_systems_examples_come_from_train_split_tasks_only(model_dir):
    _train_and_test_candidates("proactive-rl")
    run = training_run_create(
        name="warm", base_model_path=str(model_dir), task_split="train", hyperparameters=FAST,
        warm_start_source="system:proactive-rl", warm_start_steps=5,
    )  # fmt: skip
    examples, problems = training_run_warm_start_examples(run)
    assert problems == []
    assert len(examples) == 2  # the test-split task stays held out; the candidate without questions is skipped
    assert all(e["questions"][0].startswith("What about") for e in examples)
    assert run.max_steps == 5 + FAST["max_steps"]


def _judge(comparison: Comparison, choices: list[str]) -> None:
    for i, choice in enumerate(choices):
        annotator = factories.UserFactory(username=f"judge-{comparison.pk}-{i}")
        assignment = Assignment.objects.create(
            comparison=comparison, annotator=annotator, left="a", lease_expires_at=timezone.now() + timedelta(hours=1)
        )
        Judgment.objects.create(
            assignment=assignment, comparison=comparison, annotator=annotator, choice=choice, seconds=3.0
        )


def test_a_studys_examples_are_the_candidates_a_majority_of_judges_preferred(model_dir):
    study = factories.StudyFactory(slug="q-study", kind=StudyKind.QUESTIONS)
    decided = factories.ComparisonFactory(study=study, task=factories.TaskFactory(split="train"))
    _judge(decided, ["b", "b", "a"])
    split = factories.ComparisonFactory(study=study, task=factories.TaskFactory(split="train"))
    _judge(split, ["a", "b"])
    held_out = factories.ComparisonFactory(study=study, task=factories.TaskFactory(split="test"))
    _judge(held_out, ["a", "a"])
    run = training_run_create(
        name="warm-study", base_model_path=str(model_dir), task_split="train", hyperparameters=FAST,
        warm_start_source="study:q-study", warm_start_steps=3,
    )  # fmt: skip
    examples, problems = training_run_warm_start_examples(run)
    assert problems == []
    assert examples == [{"masked_task": decided.task.masked_task, "questions": decided.candidate_b.questions}]


@pytest.mark.parametrize(
    ("source", "steps", "message"),
    [
        ("system:nobody", 3, "no system named 'nobody'"),
        ("study:none", 3, "no study with slug 'none'"),
        ("model:x", 3, "must be system:NAME or study:SLUG"),
        ("", 3, "warm_start_source is empty"),
        ("system:empty", 3, "has no candidates with questions on train-split tasks"),
        ("study:outlines", 3, "judges outline, not question sets"),
    ],
)
def test_a_bad_warm_start_is_refused_before_anything_loads(model_dir, source, steps, message):
    factories.TaskFactory(split="train")
    factories.SystemFactory(name="empty")
    factories.StudyFactory(slug="outlines", kind=StudyKind.OUTLINE)
    run = training_run_create(
        name="bad-warm", base_model_path=str(model_dir), task_split="train", hyperparameters=FAST,
        warm_start_source=source, warm_start_steps=steps,
    )  # fmt: skip
    assert any(message in p for p in training_run_problems(run)), training_run_problems(run)


def test_the_toml_warm_start_table_sets_the_runs_fields(tmp_path, model_dir):
    _train_and_test_candidates("proactive-rl")
    config = tmp_path / "run.toml"
    config.write_text(
        f'name = "toml-warm"\nmodel = "{model_dir}"\ntasks_split = "train"\n'
        'warm_start = { source = "system:proactive-rl", steps = 4 }\n'
        "[hyperparameters]\nmax_steps = 3\ngradient_accumulation_steps = 1\n"
    )
    call_command("train", "--config", str(config))
    from training.models import TrainingRun

    run = TrainingRun.objects.get(name="toml-warm")
    assert (run.warm_start_source, run.warm_start_steps, run.max_steps) == ("system:proactive-rl", 4, 7)
    config.write_text(config.read_text().replace('name = "toml-warm"', 'name = "x"').replace("steps = 4", "step = 4"))
    with pytest.raises(CommandError, match="warm_start must be a table"):
        call_command("train", "--config", str(config))


def _metrics(run, rows: list[tuple[int, str, dict]]) -> None:
    for step, phase, values in rows:
        TrainingMetric.objects.create(run=run, step=step, phase=phase, values=values)


def test_the_run_page_warns_after_ten_steps_without_elicitation_signal(model_dir):
    factories.TaskFactory(split="train")
    run = training_run_create(name="flat", base_model_path=str(model_dir), task_split="train", hyperparameters=FAST)
    flat = {"frac_reward_zero_std/elicitation_reward": 0.9, "completions/clipped_ratio": 0.5}
    _metrics(run, [(s, Phase.GRPO, flat) for s in range(1, 10)])
    assert training_run_signal_warning(run) == ""  # nine steps are not yet ten
    _metrics(run, [(10, Phase.GRPO, flat)])
    warning = training_run_signal_warning(run)
    assert warning.startswith("No learning signal from the elicitation reward")
    assert "warm start" in warning
    assert "max_completion_length (now 50% of completions hit it)" in warning
    _metrics(run, [(11, Phase.GRPO, {"frac_reward_zero_std/elicitation_reward": 0.5})])
    assert training_run_signal_warning(run) == ""


def test_the_curve_shows_both_phases_on_one_axis_with_the_switch_marked(model_dir):
    factories.TaskFactory(split="train")
    run = training_run_create(name="curve", base_model_path=str(model_dir), task_split="train", hyperparameters=FAST)
    _metrics(run, [(1, Phase.SFT, {"loss": 2.0}), (2, Phase.SFT, {"loss": 1.5})])
    _metrics(run, [(3, Phase.GRPO, {"loss": 0.01, "reward": 0.2}), (4, Phase.GRPO, {"loss": 0.02, "reward": 0.3})])
    svg = run_curve_svg(run)
    assert "warm-start loss (SFT)" in svg
    assert "GRPO loss" in svg
    assert svg.count("warm start | GRPO") == 2  # on both panels with data (no signal metrics logged here)


@pytest.mark.slow
def test_a_warm_start_then_grpo_writes_one_curve_and_resumes_after_a_cancel_in_the_warm_start(tmp_path, tiny_model_dir):
    examples = [{"masked_task": t["masked_task"], "questions": ["What is the budget?"]} for t in TASKS]
    spec = TrainingSpec(
        model_path=str(tiny_model_dir), tasks=TASKS, output_dir=str(tmp_path / "out"),
        hyperparameters={**FAST, "sft_batch_size": 2, "save_steps": 1}, reward_config=DENSE, device="cpu",
        warm_start={"source": "system:x", "steps": 3, "examples": examples},
    )  # fmt: skip
    out = Path(spec.output_dir)
    out.mkdir(parents=True)
    (out / "CANCEL").touch()
    first = _launch(spec, tmp_path / "spec.json")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "stopped: cancelled at step 1 of the warm start" in first.stdout
    assert (out / "warm-start" / "checkpoint-1").is_dir()

    (out / "CANCEL").unlink()
    spec.resume = True
    second = _launch(spec, tmp_path / "spec2.json")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "resuming from checkpoint-1" in second.stdout
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(x["step"], x["phase"]) for x in lines] == [
        (1, "sft"), (2, "sft"), (3, "sft"), (4, "grpo"), (5, "grpo"),
    ]  # fmt: skip
    assert "mean_token_accuracy" in lines[1]["values"]
    assert "frac_reward_zero_std/elicitation_reward" in lines[3]["values"]
    info = json.loads((out / "final" / "pig_training.json").read_text())
    assert info["base_model_path"] == str(out / "warm-start" / "final")
    assert (info["warm_start_steps"], info["steps"]) == (3, 2)


def test_a_warm_started_system_samples_exactly_like_its_base_unless_the_run_overrides(
    model_dir, settings, tmp_path, django_capture_on_commit_callbacks
):
    from training.backends.transformers import sampling_kwargs
    from training.grpo import FINAL_DIR, FINAL_INFO
    from training.models import Backend, JobStatus
    from training.runs import training_run_claim, training_run_finish, training_run_start

    settings.PIG = {**settings.PIG, "RUNS_DIR": tmp_path / "runs"}
    _train_and_test_candidates("proactive-rl")
    decoding = {"temperature": 0.3, "top_p": 0.8, "max_new_tokens": 200, "seed": 11, "max_questions": 4}
    base = factories.SystemFactory(name="smol", backend=Backend.TRANSFORMERS, model_path=str(model_dir),
                                   generation_params=decoding)  # fmt: skip
    systems = []
    for name, overrides in (("same", {}), ("hotter", {"temperature": 1.0})):
        run = training_run_create(
            name=name, base_system=base, task_split="train", hyperparameters=FAST, decoding_overrides=overrides,
            warm_start_source="system:proactive-rl", warm_start_steps=2,
        )  # fmt: skip
        with django_capture_on_commit_callbacks():
            training_run_start(run=run)
        training_run_claim(run_id=run.pk, attempt=run.attempt)
        final = Path(run.output_dir) / FINAL_DIR
        final.mkdir(parents=True)
        info = {"base_model_path": str(Path(run.output_dir) / "warm-start" / "final"), "adapter": True, "steps": 2,
                "warm_start_steps": 2, "warm_start_source": "system:proactive-rl"}  # fmt: skip
        (final / FINAL_INFO).write_text(json.dumps(info))
        assert training_run_finish(run_id=run.pk, attempt=run.attempt, status=JobStatus.SUCCEEDED)
        systems.append(run.systems.get())
    same, hotter = systems
    assert sampling_kwargs(same.generation_params) == sampling_kwargs(base.generation_params)
    assert same.generation_params["max_questions"] == base.generation_params["max_questions"]
    assert same.generation_params["seed"] == base.generation_params["seed"]
    assert sampling_kwargs(hotter.generation_params) == {**sampling_kwargs(base.generation_params), "temperature": 1.0}
    assert "after 2 warm-start steps" in same.description
