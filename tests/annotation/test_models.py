from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from annotation.models import Assignment, Comparison, Judgment
from tests import factories

pytestmark = pytest.mark.django_db


def _assignment(comparison: Comparison, user) -> Assignment:
    return Assignment.objects.create(
        comparison=comparison, annotator=user, left="a", lease_expires_at=timezone.now() + timedelta(minutes=30)
    )


def test_a_second_judgment_by_the_same_annotator_is_refused_by_the_database(alice):
    comparison = factories.ComparisonFactory()
    first = _assignment(comparison, alice)
    Judgment.objects.create(assignment=first, comparison=comparison, annotator=alice, choice="a", seconds=3)
    other = factories.ComparisonFactory()
    stray = _assignment(other, alice)
    # Same (comparison, annotator) through a different assignment row: only the constraint stops it.
    with pytest.raises(IntegrityError), transaction.atomic():
        Judgment.objects.create(assignment=stray, comparison=comparison, annotator=alice, choice="b", seconds=1)
    assert Judgment.objects.filter(comparison=comparison).count() == 1


def test_an_annotator_cannot_be_assigned_the_same_comparison_twice(alice):
    comparison = factories.ComparisonFactory()
    _assignment(comparison, alice)
    with pytest.raises(IntegrityError), transaction.atomic():
        _assignment(comparison, alice)


def test_a_comparison_whose_candidates_answer_different_tasks_is_rejected():
    task = factories.TaskFactory()
    own = factories.CandidateFactory(task=task)
    foreign = factories.CandidateFactory()  # another task
    study = factories.StudyFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Comparison.objects.create(study=study, task=task, candidate_a=own, candidate_b=foreign)
    assert not Comparison.objects.exists()


def test_a_comparison_of_a_candidate_with_itself_is_rejected():
    cand = factories.CandidateFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Comparison.objects.create(study=factories.StudyFactory(), task=cand.task, candidate_a=cand, candidate_b=cand)


def test_a_stored_judgment_cannot_be_changed(alice):
    comparison = factories.ComparisonFactory()
    judgment = Judgment.objects.create(
        assignment=_assignment(comparison, alice), comparison=comparison, annotator=alice, choice="a", seconds=2
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        Judgment.objects.filter(pk=judgment.pk).update(choice="b")
    judgment.refresh_from_db()
    assert judgment.choice == "a"


def test_an_invalid_choice_is_rejected_by_the_database(alice):
    comparison = factories.ComparisonFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Judgment.objects.create(
            assignment=_assignment(comparison, alice),
            comparison=comparison,
            annotator=alice,
            choice="x",
            seconds=2,
        )


def test_one_candidate_per_task_and_system():
    cand = factories.CandidateFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        factories.CandidateFactory(task=cand.task, system=cand.system)
