"""50 annotators at once against real PostgreSQL row locks. Skipped on SQLite (one writer at a time)."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from annotation import services
from annotation.models import Assignment, AssignmentState, Comparison, Judgment
from tests.annotation.judging_support import make_study
from tests.conftest import uses_postgres

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not uses_postgres(), reason="row locks (select_for_update skip_locked) need PostgreSQL"),
]

ANNOTATORS = 50
COMPARISONS = 20
OVERLAP = 3


def test_fifty_annotators_fill_every_comparison_exactly_to_its_overlap():
    # bulk_create: no password hashing, which would dominate this test's run time.
    annotators = get_user_model().objects.bulk_create(
        [get_user_model()(username=f"annotator-{i:02d}") for i in range(ANNOTATORS)]
    )
    study = make_study(comparisons=COMPARISONS, annotators=tuple(annotators), overlap=OVERLAP)
    submitted: list[tuple[int, int]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(ANNOTATORS)

    def work(user) -> None:
        try:
            start.wait()
            while (assignment := services.assignment_next_for_annotator(study=study, annotator=user)) is not None:
                # Every annotator double-submits: the second must be a no-op, never a second judgment.
                judgment, created = services.judgment_submit(assignment_id=assignment.pk, annotator=user, choice="1")
                again, created_again = services.judgment_submit(assignment_id=assignment.pk, annotator=user, choice="2")
                assert created
                assert not created_again
                assert again.pk == judgment.pk
                with lock:
                    submitted.append((assignment.comparison_id, user.pk))
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
    stored = list(Judgment.objects.values_list("comparison_id", "annotator_id"))
    assert sorted(stored) == sorted(submitted)  # no submitted judgment lost, none invented
    assert len(set(stored)) == len(stored)  # nobody judged a comparison twice
    per_comparison = Counter(comparison_id for comparison_id, _ in stored)
    assert set(per_comparison.values()) == {OVERLAP}
    assert len(per_comparison) == COMPARISONS
    for comparison in Comparison.objects.filter(study=study):
        assert comparison.judgments_count == comparison.slots_taken == OVERLAP
    assert not Assignment.objects.filter(state=AssignmentState.ACTIVE).exists()
