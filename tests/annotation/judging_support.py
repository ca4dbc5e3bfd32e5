"""Shared set-up for the judging tests: a study whose systems have names that must never leak."""

from __future__ import annotations

from typing import Any

from annotation.models import Candidate, Comparison, Study
from tests import factories
from training.models import Backend, System

SYSTEM_NAMES = ("zephyr-proactive-rl", "quokka-base-instruct")


def make_study(*, comparisons: int = 3, annotators: tuple = (), gold: int = 0, **study_fields: Any) -> Study:
    """A study over two systems with `comparisons` regular and `gold` gold comparisons (gold answer: a)."""
    study_fields.setdefault("gold_rate", 0.0)
    study = factories.StudyFactory(**study_fields)
    systems = [
        System.objects.get_or_create(name=name, defaults={"backend": Backend.STATIC})[0] for name in SYSTEM_NAMES
    ]
    study.systems.add(*systems)
    study.annotators.add(*annotators)
    for index in range(comparisons + gold):
        task = factories.TaskFactory()
        a = factories.CandidateFactory(task=task, system=systems[0], questions=[f"Question A{index}?"])
        b = factories.CandidateFactory(task=task, system=systems[1], questions=[f"Question B{index}?"])
        is_gold = index >= comparisons
        Comparison.objects.create(
            study=study, task=task, candidate_a=a, candidate_b=b, is_gold=is_gold, gold_choice="a" if is_gold else ""
        )
    return study


def candidate_on_side(assignment, side: str) -> Candidate:
    """The candidate shown as Response 1 ("1") or Response 2 ("2") in this assignment."""
    comparison = assignment.comparison
    left, right = comparison.candidate_a, comparison.candidate_b
    if assignment.left == "b":
        left, right = right, left
    return left if side == "1" else right
