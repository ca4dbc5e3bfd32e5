from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.utils import timezone

from annotation import selectors, services
from annotation.models import AnnotatorFlag, Assignment, AssignmentState, Comparison, Judgment, StudyStatus
from tests import factories
from tests.annotation.judging_support import make_study

pytestmark = pytest.mark.django_db


def _next(study, user, **kwargs):
    return services.assignment_next_for_annotator(study=study, annotator=user, **kwargs)


def _submit(assignment, user, choice="1", **kwargs):
    return services.judgment_submit(assignment_id=assignment.pk, annotator=user, choice=choice, **kwargs)


def test_next_serves_the_least_covered_comparison_first(alice, bob, charlie):
    study = make_study(comparisons=3, annotators=(alice, bob, charlie), overlap=2)
    first = _next(study, alice)
    _submit(first, alice)
    # bob must get one of the two untouched comparisons, not alice's.
    second = _next(study, bob)
    assert second.comparison_id != first.comparison_id
    _submit(second, bob)
    third = _next(study, charlie)
    assert third.comparison_id not in {first.comparison_id, second.comparison_id}


def test_ties_are_broken_at_random(alice):
    study = make_study(comparisons=6, annotators=(alice,))
    picks = set()
    for seed in range(12):
        assignment = _next(study, alice, rng=random.Random(seed))
        picks.add(assignment.comparison_id)
        Assignment.objects.filter(pk=assignment.pk).delete()
        Comparison.objects.filter(pk=assignment.comparison_id).update(slots_taken=0)
    assert len(picks) > 1


def test_an_open_lease_is_resumed_with_the_same_sides(alice):
    study = make_study(comparisons=5, annotators=(alice,))
    first = _next(study, alice)
    again = _next(study, alice)
    assert again.pk == first.pk
    assert again.left == first.left
    assert Assignment.objects.count() == 1


def test_sides_are_drawn_at_random_and_stored(alice):
    study = make_study(comparisons=40, annotators=(alice,), overlap=1)
    sides = []
    for _ in range(40):
        assignment = _next(study, alice)
        sides.append(assignment.left)
        _submit(assignment, alice)
    assert set(sides) == {"a", "b"}
    assert sorted(Assignment.objects.values_list("left", flat=True)) == sorted(sides)


def test_the_screen_choice_is_stored_as_the_candidate_shown_there(alice):
    study = make_study(comparisons=1, annotators=(alice,))
    assignment = _next(study, alice)
    judgment, _ = _submit(assignment, alice, choice="1")
    assert judgment.choice == assignment.left
    assert Judgment.objects.get().choice == assignment.left


def test_overlap_is_never_exceeded(alice, bob, charlie):
    study = make_study(comparisons=1, annotators=(alice, bob, charlie), overlap=2)
    _submit(_next(study, alice), alice)
    live = _next(study, bob)  # a live lease takes the last slot, even before it is judged
    assert _next(study, charlie) is None
    _submit(live, bob)
    comparison = Comparison.objects.get()
    assert (comparison.judgments_count, comparison.slots_taken) == (2, 2)
    assert _next(study, charlie) is None


def test_an_annotator_never_gets_a_comparison_twice(alice):
    study = make_study(comparisons=2, annotators=(alice,))
    seen = []
    while (assignment := _next(study, alice)) is not None:
        seen.append(assignment.comparison_id)
        _submit(assignment, alice)
    assert len(seen) == len(set(seen)) == 2


def test_an_expired_lease_returns_its_slot(alice, bob):
    study = make_study(comparisons=1, annotators=(alice, bob), overlap=1, lease_minutes=30)
    held = _next(study, alice)
    assert _next(study, bob) is None
    later = timezone.now() + timedelta(minutes=31)
    taken = _next(study, bob, now=later)
    assert taken is not None
    held.refresh_from_db()
    assert held.state == AssignmentState.EXPIRED
    assert Comparison.objects.get().slots_taken == 1


def test_a_late_submit_is_accepted_while_the_slot_is_still_free(alice):
    study = make_study(comparisons=1, annotators=(alice,), overlap=1)
    assignment = _next(study, alice)
    assert services.assignments_expire(now=timezone.now() + timedelta(hours=1)) == 1
    judgment, created = _submit(assignment, alice, rationale="Clearer questions.")
    assert created
    comparison = Comparison.objects.get()
    assert (comparison.slots_taken, comparison.judgments_count) == (1, 1)
    assert judgment.rationale == "Clearer questions."


