"""The `answer` study: people play the user and answer one system's questions from an intent card.

Writes (services) of this study kind; its reads are in answers_selectors.py. The assignment engine
mirrors the pairwise one in services.py (leases, overlap, quota, skip, flag, gold): one lock order,
`skip_locked`, the overlap re-checked on the locked row. Answer sets are stored atomically and
idempotently, like judgments, as HumanTranscript rows: the candidate's sibling with human answers."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from training.matching import LexicalMatcher

from .models import (
    AnnotatorFlag,
    AnswerAssignment,
    AnswerItem,
    AssignmentState,
    Candidate,
    HumanTranscript,
    Study,
    StudyKind,
    StudyStatus,
    Task,
)
from .selectors import studies_visible_to
from .services import (
    GOLD_MIN_JUDGED,
    UNSTORABLE,
    AssignmentFinished,
    AssignmentNotFound,
    InvalidJudgment,
    NotAllowed,
    SlotTaken,
    StudyClosed,
    _clean_reason,
    _unstorable_text,
)

NEXT_WINDOW = 64
MAX_ANSWER_CHARS = 2000
# Questions nobody's intent card answers. A gold item inserts one of them; the right answer is "the card
# doesn't say". Each is checked against the task's request and facts before use (see _gold_question).
GOLD_QUESTIONS = (
    "What is the name of your childhood pet?",
    "Which colour would you like the cover page to be printed in?",
    "What was the weather like on your last birthday?",
    "Which font did your primary school use on its signs?",
    "How many siblings does your dentist have?",
)


# --- building -------------------------------------------------------------------------------------


def _gold_question(task: Task, rng: random.Random) -> str | None:
    matcher = LexicalMatcher(threshold=0.34)
    units = [*(task.hidden_facts or []), task.full_task]
    options = [q for q in GOLD_QUESTIONS if not any(matcher.match([q], units)[0])]
    return rng.choice(options) if options else None


def study_build_answer_items(
    *, study: Study, task_ids: Iterable[int] | None = None, rng: random.Random | None = None
) -> int:
    """One item per candidate of the study's systems (on the study's split, or all tasks), plus gold items at
    the study's gold rate. Candidates that name a system, or that asked nothing, are left out. Idempotent:
    returns how many items were created."""
    if study.kind != StudyKind.ANSWER:
        raise ValidationError(f"study '{study.slug}' is not an answer study")
    rng = rng or random.Random(study.pk)
    candidates = (
        Candidate.objects.filter(system__in=study.systems.all(), blinding_flags=[])
        .exclude(questions=[])
        .select_related("task")
        .order_by("task_id", "system_id")
    )
    if study.task_split:
        candidates = candidates.filter(task__split=study.task_split)
    if task_ids is not None:
        candidates = candidates.filter(task_id__in=list(task_ids))
    candidates = list(candidates)
    with transaction.atomic():
        before = study.answer_items.count()
        AnswerItem.objects.bulk_create(
            [
                AnswerItem(study=study, task_id=c.task_id, candidate=c, questions=[str(q) for q in c.questions])
                for c in candidates
            ],
            ignore_conflicts=True,  # the (study, candidate, is_gold) constraint makes a rebuild a no-op
            batch_size=500,
        )
        have_gold = set(study.answer_items.filter(is_gold=True).values_list("candidate_id", flat=True))
        want_gold = round(study.gold_rate * len(candidates)) if study.gold_rate > 0 and candidates else 0
        gold = []
        for cand in rng.sample(candidates, len(candidates)):
            if len(have_gold) + len(gold) >= want_gold:
                break
            question = _gold_question(cand.task, rng) if cand.pk not in have_gold else None
            if question is None:
                continue
            questions = [str(q) for q in cand.questions]
            at = rng.randrange(len(questions) + 1)
            questions.insert(at, question)
            gold.append(
                AnswerItem(
                    study=study,
                    task_id=cand.task_id,
                    candidate=cand,
                    questions=questions,
                    is_gold=True,
                    gold_question=at,
                )
            )
        AnswerItem.objects.bulk_create(gold, ignore_conflicts=True)
        return study.answer_items.count() - before


def study_answer_create(
    *,
    slug: str,
    title: str,
    systems: Iterable[Any],
    split: str = "",
    overlap: int = 1,
    show_masked_task: bool = False,
    instructions: str = "",
    annotators: Iterable[AbstractBaseUser] = (),
    gold_rate: float = 0.1,
    status: str = StudyStatus.DRAFT,
) -> Study:
    """Create (or update by slug) an answer study and build its items from the systems' candidates."""
    study = Study.objects.filter(slug=slug).first() or Study(slug=slug)
    study.title, study.kind, study.overlap = title, StudyKind.ANSWER, overlap
    study.task_split, study.show_masked_task, study.gold_rate = split, show_masked_task, gold_rate
    study.instructions = instructions or study.instructions
    study.status = status
    study.full_clean()
    with transaction.atomic():
        study.save()
        study.systems.add(*systems)
        study.annotators.add(*annotators)
        study_build_answer_items(study=study)
    return study


