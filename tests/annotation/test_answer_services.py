"""The answer study's services: building, leasing, atomic idempotent storage, skip, flag, quota, gold."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.utils import timezone

from annotation import answers, answers_selectors
from annotation.answers import answer_assignment_next, answer_set_submit, study_build_answer_items
from annotation.models import (
    AnnotatorFlag,
    AnswerAssignment,
    AnswerItem,
    AssignmentState,
    HumanTranscript,
    Split,
    StudyStatus,
)
from annotation.services import AssignmentFinished, InvalidJudgment, NotAllowed, SlotTaken, StudyClosed
from tests import factories
from tests.annotation.answer_support import answers_for, make_answer_study
from training.matching import LexicalMatcher

pytestmark = pytest.mark.django_db


def test_build_makes_one_item_per_clean_candidate_with_questions_and_is_idempotent():
    study = make_answer_study(tasks=3)
    assert study.answer_items.count() == 6
    system = study.systems.first()
    # A candidate that names a system, and one that asked nothing, are left out.
    factories.CandidateFactory(system=system, blinding_flags=["zephyr"])
    factories.CandidateFactory(system=system, questions=[])
    fresh = factories.CandidateFactory(system=system, questions=["Which city?"])
    assert study_build_answer_items(study=study) == 1
    assert study_build_answer_items(study=study) == 0
    assert study.answer_items.get(candidate=fresh).questions == ["Which city?"]


def test_build_respects_the_study_split():
    study = make_answer_study(tasks=2, task_split=Split.TRAIN)
    assert study.answer_items.count() == 0  # the factory's tasks are all in the test split
    factories.CandidateFactory(system=study.systems.first(), task=factories.TaskFactory(split=Split.TRAIN))
    assert study_build_answer_items(study=study) == 1


def test_gold_items_ask_one_extra_question_the_card_cannot_answer():
    study = make_answer_study(tasks=10, gold_rate=0.2)
    gold = list(study.answer_items.filter(is_gold=True))
    assert len(gold) == 4  # 20% of 20 candidates
    for item in gold:
        question = item.questions[item.gold_question]
        assert question in answers.GOLD_QUESTIONS
        assert len(item.questions) == len(item.candidate.questions) + 1
        assert not any(LexicalMatcher(threshold=0.34).match([question], item.task.hidden_facts)[0])


def test_an_answer_set_is_stored_atomically_and_idempotently(alice):
    study = make_answer_study(tasks=2, annotators=(alice,))
    assignment = answer_assignment_next(study=study, annotator=alice)
    assert answer_assignment_next(study=study, annotator=alice) == assignment  # one live lease
    sent = [
        {"text": "  It is $5,000.  ", "doesnt_say": False},
        {"text": "ignored", "doesnt_say": True},
        {"text": "Students\nin their first year.", "doesnt_say": False},
    ]
    transcript, created = answer_set_submit(
        assignment_id=assignment.pk, annotator=alice, answers=sent, question_seconds=[3, "x", 2.5]
    )
    again, created_again = answer_set_submit(
        assignment_id=assignment.pk, annotator=alice, answers=answers_for(3, "something else")
    )
    assert created
    assert not created_again
    assert again.pk == transcript.pk
    assert transcript.answers == [
        {"text": "It is $5,000.", "doesnt_say": False},
        {"text": "", "doesnt_say": True},
        {"text": "Students\nin their first year.", "doesnt_say": False},
    ]
    assert transcript.candidate == assignment.item.candidate
    assert transcript.annotator == alice
    assert transcript.question_seconds == [3.0, None, 2.5]
    assert HumanTranscript.objects.count() == 1
    item = AnswerItem.objects.get(pk=assignment.item_id)
    assert (item.answers_count, item.slots_taken) == (1, 1)
    assignment.refresh_from_db()
    assert assignment.state == AssignmentState.SUBMITTED


@pytest.mark.parametrize(
    "sent",
    [
        [{"text": "$5,000", "doesnt_say": False}, {"text": "   ", "doesnt_say": False}, {"text": "x"}],
        [{"text": "$5,000"}],
        "not a list",
        [{"text": "ok"}, {"text": "a\x00b"}, {"text": "ok"}],
        [{"text": "ok"}, {"text": "x" * 2001}, {"text": "ok"}],
    ],
)
def test_an_empty_or_malformed_answer_is_refused_and_nothing_is_written(alice, sent):
    study = make_answer_study(tasks=1, systems=1, annotators=(alice,))
    assignment = answer_assignment_next(study=study, annotator=alice)
    with pytest.raises(InvalidJudgment) as refused:
        answer_set_submit(assignment_id=assignment.pk, annotator=alice, answers=sent)
    assert refused.value.errors
    assert not HumanTranscript.objects.exists()
    assignment.refresh_from_db()
    assert assignment.state == AssignmentState.ACTIVE
    assert AnswerItem.objects.get(pk=assignment.item_id).answers_count == 0


def test_the_empty_answer_error_names_the_question_and_the_way_out(alice):
    study = make_answer_study(tasks=1, systems=1, annotators=(alice,))
    assignment = answer_assignment_next(study=study, annotator=alice)
    with pytest.raises(InvalidJudgment) as refused:
        answer_set_submit(
            assignment_id=assignment.pk, annotator=alice, answers=[{"text": "a"}, {"text": ""}, {"text": "b"}]
        )
    assert refused.value.errors == {"answer-1": "Question 2: write an answer, or choose “The card doesn't say”."}


def test_someone_elses_assignment_looks_missing(alice, bob):
    study = make_answer_study(tasks=1, annotators=(alice, bob))
    assignment = answer_assignment_next(study=study, annotator=alice)
    with pytest.raises(answers.AssignmentNotFound):
        answer_set_submit(assignment_id=assignment.pk, annotator=bob, answers=answers_for(3))


def test_overlap_is_respected_and_nobody_answers_an_item_twice(alice, bob, charlie):
    study = make_answer_study(tasks=1, systems=1, annotators=(alice, bob, charlie), overlap=2)
    first = answer_assignment_next(study=study, annotator=alice)
    second = answer_assignment_next(study=study, annotator=bob)
    assert first.item_id == second.item_id
    assert answer_assignment_next(study=study, annotator=charlie) is None  # both slots leased
    answer_set_submit(assignment_id=first.pk, annotator=alice, answers=answers_for(3))
    assert answer_assignment_next(study=study, annotator=alice) is None  # answered already


def test_skip_frees_the_slot_and_the_item_is_never_served_to_that_person_again(alice, bob):
    study = make_answer_study(tasks=1, systems=1, annotators=(alice, bob))
    assignment = answer_assignment_next(study=study, annotator=alice)
    with pytest.raises(InvalidJudgment):
        answers.answer_assignment_skip(assignment_id=assignment.pk, annotator=alice, reason=" ")
    answers.answer_assignment_skip(assignment_id=assignment.pk, annotator=alice, reason="I cannot play this user")
    assert AnswerItem.objects.get(pk=assignment.item_id).slots_taken == 0
    assert answer_assignment_next(study=study, annotator=alice) is None
    assert answer_assignment_next(study=study, annotator=bob).item_id == assignment.item_id
    with pytest.raises(AssignmentFinished):
        answer_set_submit(assignment_id=assignment.pk, annotator=alice, answers=answers_for(3))


def test_flag_records_the_reason_and_keeps_the_lease(alice):
    study = make_answer_study(tasks=1, systems=1, annotators=(alice,))
    assignment = answer_assignment_next(study=study, annotator=alice)
    flagged = answers.answer_assignment_flag(assignment_id=assignment.pk, annotator=alice, reason="names its author")
    assert flagged.flag_reason == "names its author"
    assert flagged.state == AssignmentState.ACTIVE
    assert list(answers_selectors.answer_flagged_content(study=study)) == [flagged]


def test_quota_closed_study_and_strangers_are_refused(alice, bob):
    study = make_answer_study(tasks=3, annotators=(alice,), quota_per_annotator=1)
    assignment = answer_assignment_next(study=study, annotator=alice)
    answer_set_submit(assignment_id=assignment.pk, annotator=alice, answers=answers_for(3))
    assert answer_assignment_next(study=study, annotator=alice) is None
    with pytest.raises(NotAllowed):
        answer_assignment_next(study=study, annotator=bob)
    study.status = StudyStatus.CLOSED
    study.save()
    with pytest.raises(StudyClosed):
        answer_assignment_next(study=study, annotator=alice)


def test_an_expired_lease_still_counts_unless_others_completed_the_item(alice, bob):
    study = make_answer_study(tasks=1, systems=1, annotators=(alice, bob), lease_minutes=1)
    old = answer_assignment_next(study=study, annotator=alice)
    later = timezone.now() + timedelta(minutes=5)
    taken = answer_assignment_next(study=study, annotator=bob, now=later)  # alice's lease expired meanwhile
    assert taken.item_id == old.item_id
    answer_set_submit(assignment_id=taken.pk, annotator=bob, answers=answers_for(3))
    with pytest.raises(SlotTaken):
        answer_set_submit(assignment_id=old.pk, annotator=alice, answers=answers_for(3))
    assert HumanTranscript.objects.filter(annotator=alice).count() == 0


def test_failing_gold_flags_the_annotator_and_passing_gold_does_not(alice, bob):
    study = make_answer_study(tasks=8, systems=1, annotators=(alice, bob), gold_rate=1.0, overlap=2)
    for person, says_nothing in ((alice, False), (bob, True)):
        rng = random.Random(1)
        for _ in range(20):
            assignment = answer_assignment_next(study=study, annotator=person, rng=rng)
            if assignment is None:
                break
            item = assignment.item
            sent = answers_for(len(item.questions))
            if item.is_gold and says_nothing:
                sent[item.gold_question] = {"text": "", "doesnt_say": True}
            answer_set_submit(assignment_id=assignment.pk, annotator=person, answers=sent)
    assert answers_selectors.answer_gold_accuracy(study=study, annotator=alice)[0] == 0
    correct, judged = answers_selectors.answer_gold_accuracy(study=study, annotator=bob)
    assert judged >= 3
    assert correct == judged
    assert AnnotatorFlag.objects.filter(study=study, annotator=alice).exists()
    assert not AnnotatorFlag.objects.filter(study=study, annotator=bob).exists()
    # Gold answer sets never count as transcripts of the system's questions.
    assert (
        not answers_selectors.study_transcripts(study=study, exclude_flagged=False).filter(item__is_gold=True).exists()
    )


def test_expiry_returns_slots_once(alice):
    study = make_answer_study(tasks=1, systems=1, annotators=(alice,), lease_minutes=1)
    assignment = answer_assignment_next(study=study, annotator=alice)
    later = timezone.now() + timedelta(minutes=2)
    assert answers.answer_assignments_expire(study=study, now=later) == 1
    assert answers.answer_assignments_expire(study=study, now=later) == 0
    assert AnswerItem.objects.get(pk=assignment.item_id).slots_taken == 0
    assert AnswerAssignment.objects.get(pk=assignment.pk).state == AssignmentState.EXPIRED


@pytest.mark.django_db(transaction=True)
def test_a_stored_transcript_cannot_be_changed_even_in_bulk(alice):
    from django.db import IntegrityError, transaction

    study = make_answer_study(tasks=1, systems=1, annotators=(alice,))
    assignment = answer_assignment_next(study=study, annotator=alice)
    answer_set_submit(assignment_id=assignment.pk, annotator=alice, answers=answers_for(3))
    with pytest.raises(IntegrityError), transaction.atomic():
        HumanTranscript.objects.update(answers=[])
    assert HumanTranscript.objects.get().answers == answers_for(3, "It is $5,000.")
