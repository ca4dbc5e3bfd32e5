"""Progress a researcher can watch: per task in generation jobs, per candidate in auto-eval jobs, through a
real Celery worker on the configured broker (Redis in CI), plus the service-level pieces."""

from __future__ import annotations

import os
import threading
import time

import pytest
from celery.contrib.testing.worker import start_worker
from django.urls import reverse

from annotation.models import Candidate
from pigplatform.celery import app
from tests.factories import CandidateFactory, SystemFactory, TaskFactory
from training.auto_eval_jobs import auto_eval_job_start
from training.backends.transformers import TransformersBackend
from training.generation import (
    STAGE_LOADING,
    generation_chunk_claim,
    generation_chunk_run,
    generation_job_progress,
    generation_job_start,
)
from training.models import AutoEvalJob, AutoEvalResult, Backend, ChunkStatus, GenerationChunk, GenerationJob, JobStatus

from .chat_server import ChatServer, scripted_reply

needs_broker = pytest.mark.skipif(
    not os.environ.get("CELERY_BROKER_URL", "").startswith(("redis", "amqp")),
    reason="needs a broker server (CI sets CELERY_BROKER_URL=redis://…)",
)


def make_tasks(n: int):
    return [
        TaskFactory(masked_task=f"Write an outline for grant proposal {i}.", hidden_facts=["The budget is $5,000."])
        for i in range(n)
    ]


@pytest.fixture
def worker():
    with start_worker(app, queues=["generation"], pool="solo", perform_ping_check=False, loglevel="WARNING") as w:
        yield w


