"""50 people answering at once against real PostgreSQL row locks. Skipped on SQLite (one writer at a time)."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from annotation.answers import answer_assignment_next, answer_set_submit
from annotation.models import AnswerAssignment, AnswerItem, AssignmentState, HumanTranscript
from tests.annotation.answer_support import answers_for, make_answer_study
from tests.conftest import uses_postgres

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not uses_postgres(), reason="row locks (select_for_update skip_locked) need PostgreSQL"),
]

ANNOTATORS = 50
TASKS = 10  # two systems: 20 items
OVERLAP = 3


def test_fifty_annotators_never_exceed_an_items_overlap():
    annotators = get_user_model().objects.bulk_create(
        [get_user_model()(username=f"player-{i:02d}") for i in range(ANNOTATORS)]
    )
    study = make_answer_study(tasks=TASKS, annotators=tuple(annotators), overlap=OVERLAP)
    submitted: list[tuple[int, int]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(ANNOTATORS)

    def work(user) -> None:
        try:
            start.wait()
            while (assignment := answer_assignment_next(study=study, annotator=user)) is not None:
                # Every annotator double-submits: the second must be a no-op, never a second transcript.
                first, created = answer_set_submit(assignment_id=assignment.pk, annotator=user, answers=answers_for(3))
                again, created_again = answer_set_submit(
                    assignment_id=assignment.pk, annotator=user, answers=answers_for(3, "other")
                )
                assert created
                assert not created_again
                assert again.pk == first.pk
                with lock:
                    submitted.append((assignment.item_id, user.pk))
        except BaseException as exc:  # collected and re-raised in the main thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(user,)) for user in annotators]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    stored = list(HumanTranscript.objects.values_list("item_id", "annotator_id"))
    assert sorted(stored) == sorted(submitted)
    assert len(set(stored)) == len(stored)
    per_item = Counter(item_id for item_id, _ in stored)
    assert set(per_item.values()) == {OVERLAP}
    assert len(per_item) == 2 * TASKS
    for item in AnswerItem.objects.filter(study=study):
        assert item.answers_count == item.slots_taken == OVERLAP
    assert not AnswerAssignment.objects.filter(state=AssignmentState.ACTIVE).exists()