def test_a_late_submit_is_refused_when_others_took_the_slot_and_gives_the_text_back(alice, bob):
    study = make_study(comparisons=1, annotators=(alice, bob), overlap=1)
    stale = _next(study, alice)
    _submit(_next(study, bob, now=timezone.now() + timedelta(hours=1)), bob)
    with pytest.raises(services.SlotTaken) as refused:
        _submit(stale, alice, rationale="My careful reasoning.")
    assert refused.value.extra["rationale"] == "My careful reasoning."
    assert not Judgment.objects.filter(annotator=alice).exists()
    assert Comparison.objects.get().judgments_count == 1


def test_submitting_twice_yields_one_judgment(alice):
    study = make_study(comparisons=2, annotators=(alice,))
    assignment = _next(study, alice)
    first, created = _submit(assignment, alice, choice="2")
    again, created_again = _submit(assignment, alice, choice="1")
    assert created
    assert not created_again
    assert again.pk == first.pk
    assert Judgment.objects.count() == 1
    assert Comparison.objects.get(pk=assignment.comparison_id).judgments_count == 1


def test_someone_elses_assignment_cannot_be_submitted(alice, bob):
    study = make_study(comparisons=1, annotators=(alice, bob))
    assignment = _next(study, alice)
    with pytest.raises(services.AssignmentNotFound):
        _submit(assignment, bob)
    with pytest.raises(services.AssignmentNotFound):
        services.assignment_skip(assignment_id=assignment.pk, annotator=bob, reason="x")
    assert not Judgment.objects.exists()


def test_an_annotator_outside_the_study_gets_nothing(alice, bob):
    study = make_study(comparisons=1, annotators=(alice,))
    with pytest.raises(services.NotAllowed):
        _next(study, bob)
    assert not Assignment.objects.exists()


def test_a_closed_study_refuses_next_and_submit(alice):
    study = make_study(comparisons=2, annotators=(alice,))
    assignment = _next(study, alice)
    study.status = StudyStatus.CLOSED
    study.save()
    with pytest.raises(services.StudyClosed):
        _submit(assignment, alice)
    with pytest.raises(services.StudyClosed):
        _next(study, alice)
    assert not Judgment.objects.exists()


def test_bad_input_is_refused_and_nothing_changes(alice):
    study = make_study(
        comparisons=1, annotators=(alice,), criteria=["Relevance"], rationale_required=True, rationale_min_length=10
    )
    assignment = _next(study, alice)
    with pytest.raises(services.InvalidJudgment) as refused:
        _submit(assignment, alice, choice="left", criteria={"Relevance": "9"}, rationale="short", active_seconds=-1)
    assert set(refused.value.errors) == {"choice", "criteria", "rationale", "active_seconds"}
    assert not Judgment.objects.exists()
    assignment.refresh_from_db()
    assert assignment.state == AssignmentState.ACTIVE


def test_criteria_are_stored_relative_to_candidates(alice):
    study = make_study(comparisons=1, annotators=(alice,), criteria=["Relevance", "Specificity"])
    assignment = _next(study, alice)
    judgment, _ = _submit(assignment, alice, choice="2", criteria={"Relevance": "1", "Specificity": "tie"})
    other = "b" if assignment.left == "a" else "a"
    assert judgment.choice == other
    assert judgment.criteria == {"Relevance": assignment.left, "Specificity": "tie"}


def test_timing_is_measured_by_the_server_and_active_time_is_capped(alice):
    study = make_study(comparisons=1, annotators=(alice,))
    assignment = _next(study, alice)
    later = assignment.created_at + timedelta(seconds=42)
    judgment, _ = _submit(assignment, alice, active_seconds=900, now=later)
    assert judgment.seconds == pytest.approx(42)
    assert judgment.active_seconds == pytest.approx(42)