def _wait(predicate, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@needs_broker
@pytest.mark.django_db(transaction=True)
def test_generation_progress_moves_task_by_task_inside_one_chunk(worker):
    # Each outline request waits until the test lets it through, so the job is watched mid-chunk.
    gate = threading.Semaphore(0)

    def reply(body, n):
        if "clarification questions" not in body["messages"][-1]["content"]:
            assert gate.acquire(timeout=60)
        return scripted_reply(body, n)

    with ChatServer(reply) as server:
        system = SystemFactory(
            backend=Backend.OPENAI, endpoint=server.url, model_path="m", generation_params={"concurrency": 1}
        )
        job = generation_job_start(system=system, tasks=make_tasks(4), simulator="lexical", chunk_size=8)
        assert job.chunks.count() == 1

        def live():
            return generation_job_progress(job=GenerationJob.objects.get(pk=job.pk))

        seen = []
        for expected in range(4):
            _wait(lambda: live().stage == "writing outlines", what="the outline stage")
            progress = live()
            seen.append(progress.done)
            assert progress.done == expected
            assert job.chunks.get().status == ChunkStatus.RUNNING  # still one chunk, not settled
            gate.release()
            _wait(lambda e=expected: live().done == e + 1, what=f"{expected + 1} tasks done")
        _wait(lambda: live().status == JobStatus.SUCCEEDED, what="the job to finish")
    job.refresh_from_db()
    assert seen == [0, 1, 2, 3]
    assert (job.done, job.failed) == (4, 0)
    assert generation_job_progress(job=job).done == 4
    assert generation_job_progress(job=job).stage == ""
    assert Candidate.objects.filter(system=system).count() == 4


@pytest.mark.django_db
def test_the_job_shows_loading_model_while_the_model_loads(tiny_model_dir, monkeypatch):
    system = SystemFactory(
        backend=Backend.TRANSFORMERS,
        # A model path no other test has loaded in this process, so the worker must load it first.
        model_path=str(tiny_model_dir) + "/",
        generation_params={"max_new_tokens": 6, "max_questions": 2},
    )
    job = generation_job_start(system=system, tasks=make_tasks(2), simulator="lexical")
    stages_while_loading = []
    original = TransformersBackend.load

    def observed_load(self):
        stages_while_loading.append(generation_job_progress(job=job).stage)
        original(self)

    monkeypatch.setattr(TransformersBackend, "load", observed_load)
    chunk = generation_chunk_claim(chunk_id=job.chunks.get().pk)
    generation_chunk_run(chunk=chunk)
    assert stages_while_loading == [STAGE_LOADING]
    job.refresh_from_db()
    assert (job.status, job.done) == (JobStatus.SUCCEEDED, 2)


@pytest.mark.django_db
def test_running_chunks_add_their_finished_tasks_to_the_settled_count():
    system = SystemFactory(backend=Backend.TRANSFORMERS)
    job = generation_job_start(system=system, tasks=make_tasks(20), chunk_size=8)
    first, second, third = GenerationChunk.objects.filter(job=job).order_by("index")
    job.__class__.objects.filter(pk=job.pk).update(done=8)
    GenerationChunk.objects.filter(pk=first.pk).update(status=ChunkStatus.DONE, progress=8)  # settled: counted once
    running = GenerationChunk.objects.filter(pk=second.pk)
    running.update(status=ChunkStatus.RUNNING, progress=3, stage="writing outlines")
    GenerationChunk.objects.filter(pk=third.pk).update(status=ChunkStatus.RUNNING, progress=0, stage=STAGE_LOADING)
    job.refresh_from_db()
    progress = generation_job_progress(job=job)
    assert progress.done == 11
    assert progress.percent == 55.0
    assert progress.stage == f"{STAGE_LOADING}, writing outlines"


@pytest.mark.django_db(transaction=True)
def test_a_task_re_masked_while_its_candidate_was_generated_gets_no_candidate():
    from annotation.services import tasks_mask

    [task] = make_tasks(1)
    TaskFactory._meta.model.objects.filter(pk=task.pk).update(
        full_task="Write an outline for a grant proposal. The budget is $5,000. It is due in May."
    )

    def reply(body, n):
        if "clarification questions" not in body["messages"][-1]["content"]:
            # The researcher re-masks the task while the model is writing its outline.
            done = threading.Thread(target=lambda: (tasks_mask(tasks=[task]), _close()))
            done.start()
            done.join()
        return scripted_reply(body, n)

    with ChatServer(reply) as server:
        system = SystemFactory(backend=Backend.OPENAI, endpoint=server.url, model_path="m")
        job = generation_job_start(system=system, tasks=[task], simulator="lexical")
        generation_chunk_run(chunk=generation_chunk_claim(chunk_id=job.chunks.get().pk))
    job.refresh_from_db()
    assert not Candidate.objects.filter(task=task).exists()
    assert job.failed == 1
    assert "changed while generating" in job.errors[0]["error"]


def _close() -> None:
    from django.db import connection

    connection.close()


def test_transformers_reports_each_prompt_of_a_batch_once(tiny_model_dir):
    backend = TransformersBackend(str(tiny_model_dir), device="cpu")
    reported: list[int] = []
    prompts = [[{"role": "user", "content": text}] for text in ("Hi", "Plan a trip to Oslo", "Write a memo")]
    results = backend.generate(prompts, {"max_new_tokens": 8}, on_result=reported.append)
    assert len(results) == 3
    assert sorted(reported) == [0, 1, 2]


@needs_broker
@pytest.mark.django_db(transaction=True)
def test_auto_eval_runs_on_a_worker_with_progress_and_stores_results_with_its_job(worker, client, researcher):
    asker, mute = SystemFactory(name="asker"), SystemFactory(name="mute")
    for task in make_tasks(5):
        CandidateFactory(task=task, system=asker, questions=["What is the budget?"], outline="- Budget: $5,000.")
        CandidateFactory(task=task, system=mute, questions=["What tone?"], outline="- Plan.")
    client.force_login(researcher)
    response = client.post(
        reverse("generation:auto-eval"),
        {"systems": [asker.pk, mute.pk], "split": "test", "baseline": mute.pk, "matcher": "lexical"},
    )
    assert response.status_code == 302
    job = AutoEvalJob.objects.get()
    job = _wait(
        lambda: AutoEvalJob.objects.filter(pk=job.pk, status=JobStatus.SUCCEEDED).first(), what="the auto-eval job"
    )
    assert (job.done, job.total) == (10, 10)
    results = {r.system.name: r for r in AutoEvalResult.objects.filter(job=job)}
    assert set(results) == {"asker", "mute"}
    assert results["asker"].metrics["coverage"]["mean"] == 1.0
    page = client.get(reverse("generation:auto-eval")).content.decode()
    assert "10 / 10" in page
    assert 'http-equiv="refresh"' not in page  # nothing live any more


@pytest.mark.django_db
def test_the_auto_eval_page_only_queues_the_work_and_refreshes_while_it_waits(client, researcher):
    asker = SystemFactory(name="asker")
    CandidateFactory(task=make_tasks(1)[0], system=asker)
    client.force_login(researcher)
    response = client.post(reverse("generation:auto-eval"), {"systems": [asker.pk], "split": "", "matcher": "lexical"})
    assert response.status_code == 302
    job = AutoEvalJob.objects.get()
    assert job.status == JobStatus.QUEUED
    assert not AutoEvalResult.objects.exists()  # nothing scored inside the request
    page = client.get(reverse("generation:auto-eval")).content.decode()
    assert 'http-equiv="refresh"' in page
    assert "waiting for a worker" in page


@pytest.mark.django_db
def test_an_auto_eval_job_settles_once_even_if_delivered_twice():
    from training.auto_eval_jobs import auto_eval_job_run

    asker = SystemFactory(name="asker")
    CandidateFactory(task=make_tasks(1)[0], system=asker)
    job = auto_eval_job_start(systems=[asker], matcher="lexical")
    assert auto_eval_job_run(job_id=job.pk).status == JobStatus.SUCCEEDED
    assert auto_eval_job_run(job_id=job.pk) is None
    assert AutoEvalResult.objects.filter(job=job).count() == 1
