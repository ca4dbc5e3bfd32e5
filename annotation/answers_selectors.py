"""Reads of the `answer` study that span relations: what an annotator sees (the intent card), progress,
per-annotator quality, and the transcripts the fidelity report and exports read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Exists, OuterRef, Q, QuerySet

from training.facts import facts_of

from .models import AnnotatorFlag, AnswerAssignment, AnswerItem, AssignmentState, HumanTranscript, Study
from .selectors import AnnotatorRow


def answer_gold_accuracy(*, study: Study, annotator: AbstractBaseUser) -> tuple[int, int]:
    """(correct, answered) over gold items: correct when the gold question got "the card doesn't say"."""
    rows = HumanTranscript.objects.filter(item__study=study, item__is_gold=True, annotator=annotator).values_list(
        "answers", "item__gold_question"
    )
    correct = sum(1 for answers, at in rows if at is not None and at < len(answers) and answers[at].get("doesnt_say"))
    return correct, len(rows)


@dataclass(frozen=True)
class CardFact:
    text: str
    slot: str  # "" unless the task stores the fact's slot


@dataclass(frozen=True)
class IntentCard:
    """Everything an annotator sees of an item. Deliberately holds no system, candidate or other person's answer."""

    request: str
    facts: list[CardFact]
    masked_request: str
    questions: list[str]


def answer_assignment_for_annotator(*, user: AbstractBaseUser, assignment_id: int) -> AnswerAssignment | None:
    if not user.is_authenticated:
        return None
    return (
        AnswerAssignment.objects.select_related("item__study", "item__task")
        .filter(pk=assignment_id, annotator=user)
        .first()
    )


def intent_card(*, item: AnswerItem, study: Study) -> IntentCard:
    task = item.task
    stored_slots = list(getattr(task, "fact_slots", None) or [])
    texts = [str(f) for f in task.hidden_facts or []]
    facts = [
        CardFact(text=fact.text, slot=fact.slot if i < len(stored_slots) else "")
        for i, fact in enumerate(facts_of(texts, stored_slots))
    ]
    return IntentCard(
        request=task.full_task,
        facts=facts,
        masked_request=task.masked_task if study.show_masked_task else "",
        questions=[str(q) for q in item.questions],
    )


@dataclass(frozen=True)
class AnswerProgress:
    mine_done: int
    quota: int | None
    study_done: int
    study_needed: int

    @property
    def mine_percent(self) -> int:
        return min(100, round(100 * self.mine_done / self.quota)) if self.quota else 0

    @property
    def study_percent(self) -> int:
        return min(100, round(100 * self.study_done / self.study_needed)) if self.study_needed else 0


def answer_progress(*, study: Study, user: AbstractBaseUser) -> AnswerProgress:
    from django.db.models import Sum
    from django.db.models.functions import Least

    mine = AnswerAssignment.objects.filter(item__study=study, annotator=user, state=AssignmentState.SUBMITTED).count()
    regular = AnswerItem.objects.filter(study=study, is_gold=False).aggregate(
        n=Count("pk"), done=Sum(Least("answers_count", study.overlap))
    )
    return AnswerProgress(
        mine_done=mine,
        quota=study.quota_per_annotator,
        study_done=regular["done"] or 0,
        study_needed=regular["n"] * study.overlap,
    )


def study_answer_progress(*, study: Study) -> dict[str, Any]:
    """Items, answer sets needed and stored, and per annotator: sets, gold accuracy, skipped, flagged."""
    items = AnswerItem.objects.filter(study=study, is_gold=False).count()
    done = HumanTranscript.objects.filter(item__study=study, item__is_gold=False).count()
    flagged = set(AnnotatorFlag.objects.filter(study=study).values_list("annotator_id", flat=True))
    people = (
        AnswerAssignment.objects.filter(item__study=study)
        .values("annotator_id", "annotator__username")
        .annotate(
            answered=Count("pk", filter=Q(state=AssignmentState.SUBMITTED)),
            skipped=Count("pk", filter=Q(state=AssignmentState.SKIPPED)),
        )
        .order_by("annotator__username")
    )
    rows = []
    for p in people:
        correct, gold = answer_gold_accuracy(study=study, annotator=get_user_model()(pk=p["annotator_id"]))
        rows.append(
            {
                "username": p["annotator__username"],
                "answered": p["answered"],
                "skipped": p["skipped"],
                "gold": f"{correct}/{gold}" if gold else "–",
                "flagged": p["annotator_id"] in flagged,
            }
        )
    needed = items * study.overlap
    return {
        "items": items,
        "needed": needed,
        "done": done,
        "percent": min(100, round(100 * done / needed)) if needed else 0,
        "annotators": rows,
    }


@dataclass
class AnswerAnnotatorRow(AnnotatorRow):
    """The per-annotator quality row of an answer study: `judgments` counts answer sets; no screen sides."""

    @property
    def response_1_share(self) -> float | None:
        return None


def answer_quality_table(*, study: Study) -> list[AnnotatorRow]:
    """Per annotator: answer sets, skipped and expired leases, gold accuracy, median seconds, flag."""
    rows: dict[int, AnnotatorRow] = {}

    def row(user_id: int, username: str) -> AnnotatorRow:
        return rows.setdefault(user_id, AnswerAnnotatorRow(annotator_id=user_id, username=username))

    sets = HumanTranscript.objects.filter(item__study=study).values_list(
        "annotator_id", "annotator__username", "seconds", "answers", "item__is_gold", "item__gold_question"
    )
    for user_id, username, seconds, given, is_gold, at in sets.iterator(chunk_size=2000):
        r = row(user_id, username)
        r.judgments += 1
        r.seconds.append(seconds)
        if is_gold:
            r.gold_judged += 1
            r.gold_correct += bool(at is not None and at < len(given) and given[at].get("doesnt_say"))
    ended = AnswerAssignment.objects.filter(
        item__study=study, state__in=[AssignmentState.SKIPPED, AssignmentState.EXPIRED]
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


def study_transcripts(*, study: Study, exclude_flagged: bool = True) -> QuerySet[HumanTranscript]:
    """Non-gold transcripts of the study (gold items carry an inserted question: not the system's)."""
    rows = HumanTranscript.objects.filter(item__study=study, item__is_gold=False)
    if exclude_flagged:
        flagged = AnnotatorFlag.objects.filter(study=study, annotator=OuterRef("annotator"))
        rows = rows.filter(~Exists(flagged))
    return rows.select_related("candidate__system", "candidate__task", "annotator").order_by("pk")


def answer_flagged_content(*, study: Study) -> QuerySet[AnswerAssignment]:
    return (
        AnswerAssignment.objects.filter(item__study=study)
        .exclude(flag_reason="")
        .select_related("annotator", "item__task")
        .order_by("-updated_at")
    )
