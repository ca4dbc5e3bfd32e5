"""Reads that span relations. Views, admin and exports read through here."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import Least

from training.preferences import majority_side

from .models import (
    AnnotatorFlag,
    Assignment,
    AssignmentState,
    Candidate,
    Choice,
    Comparison,
    Judgment,
    Study,
    StudyKind,
    StudyStatus,
)
from .rendering import markdown_to_safe_html


def studies_visible_to(*, user: AbstractBaseUser) -> QuerySet[Study]:
    """Studies an annotator may judge: listed directly or through the study's group."""
    if not user.is_authenticated:
        return Study.objects.none()
    return Study.objects.filter(Q(annotators=user) | Q(annotator_group__in=user.groups.all())).distinct()


def studies_open_for_annotator(*, user: AbstractBaseUser) -> QuerySet[Study]:
    return studies_visible_to(user=user).filter(status=StudyStatus.OPEN).order_by("title")


def study_blinding_excluded_count(*, study: Study) -> int:
    """Candidates of the study's systems left out of it because they name a system or vendor."""
    return Candidate.objects.filter(system__in=study.systems.all()).exclude(blinding_flags=[]).count()


# --- Judging ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    mine_done: int
    quota: int | None
    study_done: int
    study_needed: int

    @property
    def mine_percent(self) -> int:
        return _percent(self.mine_done, self.quota) if self.quota else 0

    @property
    def study_percent(self) -> int:
        return _percent(self.study_done, self.study_needed)


def _percent(done: int, total: int | None) -> int:
    return min(100, round(100 * done / total)) if total else 0


def study_for_annotator(*, user: AbstractBaseUser, study_id: int) -> Study | None:
    return studies_visible_to(user=user).filter(pk=study_id).first()


def assignment_for_annotator(*, user: AbstractBaseUser, assignment_id: int) -> Assignment | None:
    """The annotator's own assignment, or None (someone else's looks exactly like a missing one)."""
    if not user.is_authenticated:
        return None
    return (
        Assignment.objects.select_related(
            "comparison__study", "comparison__task", "comparison__candidate_a", "comparison__candidate_b"
        )
        .filter(pk=assignment_id, annotator=user)
        .first()
    )


def annotator_progress(*, study: Study, user: AbstractBaseUser) -> Progress:
    if study.kind == StudyKind.ANSWER:
        from .answers_selectors import answer_progress

        p = answer_progress(study=study, user=user)
        return Progress(mine_done=p.mine_done, quota=p.quota, study_done=p.study_done, study_needed=p.study_needed)
    mine = Assignment.objects.filter(comparison__study=study, annotator=user, state=AssignmentState.SUBMITTED).count()
    regular = Comparison.objects.filter(study=study, is_gold=False).aggregate(
        n=Count("pk"), judged=Sum(Least("judgments_count", study.overlap))
    )
    return Progress(
        mine_done=mine,
        quota=study.quota_per_annotator,
        study_done=regular["judged"] or 0,
        study_needed=regular["n"] * study.overlap,
    )


def studies_with_progress(*, user: AbstractBaseUser) -> list[tuple[Study, Progress]]:
    return [(study, annotator_progress(study=study, user=user)) for study in studies_open_for_annotator(user=user)]


def gold_accuracy(*, study: Study, annotator: AbstractBaseUser) -> tuple[int, int]:
    """(correct, judged) over the gold comparisons this annotator judged in this study."""
    rows = Judgment.objects.filter(comparison__study=study, comparison__is_gold=True, annotator=annotator).values_list(
        "choice", "comparison__gold_choice"
    )
    return sum(choice == gold for choice, gold in rows), len(rows)


@dataclass(frozen=True)
class BlindedResponse:
    number: int
    questions: list[str]
    outline_html: str


@dataclass(frozen=True)
class BlindedComparison:
    """Everything an annotator may see of a comparison. Deliberately holds no system or candidate id."""

    kind: str
    task_text: str
    hidden_facts: list[str]
    responses: tuple[BlindedResponse, BlindedResponse]

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "task": self.task_text,
            "hidden_facts": self.hidden_facts,
            "responses": [
                {"label": f"Response {r.number}", "number": r.number}
                | ({"questions": r.questions} if self.kind == StudyKind.QUESTIONS else {"outline_html": r.outline_html})
                for r in self.responses
            ],
        }