# --- the assignment engine ------------------------------------------------------------------------


def answer_assignments_expire(*, study: Study | None = None, now: datetime | None = None) -> int:
    """Return the slots of leases that ran out to the pool. Idempotent; safe to run concurrently."""
    now = now or timezone.now()
    live = AnswerAssignment.objects.filter(state=AssignmentState.ACTIVE, lease_expires_at__lte=now)
    if study is not None:
        live = live.filter(item__study=study)
    if not live.exists():
        return 0
    with transaction.atomic():
        # skip_locked: a lease whose owner is submitting right now is left to that submit.
        locked = live.select_for_update(skip_locked=True, no_key=True, of=("self",))
        expired = list(locked.values_list("pk", "item_id"))
        if not expired:
            return 0
        AnswerAssignment.objects.filter(pk__in=[pk for pk, _ in expired]).update(
            state=AssignmentState.EXPIRED, updated_at=now
        )
        per_item = Counter(item_id for _, item_id in expired)
        # One lock order (ascending id) for every reclaimer, so two of them never deadlock.
        for item_id in sorted(per_item):
            AnswerItem.objects.filter(pk=item_id).update(slots_taken=F("slots_taken") - per_item[item_id])
    return len(expired)


def _claim_item(*, study: Study, annotator: AbstractBaseUser, gold: bool, rng: random.Random) -> AnswerItem | None:
    """Lock one item for this annotator: fewest answer sets + live leases first, random among equals.

    Rows another transaction is claiming are skipped, and PostgreSQL re-checks `slots_taken < overlap` on
    the locked row, so two annotators can never both take the last slot of an item."""
    seen = AnswerAssignment.objects.filter(item=OuterRef("pk"), annotator=annotator)
    pool = AnswerItem.objects.filter(study=study, is_gold=gold).filter(~Exists(seen))
    if not gold:
        pool = pool.filter(slots_taken__lt=study.overlap)
    for _ in range(3):
        window = list(pool.order_by("slots_taken").values_list("pk", "slots_taken")[:NEXT_WINDOW])
        if not window:
            return None
        ids = [pk for pk, taken in window if taken == window[0][1]]
        rng.shuffle(ids)
        for pk in ids[:4]:
            item = pool.filter(pk=pk).select_for_update(skip_locked=True, no_key=True, of=("self",)).first()
            if item is not None:
                return item
        if ids[4:]:
            rest = pool.filter(pk__in=ids[4:]).order_by().select_for_update(skip_locked=True, no_key=True, of=("self",))
            item = rest.first()
            if item is not None:
                return item
    return pool.order_by("slots_taken", "?").select_for_update(skip_locked=True, no_key=True, of=("self",)).first()


def _quota_reached(study: Study, annotator: AbstractBaseUser) -> bool:
    if study.quota_per_annotator is None:
        return False
    done = AnswerAssignment.objects.filter(
        item__study=study, annotator=annotator, state=AssignmentState.SUBMITTED
    ).count()
    return done >= study.quota_per_annotator


def _has_regular_work(study: Study, annotator: AbstractBaseUser) -> bool:
    seen = AnswerAssignment.objects.filter(item=OuterRef("pk"), annotator=annotator)
    return (
        AnswerItem.objects.filter(study=study, is_gold=False, slots_taken__lt=study.overlap)
        .filter(~Exists(seen))
        .exists()
    )


