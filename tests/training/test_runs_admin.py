"""The researcher's run page in admin: buttons call services, the curve and completions render (escaped)."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
from django.urls import reverse

from tests.training.training_helpers import FAST, make_train_tasks
from training.models import TrainingMetric, TrainingRun
from training.runs import training_run_claim, training_run_create, training_run_start
from training.views_runs import line_chart_svg

pytestmark = pytest.mark.django_db


@pytest.fixture
def run(tmp_path: Path, settings) -> TrainingRun:
    settings.PIG = {**settings.PIG, "RUNS_DIR": tmp_path / "runs"}
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    make_train_tasks(2)
    return training_run_create(name="rita-run", base_model_path=str(tmp_path / "model"), task_split="train",
                               hyperparameters=FAST)  # fmt: skip


def _running_with_metrics(run: TrainingRun, django_capture_on_commit_callbacks) -> TrainingRun:
    with django_capture_on_commit_callbacks():
        training_run_start(run=run)
    training_run_claim(run_id=run.pk, attempt=1)
    for step, (reward, loss) in enumerate([(0.1, 0.5), (0.3, 0.4)], start=1):
        TrainingMetric.objects.create(run=run, step=step, values={"reward": reward, "loss": loss})
    evil = {"task": "Plan <b>it</b>", "completion": "<script>alert('x')</script>What?", "rewards": {"r": 0.5}}
    TrainingRun.objects.filter(pk=run.pk).update(step=2, last_completions=[evil])
    run.refresh_from_db()
    return run


def test_a_researcher_creates_a_run_in_admin_and_presses_start(
    client, researcher, run, django_capture_on_commit_callbacks
):
    client.force_login(researcher)
    page = client.get(reverse("admin:training_trainingrun_change", args=[run.pk]))
    assert page.status_code == 200
    assert b">Start</button>" in page.content
    assert b">Resume</button>" not in page.content
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(reverse("admin:training_run_operate", args=[run.pk, "start"]))
    assert response.status_code == 302
    run.refresh_from_db()
    assert run.status == "queued"
    assert run.enqueued_at is not None
    assert len(callbacks) == 1


def test_a_bad_run_started_from_admin_shows_why(client, researcher, run):
    TrainingRun.objects.filter(pk=run.pk).update(hyperparameters={**FAST, "num_generations": 1})
    client.force_login(researcher)
    response = client.post(reverse("admin:training_run_operate", args=[run.pk, "start"]), follow=True)
    assert "num_generations must be at least 2" in response.content.decode()
    assert "Run “rita-run”:" in response.content.decode()  # the run's name as written, not "Rita-run"
    assert "Rita-run" not in response.content.decode()
    run.refresh_from_db()
    assert run.status == "failed"


def test_buttons_only_accept_post(client, researcher, run):
    client.force_login(researcher)
    assert client.get(reverse("admin:training_run_operate", args=[run.pk, "start"])).status_code == 405


def test_the_run_page_shows_the_curve_and_escaped_completions(
    client, researcher, run, django_capture_on_commit_callbacks
):
    run = _running_with_metrics(run, django_capture_on_commit_callbacks)
    client.force_login(researcher)
    html = client.get(reverse("admin:training_trainingrun_change", args=[run.pk])).content.decode()
    assert "<svg" in html
    assert "<polyline" in html
    assert ">Cancel (stops after the current step)</button>" in html
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;What?" in html
    assert 'data-live="1"' in html


def test_the_progress_endpoint_serves_staff_only(client, alice, researcher, run, django_capture_on_commit_callbacks):
    run = _running_with_metrics(run, django_capture_on_commit_callbacks)
    url = reverse("training:run_progress", args=[run.pk])
    client.force_login(alice)
    assert client.get(url).status_code == 302
    client.force_login(researcher)
    data = client.get(url).json()
    assert data["status"] == "running"
    assert data["step"] == 2
    assert data["live"] is True
    assert "<polyline" in data["html"]
    assert "<script>alert" not in data["html"]
    svg = client.get(reverse("training:run_curve", args=[run.pk]))
    assert svg["Content-Type"] == "image/svg+xml"
    assert svg.content.count(b"<svg") == 3  # reward, loss and learning-signal panels


def test_the_chart_escapes_series_names_and_survives_empty_and_flat_series():
    svg = line_chart_svg("<Reward>", {"<b>r</b>": [(1, 0.5), (2, 0.5)]})
    assert "&lt;Reward&gt;" in svg
    assert "&lt;b&gt;r&lt;/b&gt;" in svg
    assert "<polyline" in svg
    assert "No logged steps yet." in line_chart_svg("Loss", {"loss": []})


def test_admin_actions_start_and_cancel(client, researcher, run, django_capture_on_commit_callbacks):
    client.force_login(researcher)
    changelist = reverse("admin:training_trainingrun_changelist")
    with django_capture_on_commit_callbacks():
        client.post(changelist, {"action": "start_runs", "_selected_action": [run.pk]})
    run.refresh_from_db()
    assert run.status == "queued"
    client.post(changelist, {"action": "cancel_runs", "_selected_action": [run.pk]})
    run.refresh_from_db()
    assert run.status == "cancelled"
    assert client.get(changelist).status_code == 200


def test_the_add_form_is_prefilled_with_the_defaults(client, researcher):
    client.force_login(researcher)
    html = client.get(reverse("admin:training_trainingrun_add")).content.decode()
    assert "num_generations" in html
    assert "elicitation" in html


def test_the_legend_lists_each_series_on_its_own_row_below_the_plot():
    names = ["reward", "rewards/elicitation_reward/mean", "rewards/coverage/mean"]
    svg = line_chart_svg("Reward", {name: [(1, 0.1 * i), (2, 0.2 * i)] for i, name in enumerate(names)}, height=220)
    rows = re.findall(r'<text x="(\d+)" y="(\d+)" data-legend="\d">([^<]+)</text>', svg)
    assert [name for _, _, name in rows] == names
    assert len({x for x, _, _ in rows}) == 1  # one column, so long names cannot run into each other
    ys = [int(y) for _, y, _ in rows]
    assert ys == sorted(ys)
    assert min(b - a for a, b in itertools.pairwise(ys)) >= 12  # a row per name, 11 px text
    assert ys[0] > 220 - 34  # below the plot and its axis
    assert 'height="265"' in svg  # the panel grows to hold them


def test_without_a_gpu_worker_the_add_form_is_cpu_sized_and_says_how_long_a_step_took(client, researcher, run):
    from datetime import timedelta

    from django.core.cache import cache
    from django.utils import timezone

    cache.delete("pig:training-worker")
    started = timezone.now() - timedelta(minutes=10)
    for step in (1, 2, 3):
        metric = TrainingMetric.objects.create(run=run, step=step, values={"reward": 0.1})
        TrainingMetric.objects.filter(pk=metric.pk).update(created_at=started + timedelta(seconds=80 * step))
    client.force_login(researcher)
    html = client.get(reverse("admin:training_trainingrun_add")).content.decode()
    assert "No training worker has reported a GPU yet" in html
    assert "&quot;max_steps&quot;: 6" in html
    assert "&quot;lora&quot;: true" in html
    assert '<option value="cpu" selected>' in html
    assert "Last time a step took about 80 s (run rita-run" in html


def test_a_gpu_worker_gets_the_full_size_defaults(client, researcher):
    from training.worker_info import training_worker_report

    training_worker_report(gpus=8, hostname="gpu-node-1")
    client.force_login(researcher)
    html = client.get(reverse("admin:training_trainingrun_add")).content.decode()
    assert "gpu-node-1 has 8 GPU(s)" in html
    assert "&quot;max_steps&quot;: 100" in html
    assert '<option value="cpu" selected>' not in html


def test_the_run_page_says_cancel_waits_for_the_step_and_hides_resume_without_a_checkpoint(
    client, researcher, run, django_capture_on_commit_callbacks
):
    from training.models import JobStatus
    from training.runs import training_run_finish

    run = _running_with_metrics(run, django_capture_on_commit_callbacks)
    client.force_login(researcher)
    html = client.get(reverse("admin:training_trainingrun_change", args=[run.pk])).content.decode()
    assert "Cancel (stops after the current step)</button>" in html
    assert "Cancel stops the run when its current step ends" in html
    training_run_finish(run_id=run.pk, attempt=run.attempt, status=JobStatus.FAILED, error="killed")
    html = client.get(reverse("admin:training_trainingrun_change", args=[run.pk])).content.decode()
    assert ">Resume</button>" not in html
    assert "cannot be resumed: create a new run" in html


def test_editing_a_run_in_admin_goes_through_the_service(client, researcher, run):
    client.force_login(researcher)
    url = reverse("admin:training_trainingrun_change", args=[run.pk])
    form = {
        "name": run.name,
        "base_model_path": run.base_model_path,
        "task_split": "train",
        "algorithm": "grpo",
        "reward_config": "{}",
        "hyperparameters": '{"max_steps": 7, "num_generations": 2, "per_device_train_batch_size": 2}',
        "device": "cpu",
        "num_processes": "1",
        # The rest of the form as the browser posts it (initial values).
        "warm_start_steps": "0",
        "decoding_overrides": "{}",
        "preference_config": "{}",
    }
    response = client.post(url, form)
    assert response.status_code == 302, (
        response.context["adminform"].form.errors.as_json() if response.context else response.status_code
    )
    run.refresh_from_db()
    assert (run.max_steps, run.device) == (7, "cpu")  # max_steps derived by training_run_update


def test_the_worker_counts_the_gpus_torch_sees():
    import torch

    from training.worker_info import count_gpus

    assert count_gpus() == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
