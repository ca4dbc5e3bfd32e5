"""Studies with a goal: pair states from judgments, the engine serving open pairs only, self-closing,
budgets, and the overlap guarantee under concurrency on PostgreSQL."""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Sum
from django.urls import reverse
from django.utils import timezone

from annotation import services
from annotation.models import (
    Assignment,
    AssignmentState,
    Comparison,
    Judgment,
    StudyGoal,
    StudyPair,
    StudyStatus,
)
from annotation.services_goal import study_sequential_refresh
from tests import factories
from tests.conftest import uses_postgres

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_leftover_refreshes():
    yield
    # Judgments on goal studies enqueue a debounced refresh; none may reach a later test's worker.
    from pigplatform.celery import app

    app.control.purge()


SYSTEMS = ("alpha", "beta", "gamma")


def annotators(count: int, prefix: str = "ann") -> list:
    # bulk_create: no password hashing, which would dominate these tests' run time.
    User = get_user_model()
    return User.objects.bulk_create([User(username=f"{prefix}-{i:02d}") for i in range(count)])


def goal_study(*, tasks: int, people: list, overlap: int = 3, **fields):
    """Three systems, every pair on every task, comparisons built (and linked to pairs) by the service."""
    study = factories.StudyFactory(overlap=overlap, gold_rate=0.0, **fields)
    systems = [factories.SystemFactory(name=name) for name in SYSTEMS]
    study.systems.set(systems)
    study.annotators.add(*people)
    for _ in range(tasks):
        task = factories.TaskFactory()
        for system in systems:
            factories.CandidateFactory(task=task, system=system)
    services.study_build_comparisons(study=study)
    return study


def pair(study, a: str, b: str) -> StudyPair:
    return StudyPair.objects.get(study=study, system_a__name=a, system_b__name=b)


def judge_pair(study, a: str, b: str, people: list, choice: str) -> int:
    """Judgments of every comparison of the pair by each person (`choice` for system a of the pair),
    written directly as the judging service would leave them (created_at: arrival order)."""
    start = timezone.now() - timedelta(hours=1)
    count = 0
    for comparison in Comparison.objects.filter(pair=pair(study, a, b)).select_related("candidate_a__system"):
        for person in people:
            assignment = Assignment.objects.create(
                comparison=comparison,
                annotator=person,
                left="a",
                state=AssignmentState.SUBMITTED,
                lease_expires_at=start,
            )
            flipped = comparison.candidate_a.system.name != a
            stored = {"a": "b", "b": "a"}.get(choice, choice) if flipped else choice
            Judgment.objects.create(
                assignment=assignment, comparison=comparison, annotator=person, choice=stored, seconds=3
            )
            count += 1
        Comparison.objects.filter(pk=comparison.pk).update(slots_taken=len(people), judgments_count=len(people))
    return count


def test_building_comparisons_links_each_to_its_pair_oriented_like_the_statistics():
    study = goal_study(tasks=2, people=[])
    pairs = StudyPair.objects.filter(study=study)
    assert sorted((p.system_a.name, p.system_b.name) for p in pairs) == [
        ("alpha", "beta"),
        ("alpha", "gamma"),
        ("beta", "gamma"),
    ]
    assert not Comparison.objects.filter(study=study, pair__isnull=True).exists()
    assert Counter(Comparison.objects.filter(study=study).values_list("pair", flat=True)) == {p.pk: 2 for p in pairs}


def test_a_refresh_decides_a_pair_from_its_judgments_in_arrival_order():
    people = annotators(3)
    study = goal_study(tasks=8, people=people, goal=StudyGoal.DECIDE_ALL)
    judge_pair(study, "alpha", "beta", people, "a")  # 24 straight wins for alpha
    study_sequential_refresh(study_id=study.pk)
    decided = pair(study, "alpha", "beta")
    assert (decided.n, decided.wins_a, decided.decided, decided.open) == (24, 24, "a", False)
    assert decided.cs_low > 0.5
    assert decided.judgments_left == 0
    untouched = pair(study, "beta", "gamma")
    assert (untouched.n, untouched.decided, untouched.open, untouched.cs_low, untouched.cs_high) == (0, "", True, 0, 1)
    assert untouched.weight > decided.weight


