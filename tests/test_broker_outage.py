"""A researcher starts work while the broker is down: rows are kept, the error is clear, nothing is lost."""

from __future__ import annotations

import pytest
from django.urls import reverse

from pigplatform.celery import app
from tests import factories
from training.generation import generation_job_reenqueue, generation_job_start
from training.models import Backend, GenerationJob
from training.runs import training_run_reenqueue, training_run_start


@pytest.fixture
def dead_broker(monkeypatch):
    """Point the real Celery app at a Redis port where nothing listens, then restore it."""
    saved = app.conf.broker_url, app.conf.broker_transport_options, app.conf.broker_connection_max_retries
    # Celery lets the CELERY_BROKER_URL environment variable win over its configuration.
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:9/0")
    app.conf.broker_url = "redis://127.0.0.1:9/0"
    app.conf.broker_transport_options = {"max_retries": 1}
    _fresh_pools()
    yield
    monkeypatch.undo()
    app.conf.broker_url, app.conf.broker_transport_options, app.conf.broker_connection_max_retries = saved
    _fresh_pools()


def _fresh_pools() -> None:
    # Celery caches connection and producer pools built from the old URL; drop them so the next
    # publish connects to the configured broker.
    app._pool = None
    app.amqp._producer_pool = None


@pytest.mark.django_db(transaction=True)
def test_generation_started_while_the_broker_is_down_is_kept_with_a_clear_error(dead_broker, tmp_path):
    system = factories.SystemFactory(backend=Backend.TRANSFORMERS, model_path=str(tmp_path))
    tasks = factories.TaskFactory.create_batch(3)
    job = generation_job_start(system=system, tasks=tasks, simulator="lexical")
    job.refresh_from_db()
    assert "Could not reach the task broker" in job.error
    assert job.status == "queued"
    assert job.chunks.filter(status="queued").count() == job.chunks.count() >= 1
    assert GenerationJob.objects.count() == 1

    # Still down: re-enqueueing says so again and changes nothing else.
    assert generation_job_reenqueue(job=job) == job.chunks.count()
    job.refresh_from_db()
    assert "Could not reach the task broker" in job.error


@pytest.mark.django_db(transaction=True)
def test_a_training_run_started_while_the_broker_is_down_stays_queued_with_a_clear_error(dead_broker, tiny_model_dir):
    from training.models import TrainingRun

    factories.TaskFactory.create_batch(2, split="train")
    run = TrainingRun.objects.create(
        name="outage",
        base_model_path=str(tiny_model_dir),
        task_split="train",
        # One prompt a step (2 completions): the 2 tasks are enough for a step.
        hyperparameters={
            "max_steps": 1,
            "num_generations": 2,
            "per_device_train_batch_size": 2,
            "gradient_accumulation_steps": 1,
        },
        device="cpu",
    )
    run = training_run_start(run=run)
    run.refresh_from_db()
    assert run.status == "queued"
    assert "Could not reach the task broker" in run.error
    assert run.started_at is None
    run = training_run_reenqueue(run=run)
    run.refresh_from_db()  # the enqueue attempt happens after the service's transaction commits
    assert "Could not reach the task broker" in run.error


@pytest.mark.django_db(transaction=True)
def test_the_admin_shows_the_broker_error_when_generation_is_started(dead_broker, client, researcher, tmp_path):
    system = factories.SystemFactory(backend=Backend.TRANSFORMERS, model_path=str(tmp_path))
    task = factories.TaskFactory()
    client.force_login(researcher)
    start_url = reverse("generation:start")
    response = client.post(
        f"{start_url}?ids={task.pk}",
        {"systems": [system.pk], "source": "selection", "ids": str(task.pk), "simulator": "lexical"},
        follow=True,
    )
    assert response.status_code == 200
    assert "Could not reach the task broker" in response.content.decode()
