"""DPO runs: refused before any model loads when misconfigured, shown on the run page, and — on the tiny model
with synthetic marker preferences — trained end to end through the real worker and the `train` command."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import reverse

from tests.conftest import uses_postgres
from tests.factories_preferences import marker_preference_study
from tests.training.training_helpers import needs_broker, training_worker, wait_finished
from training.backends import get_backend
from training.dpo import DPOSpec, dpo_config_kwargs, dpo_loss_types
from training.models import Algorithm, JobStatus, TrainingRun
from training.prompts import questions_prompt
from training.runs import (
    training_run_claim,
    training_run_create,
    training_run_record_preference_eval,
    training_run_start,
)

# A few quick full-model steps: the tiny model learns the marker within them (lr 1e-3, β 0.1).
FAST_DPO = {"max_steps": 6, "per_device_train_batch_size": 4, "learning_rate": 1e-3, "save_steps": 3, "seed": 7}


@pytest.fixture(autouse=True)
def _runs_dir(settings, tmp_path):
    settings.PIG = {**settings.PIG, "RUNS_DIR": tmp_path / "runs"}


@pytest.fixture
def annotators(alice, bob, charlie):
    return [alice, bob, charlie]


def _dpo_run(model: Path, name: str = "alice-dpo", **kwargs) -> TrainingRun:
    defaults = {"base_model_path": str(model), "algorithm": Algorithm.DPO, "hyperparameters": FAST_DPO, "device": "cpu"}
    return training_run_create(name=name, **{**defaults, **kwargs})


def test_the_loss_types_come_from_trls_dpo_config():
    assert {"sigmoid", "ipo", "hinge", "robust"} <= set(dpo_loss_types())
    spec = DPOSpec(model_path="m", train=[], heldout=[], output_dir="o", hyperparameters={"loss_type": "ipo"})
    assert dpo_config_kwargs(spec, device="cpu")["loss_type"] == ["ipo"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("no_source", "choose exactly one preference source"),
        ("both_sources", "choose exactly one preference source"),
        ("loss", "unknown loss type 'dpo-ish': TRL's DPOConfig accepts sigmoid"),
        ("all_ties", "has no decisive judgments after filtering (0 pairs (dropped: 20 tie))"),
        ("no_template", "the base model has no chat template"),
        ("text_file", "line 1: prompt is plain text"),
        ("aggregation", "aggregation must be one of majority, per_judgment"),
        ("min_votes", "(0 pairs (dropped: 20 too few votes))"),
    ],
)
def test_a_bad_dpo_configuration_is_refused_before_any_model_loads_and_nothing_is_queued(
    annotators, tiny_model_dir, tmp_path, change, message, django_capture_on_commit_callbacks
):
    study = marker_preference_study(annotators=annotators, tasks=20, tie_rate=1.0 if change == "all_ties" else 0.0)
    model, kwargs = tiny_model_dir, {"preference_studies": [study]}
    if change == "no_source":
        kwargs = {}
    elif change == "both_sources":
        kwargs["preferences_file"] = str(tmp_path / "x.jsonl")
    elif change == "loss":
        kwargs["hyperparameters"] = {**FAST_DPO, "loss_type": "dpo-ish"}
    elif change == "no_template":
        model = Path(shutil.copytree(tiny_model_dir, tmp_path / "no-template"))
        (model / "chat_template.jinja").unlink(missing_ok=True)
        config = json.loads((model / "tokenizer_config.json").read_text())
        config.pop("chat_template", None)
        (model / "tokenizer_config.json").write_text(json.dumps(config))
    elif change == "text_file":
        path = tmp_path / "prefs.jsonl"
        path.write_text(json.dumps({"prompt": "Plan.", "chosen": "Q?", "rejected": "R?"}) + "\n")
        kwargs = {"preferences_file": str(path)}
    elif change == "aggregation":
        kwargs["preference_config"] = {"aggregation": "mode"}
    elif change == "min_votes":
        kwargs["preference_config"] = {"min_votes": 4}  # three annotators judged each comparison
    run = _dpo_run(model, **kwargs)
    with django_capture_on_commit_callbacks() as callbacks:
        started = training_run_start(run=run)
    assert callbacks == []
    assert started.status == JobStatus.FAILED
    assert started.error.startswith("Configuration refused")
    assert message in started.error
    assert started.enqueued_at is None


@pytest.mark.django_db
def test_a_good_dpo_run_is_queued_once(annotators, tiny_model_dir, django_capture_on_commit_callbacks):
    run = _dpo_run(tiny_model_dir, preference_studies=[marker_preference_study(annotators=annotators, tasks=10)])
    with django_capture_on_commit_callbacks() as callbacks:
        started = training_run_start(run=run)
    assert started.status == JobStatus.QUEUED, started.error
    assert started.max_steps == FAST_DPO["max_steps"]
    assert len(callbacks) == 1


@pytest.mark.django_db
def test_the_run_page_shows_the_dpo_curves_and_held_out_accuracy(
    client, researcher, annotators, tiny_model_dir, django_capture_on_commit_callbacks
):
    run = _dpo_run(tiny_model_dir, preference_studies=[marker_preference_study(annotators=annotators, tasks=10)])
    with django_capture_on_commit_callbacks():
        training_run_start(run=run)
    training_run_claim(run_id=run.pk, attempt=1)
    run.metrics.create(step=1, values={"loss": 0.69, "rewards/chosen": 0.1, "rewards/margins": 0.2})
    cell = {"accuracy": 0.8, "lo": 0.6, "hi": 1.0, "n_pairs": 5, "n_tasks": 5}
    chance = {"accuracy": 0.5, "lo": 0.5, "hi": 0.5, "n_pairs": 5, "n_tasks": 5}
    result = {"beta": 0.1, "pairs": 5, "tasks": 5, "base": {"implicit": chance, "likelihood": cell}}
    training_run_record_preference_eval(run_id=run.pk, attempt=1, result={"source": {"train_pairs": 8,
        "heldout_pairs": 2, "heldout_tasks": 2, "comparisons": 10, "dropped": {"tie": 1}}})  # fmt: skip
    training_run_record_preference_eval(run_id=run.pk, attempt=1, result=result)
    client.force_login(researcher)
    html = client.get(reverse("admin:training_trainingrun_change", args=[run.pk])).content.decode()
    assert "Implicit reward β·log(π/π_ref)" in html
    assert "Held-out preference accuracy" in html
    assert "0.800 [0.600, 1.000]" in html
    assert "Dropped: tie 1" in html
    run.refresh_from_db()
    assert set(run.preference_eval) == {"source", "beta", "pairs", "tasks", "base"}


# ---------------------------------------------------------------- end to end on the tiny model


def _assert_learned(run: TrainingRun) -> None:
    evaluation = run.preference_eval
    assert evaluation["source"]["heldout_pairs"] == evaluation["pairs"] > 0
    base, trained = evaluation["base"], evaluation["trained"]
    assert base["implicit"]["accuracy"] == 0.5  # before training π = π_ref: every pair ties
    assert trained["implicit"]["accuracy"] > base["implicit"]["accuracy"]
    assert trained["likelihood"]["accuracy"] > base["likelihood"]["accuracy"]


def _generates(system) -> str:
    """Through the platform's own backend, as "Generate candidates" would use the System."""
    backend = get_backend(backend=system.backend, model_path=system.model_path, params={"device": "cpu"})
    (result,) = backend.generate([questions_prompt("Plan a workshop.", 3)], {"max_new_tokens": 8, "temperature": 0})
    assert not result.error
    return result.text