def test_the_engine_stops_serving_a_decided_pair():
    people = annotators(3)
    study = goal_study(tasks=8, people=people, goal=StudyGoal.DECIDE_ALL, drift_check_share=0.0)
    judge_pair(study, "alpha", "gamma", people[:2], "a")  # 16 wins: decided, 8 comparisons have 1 slot left
    study_sequential_refresh(study_id=study.pk)
    assert pair(study, "alpha", "gamma").decided == "a"
    served = Counter()
    rng = random.Random(1)
    for person in [*people, *annotators(12, "late")]:
        study.annotators.add(person)
        for _ in range(6):
            assignment = services.assignment_next_for_annotator(study=study, annotator=person, rng=rng)
            if assignment is None:
                break
            served[assignment.comparison.pair.system_a.name + "/" + assignment.comparison.pair.system_b.name] += 1
            services.judgment_submit(assignment_id=assignment.pk, annotator=person, choice="tie")
    assert served["alpha/gamma"] == 0
    assert served["alpha/beta"] > 0
    assert served["beta/gamma"] > 0


def test_a_drift_check_share_still_serves_a_few_settled_comparisons():
    people = annotators(3)
    study = goal_study(tasks=8, people=people, goal=StudyGoal.DECIDE_ALL, drift_check_share=0.5)
    judge_pair(study, "alpha", "gamma", people[:2], "a")
    study_sequential_refresh(study_id=study.pk)
    rng = random.Random(2)
    served = Counter()
    for person in annotators(20, "drift"):
        study.annotators.add(person)
        assignment = services.assignment_next_for_annotator(study=study, annotator=person, rng=rng)
        served[assignment.comparison.pair_id] += 1
    assert 0 < served[pair(study, "alpha", "gamma").pk] < 20


def test_the_study_closes_itself_when_every_pair_is_decided_and_a_live_lease_is_still_taken():
    people = annotators(3)
    study = goal_study(tasks=8, people=people, goal=StudyGoal.DECIDE_ALL)
    late = annotators(1, "late")[0]
    study.annotators.add(late)
    lease = services.assignment_next_for_annotator(study=study, annotator=late)
    judge_pair(study, "alpha", "beta", people, "a")
    judge_pair(study, "alpha", "gamma", people, "a")
    judge_pair(study, "beta", "gamma", people, "b")
    study = study_sequential_refresh(study_id=study.pk)
    assert (study.status, study.closed_reason) == (StudyStatus.CLOSED, "goal_met")
    # The annotator was already looking at a comparison: their judgment still counts.
    _, created = services.judgment_submit(assignment_id=lease.pk, annotator=late, choice="1")
    assert created
    with pytest.raises(services.StudyClosed):
        services.assignment_next_for_annotator(study=study, annotator=late)


def test_a_researcher_close_is_final_even_for_live_leases():
    people = annotators(1)
    study = goal_study(tasks=2, people=people, goal=StudyGoal.DECIDE_ALL)
    lease = services.assignment_next_for_annotator(study=study, annotator=people[0])
    study.status = StudyStatus.CLOSED
    study.save()
    with pytest.raises(services.StudyClosed):
        services.judgment_submit(assignment_id=lease.pk, annotator=people[0], choice="1")


def test_a_budget_stops_serving_once_judgments_and_leases_reach_it_and_then_closes_the_study():
    people = annotators(6)
    study = goal_study(tasks=4, people=people, budget=5)
    leases = [services.assignment_next_for_annotator(study=study, annotator=p) for p in people]
    assert [lease is not None for lease in leases] == [True] * 5 + [False]
    for person, lease in zip(people[:5], leases[:5], strict=True):
        services.judgment_submit(assignment_id=lease.pk, annotator=person, choice="1")
    study = study_sequential_refresh(study_id=study.pk)
    assert (study.status, study.closed_reason) == (StudyStatus.CLOSED, "budget_spent")


