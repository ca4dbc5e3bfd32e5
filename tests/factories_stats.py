"""A study with judgments in a few queries, for statistics, export and results-page tests."""

from __future__ import annotations

import itertools
from datetime import timedelta

import numpy as np
from django.utils import timezone

from annotation.models import Assignment, Candidate, Comparison, Judgment, Study, StudyKind
from tests import factories


def study_with_judgments(
    *,
    annotators: list,
    systems: tuple[str, ...] = ("ours", "o3-mini", "gpt-4o"),
    strengths: tuple[float, ...] = (0.8, 0.0, -0.4),
    tasks: int = 12,
    per_comparison: int | None = None,
    kind: str = StudyKind.QUESTIONS,
    seed: int = 0,
    slug: str | None = None,
) -> Study:
    """Every pair of systems on every task, judged by `per_comparison` (default: all) of the annotators,
    who prefer stronger systems, tie a fifth of the time and lean slightly to the left."""
    rng = np.random.default_rng(seed)
    study = factories.StudyFactory(
        kind=kind, overlap=per_comparison or len(annotators), **({"slug": slug} if slug else {})
    )
    sys_rows = [factories.SystemFactory(name=name) for name in systems]
    study.systems.set(sys_rows)
    strength = dict(zip(systems, strengths, strict=True))
    now = timezone.now()
    for t in range(tasks):
        task = factories.TaskFactory()
        cands = {
            s.name: Candidate.objects.create(
                task=task, system=s, questions=[f"{s.name} asks {t}?"], outline=f"Outline by {s.name} for {task.key}"
            )
            for s in sys_rows
        }
        for x, y in itertools.combinations(systems, 2):
            comparison = Comparison.objects.create(study=study, task=task, candidate_a=cands[x], candidate_b=cands[y])
            judges = rng.choice(len(annotators), per_comparison or len(annotators), replace=False)
            for j in judges:
                user = annotators[j]
                left = "a" if rng.random() < 0.55 else "b"
                p_a = 1 / (1 + np.exp(strength[y] - strength[x]))
                choice = "tie" if rng.random() < 0.2 else ("a" if rng.random() < p_a else "b")
                assignment = Assignment.objects.create(
                    comparison=comparison,
                    annotator=user,
                    left=left,
                    lease_expires_at=now + timedelta(minutes=30),
                    state="submitted",
                )
                Judgment.objects.create(
                    assignment=assignment,
                    comparison=comparison,
                    annotator=user,
                    choice=choice,
                    seconds=float(rng.integers(5, 90)),
                    criteria={"Relevance": choice},
                    rationale=f"because {t}",
                )
            Comparison.objects.filter(pk=comparison.pk).update(judgments_count=len(judges), slots_taken=len(judges))
    return study
