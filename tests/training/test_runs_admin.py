"""The researcher's run page in admin: buttons call services, the curve and completions render (escaped)."""

from __future__ import annotations

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
    assert ">Cancel</button>" in html
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