def test_the_rank_goal_refuses_a_reference_design_and_the_half_width_goal_needs_a_width():
    study = factories.StudyFactory(goal=StudyGoal.HALF_WIDTH)
    with pytest.raises(ValidationError, match="half-width"):
        study.full_clean()
    study.goal, study.reference_system = StudyGoal.RANK, factories.SystemFactory()
    with pytest.raises(ValidationError, match="reference system"):
        study.full_clean()


@pytest.mark.skipif(not uses_postgres(), reason="row locks (select_for_update skip_locked) need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_fifty_annotators_on_a_goal_study_never_exceed_any_overlap():
    people = annotators(50)
    study = goal_study(tasks=12, people=people, overlap=3, goal=StudyGoal.DECIDE_ALL, drift_check_share=0.1)
    errors: list[BaseException] = []
    start = threading.Barrier(len(people) + 1)
    stop = threading.Event()

    def work(person) -> None:
        rng = random.Random(person.pk)
        try:
            start.wait()
            while True:
                try:
                    assignment = services.assignment_next_for_annotator(study=study, annotator=person, rng=rng)
                except services.StudyClosed:
                    return
                if assignment is None:
                    return
                # alpha always wins: pairs with alpha get decided mid-run and stop being served.
                system = assignment.comparison.candidate_a.system.name
                left_is_a = assignment.left == "a"
                wants_a = system == "alpha" or (
                    system == "beta" and assignment.comparison.candidate_b.system.name == "gamma"
                )
                choice = "1" if wants_a == left_is_a else "2"
                services.judgment_submit(assignment_id=assignment.pk, annotator=person, choice=choice)
        except BaseException as exc:  # collected and re-raised in the main thread
            errors.append(exc)
        finally:
            connection.close()

    def refresher() -> None:
        start.wait()
        try:
            while not stop.is_set():
                study_sequential_refresh(study_id=study.pk)  # what the debounced worker task runs
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(p,)) for p in people]
    background = threading.Thread(target=refresher)
    for thread in [*threads, background]:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    background.join()
    study_sequential_refresh(study_id=study.pk)  # the state as of the last judgment

    assert errors == []
    per_comparison = Counter(Judgment.objects.filter(comparison__study=study).values_list("comparison_id", flat=True))
    assert max(per_comparison.values()) <= 3
    for comparison in Comparison.objects.filter(study=study):
        assert comparison.judgments_count == per_comparison.get(comparison.pk, 0)
        assert comparison.slots_taken == comparison.judgments_count  # no lease left behind
    pairs = {(p.system_a.name, p.system_b.name): p for p in StudyPair.objects.filter(study=study)}
    # How many judgments a pair gets after its decision depends on how fast the refresh keeps up with
    # annotators who need no time to think; test_the_engine_stops_serving_a_decided_pair checks that.
    assert pairs["alpha", "beta"].decided == "a"


def test_the_results_page_and_admin_show_goal_spent_decided_and_left(client, researcher):
    people = annotators(3)
    study = goal_study(tasks=8, people=people, goal=StudyGoal.DECIDE_ALL, budget=500)
    judge_pair(study, "alpha", "beta", people, "a")
    judge_pair(study, "beta", "gamma", people[:1], "a")  # 6 of 8 for beta: open, with an estimate
    client.force_login(researcher)
    changelist = reverse("admin:annotation_study_changelist")
    response = client.post(changelist, {"action": "refresh_pair_states", "_selected_action": [study.pk]})
    assert response.status_code == 302
    html = client.get(changelist).content.decode()
    assert "Decide every pair: 1/3 decided · 32/500 judgments" in html
    page = client.get(reverse("results:study", args=[study.slug])).content.decode()
    assert "Decide every pair" in page
    assert "32 of a budget of 500" in page
    assert "1 of 3 · 2 still needed for the goal" in page
    assert "Judgments left (estimate)" in page
    change = client.get(reverse("admin:annotation_study_change", args=[study.pk])).content.decode()
    assert "anytime-valid state" in change


