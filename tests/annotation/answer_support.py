"""Shared set-up for the answer-study tests: systems whose names must never reach an annotator."""

from __future__ import annotations

from typing import Any

from annotation.answers import study_build_answer_items
from annotation.models import Study, StudyKind
from tests import factories
from training.models import Backend, System

SYSTEM_NAMES = ("zephyr-proactive-rl", "quokka-base-instruct")
FACTS = ["The budget is $5,000.", "The audience is first-year students."]


def make_answer_study(
    *, tasks: int = 3, annotators: tuple = (), systems: int = 2, questions: list[str] | None = None, **fields: Any
) -> Study:
    """An open answer study over `systems` systems' candidates on `tasks` tasks (no gold unless asked)."""
    fields.setdefault("gold_rate", 0.0)
    fields.setdefault("overlap", 1)
    study = factories.StudyFactory(kind=StudyKind.ANSWER, **fields)
    chosen = [
        System.objects.get_or_create(name=name, defaults={"backend": Backend.STATIC})[0]
        for name in SYSTEM_NAMES[:systems]
    ]
    study.systems.add(*chosen)
    study.annotators.add(*annotators)
    for i in range(tasks):
        task = factories.TaskFactory(
            full_task=f"Write an outline for a grant proposal {i}. The budget is $5,000. "
            "The audience is first-year students.",
            masked_task=f"Write an outline for a grant proposal {i}.",
            hidden_facts=list(FACTS),
        )
        for system in chosen:
            factories.CandidateFactory(
                task=task,
                system=system,
                questions=list(questions or ["What is the budget?", "Who is the audience?", "What is the deadline?"]),
            )
    study_build_answer_items(study=study)
    return study


def answers_for(n: int, text: str = "It is $5,000.") -> list[dict[str, Any]]:
    return [{"text": text, "doesnt_say": False} for _ in range(n)]
