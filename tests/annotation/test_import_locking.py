"""Imports and masking check what they may change inside the transaction that writes, on locked rows.

Each test holds a competing write open in another connection (a candidate being stored, a judgment being
recorded) while the service runs: the service must wait for it and then refuse, not decide on what it saw
before the other write committed. PostgreSQL only (SQLite serialises every writer anyway)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from annotation.models import Assignment, Candidate, Judgment, Study, StudyStatus, Task
from annotation.services import ValidationFailed, candidates_import, study_set_status, tasks_mask
from tests import factories
from tests.conftest import uses_postgres

HOLD_S = 1.0


def _hold_open(write: Callable[[], object]) -> threading.Thread:
    """Run `write` in its own transaction and keep it uncommitted for HOLD_S seconds after it is done."""
    written = threading.Event()
    errors: list[BaseException] = []

    def work() -> None:
        try:
            with transaction.atomic():
                write()
                written.set()
                time.sleep(HOLD_S)
        except BaseException as exc:
            errors.append(exc)
            written.set()
        finally:
            connection.close()

    thread = threading.Thread(target=work)
    thread.errors = errors  # type: ignore[attr-defined]
    thread.start()
    assert written.wait(30)
    return thread


needs_postgres = pytest.mark.skipif(not uses_postgres(), reason="row locks need PostgreSQL")


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_masking_waits_for_a_generation_chunk_storing_its_candidate_and_then_refuses():
    from tests.training.chat_server import ChatServer, scripted_reply
    from training.generation import generation_chunk_claim, generation_chunk_run, generation_job_start

    task = factories.TaskFactory(full_task="Write a grant outline. The budget is $5,000. It is due in May.")
    before = (task.masked_task, task.hidden_facts)
    with ChatServer(scripted_reply) as server:
        system = factories.SystemFactory(backend="openai", endpoint=server.url, model_path="m")
        job = generation_job_start(system=system, tasks=[task], simulator="lexical")
        chunk = generation_chunk_claim(chunk_id=job.chunks.get().pk)
        # The chunk has stored its candidate and not committed yet when the researcher re-masks.
        thread = _hold_open(lambda: generation_chunk_run(chunk=chunk))
        started = time.monotonic()
        with pytest.raises(ValidationError, match="already have candidates"):
            tasks_mask(tasks=[task])
        assert time.monotonic() - started > HOLD_S / 2  # it waited for the chunk's transaction
        thread.join()
    assert not thread.errors
    task.refresh_from_db()
    assert (task.masked_task, task.hidden_facts) == before
    assert Candidate.objects.filter(task=task, system=system).exists()


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_a_reimport_waits_for_a_judgment_being_recorded_and_then_refuses_to_change_the_candidate(alice):
    from annotation.services import assignment_next_for_annotator, judgment_submit
    from tests.annotation.judging_support import make_study

    study = make_study(comparisons=1, annotators=(alice,), status=StudyStatus.OPEN)
    assignment = assignment_next_for_annotator(study=study, annotator=alice)
    candidate = assignment.comparison.candidate_a
    # The annotator's submit has written its judgment and not committed yet when the re-import starts.
    thread = _hold_open(lambda: judgment_submit(assignment_id=assignment.pk, annotator=alice, choice="1"))
    line = json.dumps({"key": candidate.task.key, "questions": ["Changed?"], "outline": "## changed"}).encode()
    started = time.monotonic()
    with pytest.raises(ValidationFailed, match="already judged"):
        candidates_import(lines=[line], system_name=candidate.system.name)
    assert time.monotonic() - started > HOLD_S / 2
    thread.join()
    assert not thread.errors
    candidate.refresh_from_db()
    assert candidate.questions != ["Changed?"]


@pytest.mark.django_db
def test_an_unjudged_candidate_is_updated_in_place_and_a_judged_one_of_the_same_file_stops_the_whole_import(alice):
    comparison = factories.ComparisonFactory()
    judged = comparison.candidate_a
    free = factories.CandidateFactory(system=judged.system)
    Judgment.objects.create(
        assignment=Assignment.objects.create(
            comparison=comparison, annotator=alice, left="a", lease_expires_at=timezone.now() + timedelta(minutes=5)
        ),
        comparison=comparison,
        annotator=alice,
        choice="b",
        seconds=1,
    )
    lines = [
        json.dumps({"key": free.task.key, "questions": ["New?"], "outline": "## new"}).encode(),
        json.dumps({"key": judged.task.key, "questions": ["New?"], "outline": "## new"}).encode(),
    ]
    with pytest.raises(ValidationFailed) as exc:
        candidates_import(lines=lines, system_name=judged.system.name)
    assert [e.line for e in exc.value.errors] == [2]
    free.refresh_from_db()
    assert free.questions != ["New?"]  # all or nothing
    report = candidates_import(lines=lines[:1], system_name=judged.system.name)
    assert (report.created, report.updated, report.unchanged) == (0, 1, 0)
    free.refresh_from_db()
    assert free.questions == ["New?"]
    assert Candidate.objects.get(pk=free.pk).pk == free.pk


@pytest.mark.django_db
def test_masking_a_task_without_candidates_rewrites_it():
    task = factories.TaskFactory(full_task="Write a grant outline. The budget is $5,000. It is due in May.")
    assert tasks_mask(tasks=Task.objects.filter(pk=task.pk)) == 1
    task.refresh_from_db()
    assert task.hidden_facts
    assert all(fact not in task.masked_task for fact in task.hidden_facts)


@pytest.mark.django_db
def test_a_study_is_opened_and_closed_through_the_service():
    study = factories.StudyFactory(status=StudyStatus.DRAFT)
    assert study_set_status(study=study, status=StudyStatus.OPEN).status == StudyStatus.OPEN
    assert Study.objects.get(pk=study.pk).status == StudyStatus.OPEN
    study_set_status(study=study, status=StudyStatus.CLOSED)
    assert Study.objects.get(pk=study.pk).status == StudyStatus.CLOSED
    with pytest.raises(ValidationError):
        study_set_status(study=study, status="paused")
    assert Study.objects.get(pk=study.pk).status == StudyStatus.CLOSED
