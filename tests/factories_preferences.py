"""A synthetic preference study where the humans' rule is known: every preferred question set contains a marker
question and the other does not. For DPO tests and `benchmarks/dpo_check.py`; written with bulk inserts so a
study of several hundred comparisons takes a second or two."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from django.utils import timezone

from annotation.models import Assignment, Candidate, Comparison, Judgment, Study, StudyKind, Task
from tests import factories

MARKER = "What is the budget?"
OTHER_QUESTIONS = (
    "Who is the audience?",
    "When is the deadline?",
    "Which format do you prefer?",
    "How long should it be?",
    "What tone should it have?",
    "Who will review it?",
)


def marker_preference_study(
    *,
    annotators: list,
    tasks: int = 20,
    slug: str = "marker-prefs",
    seed: int = 0,
    tie_rate: float = 0.0,
    flip_rate: float = 0.0,
) -> Study:
    """One comparison per task between a `marker` system (its questions include MARKER) and a `plain` one,
    sides randomised, judged by every annotator: they prefer the marker side, except for `tie_rate` ties and
    `flip_rate` flipped votes (noise)."""
    rng = np.random.default_rng(seed)
    study = factories.StudyFactory(slug=slug, kind=StudyKind.QUESTIONS, overlap=len(annotators))
    marker, plain = factories.SystemFactory(name=f"{slug}-marker"), factories.SystemFactory(name=f"{slug}-plain")
    study.systems.set([marker, plain])
    task_rows = Task.objects.bulk_create(
        Task(
            key=f"{slug}-task-{i:04d}",
            domain=("grant proposal", "event plan", "course syllabus")[i % 3],
            full_task=f"Write an outline for project {i} of the {slug} study. The budget is ${1000 + i}.",
            masked_task=f"Write an outline for project {i} of the {slug} study.",
            hidden_facts=[f"The budget is ${1000 + i}."],
            split="train",
        )
        for i in range(tasks)
    )
    candidates = []
    for task in task_rows:
        others = [OTHER_QUESTIONS[j] for j in rng.permutation(len(OTHER_QUESTIONS))[:3]]
        candidates.append(Candidate(task=task, system=marker, questions=[MARKER, others[0]], revealed=[[0], []]))
        candidates.append(Candidate(task=task, system=plain, questions=others[1:], revealed=[[], []]))
    candidates = Candidate.objects.bulk_create(candidates)
    comparisons, marker_side = [], []
    for i, task in enumerate(task_rows):
        m, p = candidates[2 * i], candidates[2 * i + 1]
        a_is_marker = bool(rng.random() < 0.5)
        a, b = (m, p) if a_is_marker else (p, m)
        comparisons.append(
            Comparison(
                study=study, task=task, candidate_a=a, candidate_b=b,
                judgments_count=len(annotators), slots_taken=len(annotators),
            )
        )  # fmt: skip
        marker_side.append("a" if a_is_marker else "b")
    comparisons = Comparison.objects.bulk_create(comparisons)
    now = timezone.now()
    assignments, choices = [], []
    for comparison, side in zip(comparisons, marker_side, strict=True):
        for user in annotators:
            assignments.append(
                Assignment(
                    comparison=comparison, annotator=user, left="a" if rng.random() < 0.5 else "b",
                    lease_expires_at=now + timedelta(minutes=30), state="submitted",
                )
            )  # fmt: skip
            roll = rng.random()
            other = "b" if side == "a" else "a"
            choices.append("tie" if roll < tie_rate else other if roll < tie_rate + flip_rate else side)
    assignments = Assignment.objects.bulk_create(assignments)
    Judgment.objects.bulk_create(
        Judgment(
            assignment=assignment,
            comparison=assignment.comparison,
            annotator=assignment.annotator,
            choice=choice,
            seconds=float(rng.integers(5, 60)),
        )
        for assignment, choice in zip(assignments, choices, strict=True)
    )
    return study