def answer_assignment_next(
    *,
    study: Study,
    annotator: AbstractBaseUser,
    now: datetime | None = None,
    rng: random.Random | None = None,
) -> AnswerAssignment | None:
    """The annotator's live assignment in this answer study, or a new lease; None when nothing is left."""
    now = now or timezone.now()
    rng = rng or random.SystemRandom()
    if study.status != StudyStatus.OPEN:
        raise StudyClosed("This study is closed: no more answers are being collected.")
    if not studies_visible_to(user=annotator).filter(pk=study.pk).exists():
        raise NotAllowed("You are not an annotator of this study.")
    answer_assignments_expire(study=study, now=now)
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # A lease need not survive a crash (the item would just be served again): skip the WAL flush.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        # Serialise one annotator's requests (two tabs, a double-click) so they share one lease.
        list(get_user_model().objects.select_for_update(no_key=True).filter(pk=annotator.pk).values_list("pk"))
        live = (
            AnswerAssignment.objects.filter(
                annotator=annotator, item__study=study, state=AssignmentState.ACTIVE, lease_expires_at__gt=now
            )
            .order_by("created_at")
            .first()
        )
        if live is not None:
            return live
        if _quota_reached(study, annotator):
            return None
        item = None
        # Gold items are interleaved with real work, never served once real work has run out.
        if rng.random() < study.gold_rate and _has_regular_work(study, annotator):
            item = _claim_item(study=study, annotator=annotator, gold=True, rng=rng)
        if item is None:
            item = _claim_item(study=study, annotator=annotator, gold=False, rng=rng)
        if item is None:
            return None
        assignment = AnswerAssignment.objects.create(
            item=item,
            annotator=annotator,
            state=AssignmentState.ACTIVE,
            lease_expires_at=now + timedelta(minutes=study.lease_minutes),
        )
        AnswerItem.objects.filter(pk=item.pk).update(slots_taken=F("slots_taken") + 1)
    return assignment


# --- storing an answer set ------------------------------------------------------------------------


def _clean_answers(questions: list[str], answers: Any) -> list[dict[str, Any]]:
    if not isinstance(answers, list) or len(answers) != len(questions):
        raise InvalidJudgment({"answers": f"Answer all {len(questions)} questions."})
    errors: dict[str, str] = {}
    cleaned = []
    for i, raw in enumerate(answers):
        raw = raw if isinstance(raw, dict) else {}
        doesnt_say = raw.get("doesnt_say") in (True, "1", "true", "on")
        text = raw.get("text", "")
        if not isinstance(text, str):
            errors[f"answer-{i}"] = f"Answer {i + 1} must be text."
            continue
        # Browsers submit a textarea's line breaks as CRLF; store one newline convention.
        text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
        if doesnt_say:
            text = ""
        elif not text:
            errors[f"answer-{i}"] = f"Question {i + 1}: write an answer, or choose “The card doesn't say”."
        elif _unstorable_text(text):
            errors[f"answer-{i}"] = f"Answer {i + 1} {UNSTORABLE}"
        elif len(text) > MAX_ANSWER_CHARS:
            errors[f"answer-{i}"] = f"Answer {i + 1} is longer than {MAX_ANSWER_CHARS} characters: keep it brief."
        cleaned.append({"text": text, "doesnt_say": doesnt_say})
    if errors:
        raise InvalidJudgment(errors)
    return cleaned


def _clean_seconds(values: Any, n: int) -> list[float | None]:
    # Client-measured and advisory: anything malformed is dropped rather than refused.
    if not isinstance(values, list) or len(values) != n:
        return []
    out: list[float | None] = []
    for v in values:
        try:
            f = float(v)
        except (TypeError, ValueError):
            f = -1.0
        out.append(round(f, 2) if 0 <= f < 86400 else None)
    return out


def _locked_own(assignment_id: int, annotator: AbstractBaseUser) -> AnswerAssignment:
    # Someone else's assignment is reported exactly like a missing one: ids reveal nothing.
    assignment = (
        AnswerAssignment.objects.select_for_update(no_key=True, of=("self",))
        .select_related("item__study")
        .filter(pk=assignment_id, annotator=annotator)
        .first()
    )
    if assignment is None:
        raise AssignmentNotFound("No such item for you.")
    return assignment