def test_skipping_returns_the_slot_and_is_never_served_again(alice, bob):
    study = make_study(comparisons=1, annotators=(alice, bob), overlap=1)
    assignment = _next(study, alice)
    with pytest.raises(services.InvalidJudgment):
        services.assignment_skip(assignment_id=assignment.pk, annotator=alice, reason="  ")
    services.assignment_skip(assignment_id=assignment.pk, annotator=alice, reason="Unfamiliar topic")
    assert Comparison.objects.get().slots_taken == 0
    assert _next(study, alice) is None
    assert _next(study, bob) is not None
    with pytest.raises(services.AssignmentFinished):
        _submit(assignment, alice)


def test_flagging_content_keeps_the_assignment_open(alice):
    study = make_study(comparisons=1, annotators=(alice,))
    assignment = _next(study, alice)
    services.assignment_flag(assignment_id=assignment.pk, annotator=alice, reason="Response 2 names its model")
    assignment.refresh_from_db()
    assert assignment.state == AssignmentState.ACTIVE
    assert assignment.flag_reason == "Response 2 names its model"
    assert list(selectors.flagged_content(study=study)) == [assignment]


def test_the_quota_ends_an_annotators_work(alice):
    study = make_study(comparisons=5, annotators=(alice,), quota_per_annotator=2)
    for _ in range(2):
        _submit(_next(study, alice), alice)
    assert _next(study, alice) is None
    assert selectors.annotator_progress(study=study, user=alice).mine_done == 2


def test_gold_is_served_at_the_studys_rate_and_beyond_overlap(alice, bob):
    study = make_study(comparisons=4, gold=1, annotators=(alice, bob), gold_rate=1.0, overlap=1)
    assert _next(study, alice).comparison.is_gold
    _submit(Assignment.objects.get(annotator=alice), alice)
    assert _next(study, bob).comparison.is_gold  # gold is not limited by overlap
    never = make_study(comparisons=2, gold=2, annotators=(alice,), gold_rate=0.0)
    served = []
    while (assignment := _next(never, alice)) is not None:
        served.append(assignment.comparison.is_gold)
        _submit(assignment, alice)
    assert served == [False, False]  # gold never served once the real work is done


def test_gold_accuracy_is_kept_and_weak_annotators_are_flagged(alice, bob):
    study = make_study(comparisons=10, gold=3, annotators=(alice, bob), gold_rate=1.0, gold_min_accuracy=0.7)
    for user, correct in ((alice, True), (bob, False)):
        for _ in range(3):
            assignment = _next(study, user)
            assert assignment.comparison.is_gold
            shown_first = "1" if assignment.left == "a" else "2"  # gold answer is candidate a
            wrong = "2" if shown_first == "1" else "1"
            _submit(assignment, user, choice=shown_first if correct else wrong)
    assert selectors.gold_accuracy(study=study, annotator=alice) == (3, 3)
    assert selectors.gold_accuracy(study=study, annotator=bob) == (0, 3)
    assert list(AnnotatorFlag.objects.values_list("annotator__username", flat=True)) == ["bob"]
    table = {row.username: row for row in selectors.annotator_quality_table(study=study)}
    assert table["bob"].flagged
    assert table["bob"].gold_accuracy == 0
    assert table["alice"].gold_accuracy == 1
    assert not table["alice"].flagged


def test_the_quality_table_reports_position_habit_tie_share_and_median_time(alice):
    study = make_study(comparisons=4, annotators=(alice,))
    for seconds, choice in ((10, "1"), (20, "1"), (30, "1"), (40, "tie")):
        assignment = _next(study, alice)
        _submit(assignment, alice, choice=choice, now=assignment.created_at + timedelta(seconds=seconds))
    (row,) = selectors.annotator_quality_table(study=study)
    assert row.judgments == 4
    assert row.response_1_share == 0.75
    assert row.tie_share == 0.25
    assert row.median_seconds == pytest.approx(25)


def test_progress_counts_judgments_up_to_the_overlap(alice, bob):
    study = make_study(comparisons=2, annotators=(alice, bob), overlap=2)
    _submit(_next(study, alice), alice)
    progress = selectors.annotator_progress(study=study, user=bob)
    assert (progress.mine_done, progress.study_done, progress.study_needed) == (0, 1, 4)


def test_group_members_may_judge(db):
    from django.contrib.auth.models import Group

    dana = factories.UserFactory(username="dana")
    group = Group.objects.create(name="crowd")
    dana.groups.add(group)
    study = make_study(comparisons=1, annotator_group=group)
    assert _next(study, dana) is not None