def blinded_comparison(*, comparison: Comparison, left: str) -> BlindedComparison:
    study, task = comparison.study, comparison.task
    first, second = comparison.candidate_a, comparison.candidate_b
    if left == "b":
        first, second = second, first
    is_questions = study.kind == StudyKind.QUESTIONS

    def response(number: int, candidate: Candidate) -> BlindedResponse:
        return BlindedResponse(
            number=number,
            questions=[str(q) for q in candidate.questions or []] if is_questions else [],
            outline_html="" if is_questions else markdown_to_safe_html(candidate.outline),
        )

    return BlindedComparison(
        kind=study.kind,
        task_text=task.masked_task if is_questions else task.full_task,
        hidden_facts=[str(f) for f in task.hidden_facts or []] if is_questions and study.show_hidden_context else [],
        responses=(response(1, first), response(2, second)),
    )


def study_instructions_html(*, study: Study) -> str:
    return markdown_to_safe_html(study.instructions)


@dataclass
class AnnotatorRow:
    annotator_id: int
    username: str
    judgments: int = 0
    skipped: int = 0
    expired: int = 0
    gold_judged: int = 0
    gold_correct: int = 0
    seconds: list[float] = field(default_factory=list)
    response_1: int = 0
    ties: int = 0
    flagged: bool = False
    flag_reason: str = ""

    @property
    def gold_accuracy(self) -> float | None:
        return self.gold_correct / self.gold_judged if self.gold_judged else None

    @property
    def median_seconds(self) -> float | None:
        return statistics.median(self.seconds) if self.seconds else None

    @property
    def response_1_share(self) -> float | None:
        return self.response_1 / self.judgments if self.judgments else None

    @property
    def tie_share(self) -> float | None:
        return self.ties / self.judgments if self.judgments else None


def annotator_quality_table(*, study: Study) -> list[AnnotatorRow]:
    """Per annotator: counts, gold accuracy, median seconds, share of "Response 1" (position habit) and of ties."""
    rows: dict[int, AnnotatorRow] = {}

    def row(user_id: int, username: str) -> AnnotatorRow:
        return rows.setdefault(user_id, AnnotatorRow(annotator_id=user_id, username=username))

    judgments = Judgment.objects.filter(comparison__study=study).values_list(
        "annotator_id",
        "annotator__username",
        "choice",
        "assignment__left",
        "seconds",
        "comparison__is_gold",
        "comparison__gold_choice",
    )
    for user_id, username, choice, left, seconds, is_gold, gold_choice in judgments.iterator(chunk_size=2000):
        r = row(user_id, username)
        r.judgments += 1
        r.seconds.append(seconds)
        r.response_1 += choice == left
        r.ties += choice == Choice.TIE
        if is_gold:
            r.gold_judged += 1
            r.gold_correct += choice == gold_choice
    ended = Assignment.objects.filter(
        comparison__study=study, state__in=[AssignmentState.SKIPPED, AssignmentState.EXPIRED]
    ).values_list("annotator_id", "annotator__username", "state")
    for user_id, username, state in ended:
        r = row(user_id, username)
        if state == AssignmentState.SKIPPED:
            r.skipped += 1
        else:
            r.expired += 1
    for user_id, username, reason in AnnotatorFlag.objects.filter(study=study).values_list(
        "annotator_id", "annotator__username", "reason"
    ):
        r = row(user_id, username)
        r.flagged, r.flag_reason = True, reason
    return sorted(rows.values(), key=lambda r: r.username)


def flagged_content(*, study: Study) -> QuerySet[Assignment]:
    return (
        Assignment.objects.filter(comparison__study=study)
        .exclude(flag_reason="")
        .select_related("annotator", "comparison__task")
        .order_by("-updated_at")
    )


def study_preferred_candidates(*, study: Study, split: str | None = None) -> list[Candidate]:
    """The candidates human judges preferred, one per comparison that a strict majority decided (gold
    comparisons left out), optionally only on tasks of one split; each candidate once."""
    comparisons = (
        Comparison.objects.filter(study=study, is_gold=False)
        .annotate(
            a=Count("judgments", filter=Q(judgments__choice="a")),
            b=Count("judgments", filter=Q(judgments__choice="b")),
            tie=Count("judgments", filter=Q(judgments__choice="tie")),
        )
        .filter(Q(a__gt=0) | Q(b__gt=0))
        .order_by("id")
    )
    if split:
        comparisons = comparisons.filter(task__split=split)
    winners: dict[int, None] = {}
    for cid_a, cid_b, a, b, tie in comparisons.values_list("candidate_a_id", "candidate_b_id", "a", "b", "tie"):
        side = majority_side(a, b, tie)
        if side in ("a", "b"):
            winners[cid_a if side == "a" else cid_b] = None
    by_id = Candidate.objects.select_related("task").in_bulk(list(winners))
    return [by_id[i] for i in winners if i in by_id]