@pytest.mark.skipif(
    not os.environ.get("CELERY_BROKER_URL", "").startswith(("redis", "amqp")),
    reason="needs a broker server (CI sets CELERY_BROKER_URL=redis://…)",
)
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_refreshes_the_pair_states_after_judgments():
    from celery.contrib.testing.worker import start_worker

    from pigplatform.celery import app

    cache.clear()
    people = annotators(3)
    study = goal_study(tasks=4, people=people, goal=StudyGoal.DECIDE_ALL)
    with start_worker(app, queues=["default"], pool="solo", perform_ping_check=False, loglevel="WARNING"):
        for person in people:
            assignment = services.assignment_next_for_annotator(study=study, annotator=person)
            services.judgment_submit(assignment_id=assignment.pk, annotator=person, choice="tie")
        deadline = time.monotonic() + 60
        while StudyPair.objects.filter(study=study).aggregate(n=Sum("n"))["n"] < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
    assert StudyPair.objects.filter(study=study).aggregate(n=Sum("n"))["n"] == 3
    assert StudyPair.objects.filter(study=study, refreshed_at__isnull=False).count() == 3


def test_setting_a_goal_in_admin_refreshes_the_pairs_at_once(client, researcher):
    people = annotators(3)
    study = goal_study(tasks=8, people=people)
    judge_pair(study, "alpha", "beta", people, "a")
    assert pair(study, "alpha", "beta").open  # no goal yet: nothing computed
    client.force_login(researcher)
    url = reverse("admin:annotation_study_change", args=[study.pk])
    form = client.get(url).context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and not isinstance(v, list | dict)}
    data.update(
        {
            "goal": StudyGoal.DECIDE_ALL,
            "systems": [s.pk for s in study.systems.all()],
            "annotators": [p.pk for p in people],
            "criteria": "[]",
            "pairs-TOTAL_FORMS": "3",
            "pairs-INITIAL_FORMS": "3",
            "pairs-MIN_NUM_FORMS": "0",
            "pairs-MAX_NUM_FORMS": "1000",
        }
    )
    for i, p in enumerate(StudyPair.objects.filter(study=study).order_by("system_a__name", "system_b__name")):
        data[f"pairs-{i}-id"] = p.pk
        data[f"pairs-{i}-study"] = study.pk
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    decided = pair(study, "alpha", "beta")
    assert (decided.decided, decided.open) == ("a", False)


def test_an_open_pair_without_comparisons_left_is_pointed_out(client, researcher):
    people = annotators(3)
    study = goal_study(tasks=4, people=people, goal=StudyGoal.DECIDE_ALL)
    judge_pair(study, "alpha", "beta", people, "tie")  # 12 ties: every comparison at its overlap, still open
    study_sequential_refresh(study_id=study.pk)
    client.force_login(researcher)
    page = client.get(reverse("results:study", args=[study.slug])).content.decode()
    assert "No comparisons left under the overlap for alpha vs beta" in page
    assert (
        "no comparisons left for 1 open pair(s)"
        in client.get(reverse("admin:annotation_study_changelist")).content.decode()
    )


def test_the_rank_goal_is_met_once_the_adjacent_pairs_are_decided():
    people = annotators(3)
    study = goal_study(tasks=8, people=people, goal=StudyGoal.RANK)
    judge_pair(study, "alpha", "beta", people, "a")
    judge_pair(study, "beta", "gamma", people, "a")
    judge_pair(study, "alpha", "gamma", people[:1], "a")  # 8 wins: not yet decided, and not needed
    study = study_sequential_refresh(study_id=study.pk)
    assert pair(study, "alpha", "gamma").decided == ""
    assert (study.status, study.closed_reason) == (StudyStatus.CLOSED, "goal_met")