def answer_set_submit(
    *,
    assignment_id: int,
    annotator: AbstractBaseUser,
    answers: list[dict[str, Any]],
    active_seconds: float | None = None,
    question_seconds: list[Any] | None = None,
    now: datetime | None = None,
) -> tuple[HumanTranscript, bool]:
    """Store the whole answer set at once; returns (transcript, created).

    Every question needs text or "the card doesn't say". Idempotent: a retried POST or a second tab gets
    the first transcript back with created=False. After the lease ran out the set is still taken if the
    item has a free slot; otherwise SlotTaken is raised and nothing is written."""
    now = now or timezone.now()
    with transaction.atomic():
        # The row lock makes concurrent submits of one assignment queue up behind each other.
        assignment = _locked_own(assignment_id, annotator)
        if assignment.state == AssignmentState.SUBMITTED:
            return HumanTranscript.objects.get(assignment=assignment), False
        item = assignment.item
        study = item.study
        if study.status != StudyStatus.OPEN:
            raise StudyClosed("This study was closed, so your answers could not be recorded.")
        if assignment.state == AssignmentState.SKIPPED:
            raise AssignmentFinished("You skipped this item earlier.")
        cleaned = _clean_answers(list(item.questions), answers)
        active: float | None = None
        if active_seconds not in (None, ""):
            try:
                active = float(active_seconds)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                active = None
            if active is not None and not 0 <= active < 10**7:
                active = None
        retake_slot = assignment.state == AssignmentState.EXPIRED
        if retake_slot:
            current = AnswerItem.objects.select_for_update(no_key=True).get(pk=item.pk)
            if not item.is_gold and current.slots_taken >= study.overlap:
                raise SlotTaken(
                    "Your time on this item ran out and others have since answered it, so your answers were "
                    "not recorded."
                )
        seconds = max(0.0, (now - assignment.created_at).total_seconds())
        transcript = HumanTranscript(
            assignment=assignment,
            item=item,
            candidate_id=item.candidate_id,
            annotator=annotator,
            questions=list(item.questions),
            answers=cleaned,
            seconds=seconds,
            active_seconds=None if active is None else min(active, seconds),
            question_seconds=_clean_seconds(question_seconds, len(cleaned)),
        )
        transcript.full_clean(exclude=["assignment", "item", "candidate", "annotator"])
        transcript.save()
        AnswerAssignment.objects.filter(pk=assignment.pk).update(state=AssignmentState.SUBMITTED, updated_at=now)
        AnswerItem.objects.filter(pk=item.pk).update(
            answers_count=F("answers_count") + 1, slots_taken=F("slots_taken") + int(retake_slot)
        )
        if item.is_gold:
            _gold_check(study=study, annotator=annotator)
    return transcript, True


def _gold_check(*, study: Study, annotator: AbstractBaseUser) -> None:
    from .answers_selectors import answer_gold_accuracy

    correct, judged = answer_gold_accuracy(study=study, annotator=annotator)
    if judged >= GOLD_MIN_JUDGED and correct / judged < study.gold_min_accuracy:
        AnnotatorFlag.objects.get_or_create(
            study=study,
            annotator=annotator,
            defaults={
                "reason": f"Gold accuracy {correct}/{judged} ({correct / judged:.0%}) is below "
                f"{study.gold_min_accuracy:.0%}: answers excluded from the fidelity report until a researcher decides."
            },
        )


def answer_assignment_skip(*, assignment_id: int, annotator: AbstractBaseUser, reason: str) -> AnswerAssignment:
    """Give the item back unanswered; the annotator is never served it again."""
    reason = _clean_reason(reason)
    if not reason:
        raise InvalidJudgment({"reason": "Please give a reason for skipping."})
    with transaction.atomic():
        assignment = _locked_own(assignment_id, annotator)
        if assignment.state == AssignmentState.SKIPPED:
            return assignment
        if assignment.state == AssignmentState.SUBMITTED:
            raise AssignmentFinished("You already answered this item.")
        held_slot = assignment.state == AssignmentState.ACTIVE
        AnswerAssignment.objects.filter(pk=assignment.pk).update(
            state=AssignmentState.SKIPPED, skip_reason=reason[:2000], updated_at=timezone.now()
        )
        if held_slot:
            AnswerItem.objects.filter(pk=assignment.item_id).update(slots_taken=F("slots_taken") - 1)
        assignment.refresh_from_db()
    return assignment


def answer_assignment_flag(*, assignment_id: int, annotator: AbstractBaseUser, reason: str) -> AnswerAssignment:
    """Report an item's content to researchers; the annotator may still answer or skip it."""
    reason = _clean_reason(reason)
    if not reason:
        raise InvalidJudgment({"reason": "Please say what is wrong with this content."})
    with transaction.atomic():
        assignment = _locked_own(assignment_id, annotator)
        AnswerAssignment.objects.filter(pk=assignment.pk).update(flag_reason=reason[:2000], updated_at=timezone.now())
        assignment.refresh_from_db()
    return assignment
