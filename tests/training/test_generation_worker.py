"""The whole pipeline through a real Celery worker on the configured broker (Redis in CI)."""

from __future__ import annotations

import os
import time

import pytest
from celery.contrib.testing.worker import start_worker

from annotation.models import Candidate
from pigplatform.celery import app
from tests.factories import CandidateFactory, SystemFactory, TaskFactory
from training import generation_tasks
from training.generation import generation_job_start
from training.models import Backend, ChunkStatus, GenerationJob, JobStatus

from .chat_server import ChatServer, scripted_reply

pytestmark = [
    pytest.mark.skipif(
        not os.environ.get("CELERY_BROKER_URL", "").startswith(("redis", "amqp")),
        reason="needs a broker server (CI sets CELERY_BROKER_URL=redis://…)",
    ),
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
]


def make_tasks(n: int):
    return [
        TaskFactory(masked_task=f"Write an outline for grant proposal {i}.", hidden_facts=["The budget is $5,000."])
        for i in range(n)
    ]


def wait_for(job: GenerationJob, timeout: float = 120) -> GenerationJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.status not in (JobStatus.QUEUED, JobStatus.RUNNING):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job still {job.status} after {timeout}s: {job.done}/{job.total}")


@pytest.fixture
def worker():
    with start_worker(app, queues=["generation"], pool="solo", perform_ping_check=False, loglevel="WARNING") as w:
        yield w


def test_the_tiny_model_generates_candidates_through_a_worker_and_a_rerun_is_idempotent(worker, tiny_model_dir):
    system = SystemFactory(
        backend=Backend.TRANSFORMERS,
        model_path=str(tiny_model_dir),
        generation_params={"max_new_tokens": 12, "chunk_size": 8, "max_questions": 3},
    )
    tasks = make_tasks(10)
    job = wait_for(generation_job_start(system=system, tasks=tasks, simulator="embedding"))
    assert (job.status, job.done, job.skipped, job.failed) == (JobStatus.SUCCEEDED, 10, 0, 0)
    assert job.tokens > 0
    assert job.started_at
    assert job.finished_at
    assert Candidate.objects.filter(system=system).count() == 10
    candidate = Candidate.objects.filter(system=system).first()
    assert candidate.metadata["model"] == str(tiny_model_dir)
    assert candidate.metadata["simulator"] == "embedding"
    assert len(candidate.answers) == len(candidate.questions) <= 3

    again = wait_for(generation_job_start(system=system, tasks=tasks, simulator="embedding"))
    assert (again.status, again.done, again.skipped) == (JobStatus.SUCCEEDED, 10, 10)
    assert Candidate.objects.filter(system=system).count() == 10

    # A redelivered message for a settled chunk (acks_late after a lost ack) changes nothing.
    chunk = job.chunks.first()
    generation_tasks.run_chunk.apply(args=[chunk.pk])
    job.refresh_from_db()
    assert (job.done, job.skipped) == (10, 0)


def test_a_chunk_that_fails_is_retried_without_duplicates(worker):
    with ChatServer(lambda body, n: (503, "warming up") if n <= 1 else scripted_reply(body, n)) as server:
        system = SystemFactory(
            backend=Backend.OPENAI,
            endpoint=server.url,
            model_path="m",
            generation_params={"max_retries": 0, "concurrency": 1},
        )
        tasks = make_tasks(9)
        # As if an earlier, killed attempt had saved this one before dying.
        CandidateFactory(task=tasks[0], system=system, questions=["Saved before the crash?"])
        job = wait_for(generation_job_start(system=system, tasks=tasks, simulator="lexical"))
    assert (job.status, job.done, job.skipped, job.failed) == (JobStatus.SUCCEEDED, 9, 1, 0)
    [chunk] = job.chunks.all()
    assert chunk.status == ChunkStatus.DONE
    assert chunk.attempts == 2
    assert Candidate.objects.filter(system=system).count() == 9
    assert Candidate.objects.get(task=tasks[0], system=system).questions == ["Saved before the crash?"]