@pytest.mark.slow
@needs_broker
@pytest.mark.django_db(transaction=True)
def test_dpo_on_marker_preferences_beats_the_base_on_held_out_pairs_and_the_system_generates(
    annotators, tiny_model_dir, monkeypatch
):
    monkeypatch.setenv("PIG_TRAINING_CPU_THREADS", "1")
    study = marker_preference_study(annotators=annotators, tasks=30, seed=1)
    run = _dpo_run(tiny_model_dir, preference_studies=[study], preference_config={"heldout_share": 0.2, "seed": 3})
    with training_worker():
        training_run_start(run=run)
        wait_finished(run)

    assert run.status == "succeeded", run.error + run.log[-3000:]
    assert run.step == FAST_DPO["max_steps"]
    metrics = list(run.metrics.order_by("step"))
    assert len(metrics) == FAST_DPO["max_steps"]
    keys = {"loss", "rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins"}
    assert keys <= set(metrics[-1].values)
    _assert_learned(run)
    system = run.systems.get()
    assert system.description.startswith("DPO run alice-dpo")
    assert isinstance(_generates(system), str)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not uses_postgres(), reason="the training process must reach the test database")
def test_train_command_runs_lora_dpo_from_a_trl_export_and_prints_held_out_accuracy(
    annotators, tiny_model_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv("PIG_TRAINING_CPU_THREADS", "1")
    study = marker_preference_study(annotators=annotators, tasks=30, seed=2)
    export = tmp_path / "prefs.jsonl"
    call_command("export_judgments", "--study", study.slug, "--format", "trl", "--prompt", "chat", "--split", "0.2",
                 "-o", str(export), stdout=io.StringIO())  # fmt: skip
    config = tmp_path / "dpo.toml"
    config.write_text(
        f'name = "bob-dpo"\nalgorithm = "dpo"\nmodel = "{tiny_model_dir}"\ndevice = "cpu"\n'
        f'[preferences]\nfile = "{export}"\n'
        "[hyperparameters]\nmax_steps = 8\nlearning_rate = 0.005\nlora = true\nlora_r = 8\nlora_alpha = 16\n"
    )
    out = io.StringIO()
    call_command("train", config=config, inline=True, stdout=out)
    run = TrainingRun.objects.get(name="bob-dpo")
    assert run.status == "succeeded", run.error
    text = out.getvalue()
    assert "held-out preference accuracy" in text
    assert "implicit reward β·log(π/π_ref): base 0.500" in text
    _assert_learned(run)
    system = run.systems.get()
    assert system.generation_params["adapter"] is True
    assert isinstance(_generates(system), str)


@pytest.mark.django_db
def test_a_researcher_adds_a_dpo_run_in_admin_with_its_defaults(client, researcher, annotators, tiny_model_dir):
    study = marker_preference_study(annotators=annotators, tasks=10)
    client.force_login(researcher)
    assert "Add DPO run" in client.get(reverse("admin:training_trainingrun_changelist")).content.decode()
    form = client.get(reverse("admin:training_trainingrun_add") + "?algorithm=dpo").context["adminform"].form
    assert form.initial["algorithm"] == Algorithm.DPO
    assert form.initial["hyperparameters"]["loss_type"] == "sigmoid"
    assert form.initial["preference_config"]["aggregation"] == "majority"
    data = {
        "name": "rita-dpo",
        "base_model_path": str(tiny_model_dir),
        "algorithm": "dpo",
        "preference_studies": str(study.pk),
        "preference_config": json.dumps(form.initial["preference_config"]),
        "hyperparameters": json.dumps(FAST_DPO),
        "reward_config": "{}",
        "device": "cpu",
        "num_processes": "1",
        "warm_start_steps": "0",  # GRPO-only fields, at their initial values as the browser posts them
        "decoding_overrides": "{}",
    }
    response = client.post(reverse("admin:training_trainingrun_add"), data)
    assert response.status_code == 302, response.content.decode()[-3000:]
    run = TrainingRun.objects.get(name="rita-dpo")
    assert list(run.preference_studies.all()) == [study]
    assert run.max_steps == FAST_DPO["max_steps"]


@pytest.mark.django_db
def test_the_example_dpo_config_names_a_study_and_options_the_command_accepts(annotators):
    import tomllib

    from training.management.commands.train import run_from_config

    marker_preference_study(annotators=annotators, tasks=3, slug="demo-questions")
    config = tomllib.loads((Path(__file__).parents[2] / "training/configs/dpo-example.toml").read_text())
    run = run_from_config(config)
    assert run.algorithm == Algorithm.DPO
    assert [s.slug for s in run.preference_studies.all()] == ["demo-questions"]
    assert run.preference_config["min_votes"] == 2
    assert run.hyperparameters["lora"] is True
