"""Writes for the human-evaluation side: imports and study building. Atomic and idempotent."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from training.facts import fact_from_raw
from training.models import Backend, System

from .blinding import compile_patterns, find_self_identification
from .jsonl import LineError, ValidationFailed, parse_jsonl, require_text, require_text_list, validate_rows
from .models import (
    AnnotatorFlag,
    Assignment,
    AssignmentState,
    Candidate,
    Choice,
    Comparison,
    Judgment,
    Split,
    Study,
    StudyStatus,
    Task,
)

__all__ = [
    "AssignmentFinished",
    "AssignmentNotFound",
    "ImportReport",
    "InvalidJudgment",
    "JudgingError",
    "NotAllowed",
    "SlotTaken",
    "StudyClosed",
    "ValidationFailed",
    "assignment_flag",
    "assignment_next_for_annotator",
    "assignment_skip",
    "assignments_expire",
    "candidate_blinding_flags",
    "candidates_clear_blinding_flags",
    "candidates_import",
    "judgment_submit",
    "study_build_comparisons",
    "tasks_import",
]


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged"


def _clean_task(obj: dict[str, Any]) -> dict[str, Any]:
    split = require_text(obj, "split", optional=True) or Split.TEST
    if split not in Split.values:
        raise ValueError(f"field 'split' must be one of {', '.join(Split.values)}, got '{split}'")
    key = require_text(obj, "key")
    if len(key) > 200:
        raise ValueError("field 'key' is longer than 200 characters")
    return {
        "key": key,
        "domain": require_text(obj, "domain")[:100],
        "full_task": require_text(obj, "full_task"),
        "masked_task": require_text(obj, "masked_task"),
        **_hidden_facts(obj),
        "reference_outline": require_text(obj, "reference_outline", optional=True) or "",
        "split": split,
    }


def _hidden_facts(obj: dict[str, Any]) -> dict[str, list[Any]]:
    """`hidden_facts` items are sentences (slot and value derived) or {"text"?, "slot", "value"} objects."""
    items = obj.get("hidden_facts")
    if items is None:
        raise ValueError("missing field 'hidden_facts'")
    if not isinstance(items, list) or not items:
        raise ValueError("field 'hidden_facts' must be a non-empty list of strings or {slot, value} objects")
    facts = []
    for i, item in enumerate(items, start=1):
        if isinstance(item, str):
            if not item.strip():
                raise ValueError(f"hidden fact {i} is an empty string")
        elif isinstance(item, dict):
            unknown = set(item) - {"text", "slot", "value"}
            if unknown:
                raise ValueError(f"hidden fact {i} has unknown field(s) {', '.join(sorted(unknown))}")
            for name in ("slot", "value"):
                if not isinstance(item.get(name), str) or not item[name].strip():
                    raise ValueError(f"hidden fact {i} needs a non-empty string '{name}'")
            if item.get("text") is not None and not isinstance(item["text"], str):
                raise ValueError(f"hidden fact {i}: 'text' must be a string")
        else:
            raise ValueError(f"hidden fact {i} must be a string or a {{slot, value}} object, got {type(item).__name__}")
        facts.append(fact_from_raw(item))
    return {"hidden_facts": [f.text for f in facts], "fact_slots": [{"slot": f.slot, "value": f.value} for f in facts]}


def _upsert(model: type, lookup: dict[str, Any], values: dict[str, Any], report: ImportReport) -> None:
    obj = model.objects.filter(**lookup).first()
    if obj is None:
        model.objects.create(**lookup, **values)
        report.created += 1
    elif any(getattr(obj, k) != v for k, v in values.items()):
        model.objects.filter(pk=obj.pk).update(**values)
        report.updated += 1
    else:
        report.unchanged += 1


def tasks_import(*, lines: Iterable[bytes]) -> ImportReport:
    """Import tasks from JSON Lines. All or nothing: any bad line raises ValidationFailed and
    nothing is written. Re-importing updates changed tasks in place (matched by key)."""
    rows, errors = parse_jsonl(lines)
    cleaned = validate_rows(rows, errors, _clean_task)
    if errors:
        raise ValidationFailed(errors)
    report = ImportReport()
    with transaction.atomic():
        for _, row in cleaned:
            key = row.pop("key")
            _upsert(Task, {"key": key}, row, report)
    return report


def _clean_candidate(obj: dict[str, Any]) -> dict[str, Any]:
    questions = require_text_list(obj, "questions")
    answers = require_text_list(obj, "answers", allow_empty=True)
    if answers and len(answers) != len(questions):
        raise ValueError(f"{len(answers)} answers for {len(questions)} questions")
    metadata = obj.get("metadata", {})
    if not isinstance(metadata, dict):
        raise ValueError("field 'metadata' must be an object")
    return {
        "key": require_text(obj, "key"),
        "questions": questions,
        "answers": answers,
        "outline": require_text(obj, "outline"),
        "metadata": metadata,
    }


def candidates_import(*, lines: Iterable[bytes], system_name: str) -> ImportReport:
    """Import one system's outputs (a `static` system is created if the name is new).

    All or nothing. Re-importing updates changed candidates in place, except candidates that
    annotators have already judged: those are refused, since changing them would silently change
    what the judgments mean."""
    rows, errors = parse_jsonl(lines)
    cleaned = validate_rows(rows, errors, _clean_candidate)
    tasks = Task.objects.in_bulk([row["key"] for _, row in cleaned], field_name="key")
    system = System.objects.filter(name=system_name).first()
    judged: set[int] = set()
    if system is not None:
        judged = set(
            Comparison.objects.filter(judgments__isnull=False)
            .filter(candidate_a__system=system)
            .values_list("task_id", flat=True)
        ) | set(
            Comparison.objects.filter(judgments__isnull=False)
            .filter(candidate_b__system=system)
            .values_list("task_id", flat=True)
        )
    existing = {c.task_id: c for c in Candidate.objects.filter(system=system)} if system is not None else {}
    for number, row in cleaned:
        task = tasks.get(row["key"])
        if task is None:
            errors.append(LineError(number, f"unknown task key '{row['key']}'"))
            continue
        current = existing.get(task.pk)
        if task.pk in judged and current is not None and _candidate_values(row) != _candidate_values(current):
            errors.append(LineError(number, f"candidate for '{row['key']}' is already judged; refusing to change it"))
    errors.sort(key=lambda e: e.line)
    if errors:
        raise ValidationFailed(errors)
    report = ImportReport()
    with transaction.atomic():
        if system is None:
            system = System.objects.create(name=system_name, backend=Backend.STATIC)
            report.notes.append(f"created static system '{system_name}'")
        for _, row in cleaned:
            task = tasks[row.pop("key")]
            row["blinding_flags"] = candidate_blinding_flags(
                questions=row["questions"], answers=row["answers"], outline=row["outline"]
            )
            _upsert(Candidate, {"task": task, "system": system}, row, report)
        flagged = sum(1 for _, row in cleaned if row["blinding_flags"])
        if flagged:
            report.notes.append(f"{flagged} candidate(s) name a system or vendor; studies leave them out")
    return report


def candidate_blinding_flags(*, questions: list[str], answers: list[str], outline: str) -> list[str]:
    """Snippets in which a candidate names a system or vendor; configurable via PIG_BLINDING_PATTERNS."""
    names = System.objects.values_list("name", flat=True)
    patterns = compile_patterns(names, getattr(settings, "PIG_BLINDING_PATTERNS", ()))
    return find_self_identification([*questions, *answers, outline], patterns)


def candidates_clear_blinding_flags(*, candidate_ids: Iterable[int]) -> int:
    """A researcher reviewed the flagged text and found it harmless (e.g. "Claude Monet")."""
    return Candidate.objects.filter(pk__in=list(candidate_ids)).exclude(blinding_flags=[]).update(blinding_flags=[])


def _candidate_values(row: Any) -> tuple:
    get = row.get if isinstance(row, dict) else lambda k: getattr(row, k)
    return (get("questions"), get("answers"), get("outline"))


def study_build_comparisons(*, study: Study, task_ids: Iterable[int] | None = None) -> int:
    """Pair the candidates of the study's systems on each task: every pair of systems, or each
    system against the study's reference. Candidates with blinding flags are left out. Idempotent;
    returns how many comparisons were created."""
    systems = list(study.systems.order_by("name"))
    if study.reference_system_id:
        ref = study.reference_system
        pairs = [(s, ref) for s in systems if s.pk != ref.pk]
    else:
        pairs = list(itertools.combinations(systems, 2))
    system_ids = {s.pk for pair in pairs for s in pair}
    # Candidates that name a system or vendor would unblind annotators: leave them out.
    candidates = Candidate.objects.filter(system_id__in=system_ids, blinding_flags=[])
    if task_ids is not None:
        candidates = candidates.filter(task_id__in=list(task_ids))
    by_task: dict[int, dict[int, Candidate]] = {}
    for cand in candidates.only("id", "task_id", "system_id"):
        by_task.setdefault(cand.task_id, {})[cand.system_id] = cand
    to_create = []
    for task_id, by_system in by_task.items():
        for sys_a, sys_b in pairs:
            cand_a, cand_b = by_system.get(sys_a.pk), by_system.get(sys_b.pk)
            if cand_a and cand_b:
                to_create.append(Comparison(study=study, task_id=task_id, candidate_a=cand_a, candidate_b=cand_b))
    with transaction.atomic():
        before = study.comparisons.count()
        # The unique constraint makes a rebuild a no-op for pairs that exist already.
        Comparison.objects.bulk_create(to_create, ignore_conflicts=True, batch_size=500)
        return study.comparisons.count() - before


# --- Judging: the assignment engine and judgments -------------------------------------------------
#
# Row locks are FOR NO KEY UPDATE (`no_key=True`): inserting a judgment or assignment takes a
# FOR KEY SHARE lock on the rows it references, and a plain FOR UPDATE would make every such
# insert queue behind whoever is claiming the same comparison.
#
# Annotators speak in screen positions ("1" = left = Response 1, "2" = right, "tie"); the database
# speaks in candidates (a/b/tie). The translation happens here, through the assignment's stored
# `left`, so nothing annotator-facing ever needs to know which candidate is which.

SCREEN_CHOICES = ("1", "2", "tie")
# Gold judgments an annotator must have made before the accuracy check may flag them: one slip on
# the first gold item should not exclude anyone.
GOLD_MIN_JUDGED = 3
# How many of the least-covered comparisons are considered for the random tie-break. Reading a
# short window through the (study, slots_taken) index keeps the next-comparison query flat as
# studies grow; within the window the pick is random, so concurrent annotators rarely collide.
NEXT_WINDOW = 64


class JudgingError(Exception):
    """A refusal the annotator should read. `code` is stable: the JSON API returns it."""

    code = "invalid"

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra


class NotAllowed(JudgingError):
    code = "forbidden"


class AssignmentNotFound(JudgingError):
    code = "not_found"


class StudyClosed(JudgingError):
    code = "study_closed"


class AssignmentFinished(JudgingError):
    code = "assignment_finished"


class SlotTaken(JudgingError):
    code = "slot_taken"


class InvalidJudgment(JudgingError):
    code = "invalid"

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()), errors=errors)
        self.errors = errors


def _may_judge(study: Study, user: AbstractBaseUser) -> bool:
    from .selectors import studies_visible_to

    return studies_visible_to(user=user).filter(pk=study.pk).exists()


def assignments_expire(*, study: Study | None = None, now: datetime | None = None) -> int:
    """Return the slots of leases that ran out to the pool. Idempotent; safe to run concurrently."""
    now = now or timezone.now()
    live = Assignment.objects.filter(state=AssignmentState.ACTIVE, lease_expires_at__lte=now)
    if study is not None:
        live = live.filter(comparison__study=study)
    # The common case (nothing expired) costs one indexed read and no transaction.
    if not live.exists():
        return 0
    with transaction.atomic():
        # skip_locked: a lease whose owner is submitting right now is left to that submit.
        locked = live.select_for_update(skip_locked=True, no_key=True, of=("self",))
        expired = list(locked.values_list("pk", "comparison_id"))
        if not expired:
            return 0
        Assignment.objects.filter(pk__in=[pk for pk, _ in expired]).update(
            state=AssignmentState.EXPIRED, updated_at=now
        )
        per_comparison = Counter(comparison_id for _, comparison_id in expired)
        # One lock order (ascending id) for every reclaimer, so two of them never deadlock.
        for comparison_id in sorted(per_comparison):
            Comparison.objects.filter(pk=comparison_id).update(
                slots_taken=F("slots_taken") - per_comparison[comparison_id]
            )
    return len(expired)


def _claim_comparison(
    *, study: Study, annotator: AbstractBaseUser, gold: bool, rng: random.Random
) -> Comparison | None:
    """Lock one comparison for this annotator: fewest judgments + live leases first, random among equals.

    Rows another transaction is claiming are skipped (not waited for), and PostgreSQL re-checks the
    `slots_taken < overlap` condition on the locked row, so two annotators can never both take the
    last slot of a comparison."""
    seen = Assignment.objects.filter(comparison=OuterRef("pk"), annotator=annotator)
    pool = Comparison.objects.filter(study=study, is_gold=gold).filter(~Exists(seen))
    if not gold:
        pool = pool.filter(slots_taken__lt=study.overlap)
    for _ in range(3):
        window = list(pool.order_by("slots_taken").values_list("pk", "slots_taken")[:NEXT_WINDOW])
        if not window:
            return None
        lowest = window[0][1]
        ids = [pk for pk, taken in window if taken == lowest]
        rng.shuffle(ids)
        # Try a few in random order one by one (usually the first succeeds), then the rest of the
        # window at once; either way only one row is locked, the others stay free for other annotators.
        for pk in ids[:4]:
            comparison = pool.filter(pk=pk).select_for_update(skip_locked=True, no_key=True, of=("self",)).first()
            if comparison is not None:
                return comparison
        rest = pool.filter(pk__in=ids[4:]).order_by().select_for_update(skip_locked=True, no_key=True, of=("self",))
        comparison = rest.first() if ids[4:] else None
        if comparison is not None:
            return comparison
    # Everything in the window was being claimed by others; fall back to a full (slower) scan.
    return pool.order_by("slots_taken", "?").select_for_update(skip_locked=True, no_key=True, of=("self",)).first()


def _quota_reached(study: Study, annotator: AbstractBaseUser) -> bool:
    if study.quota_per_annotator is None:
        return False
    done = Assignment.objects.filter(
        comparison__study=study, annotator=annotator, state=AssignmentState.SUBMITTED
    ).count()
    return done >= study.quota_per_annotator


def assignment_next_for_annotator(
    *,
    study: Study,
    annotator: AbstractBaseUser,
    now: datetime | None = None,
    rng: random.Random | None = None,
) -> Assignment | None:
    """The annotator's live assignment in this study, or a new one; None when nothing is left for them.

    A new assignment leases one slot of the chosen comparison for `study.lease_minutes` and fixes
    which candidate is shown on the left, at random."""
    now = now or timezone.now()
    rng = rng or random.SystemRandom()
    if study.status != StudyStatus.OPEN:
        raise StudyClosed("This study is closed: no more judgments are being collected.")
    if not _may_judge(study, annotator):
        raise NotAllowed("You are not an annotator of this study.")
    assignments_expire(study=study, now=now)
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # A lease need not survive a database crash (the annotator would just be served again), so
            # don't wait for the WAL flush here. Judgments keep full durability, and since WAL is
            # written in order, any judgment that is durable has its lease durable before it.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        # Serialise one annotator's requests (two tabs, a double-click) so they share one lease.
        list(get_user_model().objects.select_for_update(no_key=True).filter(pk=annotator.pk).values_list("pk"))
        live = (
            Assignment.objects.filter(
                annotator=annotator,
                comparison__study=study,
                state=AssignmentState.ACTIVE,
                lease_expires_at__gt=now,
            )
            .order_by("created_at")
            .first()
        )
        if live is not None:
            return live
        if _quota_reached(study, annotator):
            return None
        comparison = None
        # Gold items are interleaved with real work, never served once real work has run out.
        if rng.random() < study.gold_rate and _has_regular_work(study, annotator):
            comparison = _claim_comparison(study=study, annotator=annotator, gold=True, rng=rng)
        if comparison is None:
            comparison = _claim_comparison(study=study, annotator=annotator, gold=False, rng=rng)
        if comparison is None:
            return None
        assignment = Assignment.objects.create(
            comparison=comparison,
            annotator=annotator,
            left=rng.choice(["a", "b"]),
            state=AssignmentState.ACTIVE,
            lease_expires_at=now + timedelta(minutes=study.lease_minutes),
        )
        Comparison.objects.filter(pk=comparison.pk).update(slots_taken=F("slots_taken") + 1)
    return assignment


def _has_regular_work(study: Study, annotator: AbstractBaseUser) -> bool:
    seen = Assignment.objects.filter(comparison=OuterRef("pk"), annotator=annotator)
    return (
        Comparison.objects.filter(study=study, is_gold=False, slots_taken__lt=study.overlap)
        .filter(~Exists(seen))
        .exists()
    )


def _to_candidate(screen_choice: str, left: str) -> str:
    if screen_choice == "tie":
        return Choice.TIE
    on_left = screen_choice == "1"
    return left if on_left else ("b" if left == "a" else "a")


def _unstorable_text(text: str) -> bool:
    # A form field may carry %00 and a JSON body \u0000 or a lone surrogate; PostgreSQL refuses both,
    # which would surface as a 500 instead of a message.
    if "\x00" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


UNSTORABLE = "contains a character that cannot be stored (NUL or invalid Unicode)."


def _clean_judgment(
    *,
    study: Study,
    left: str,
    choice: Any,
    criteria: Any,
    rationale: Any,
    active_seconds: Any,
) -> dict[str, Any]:
    errors: dict[str, str] = {}
    if choice not in SCREEN_CHOICES:
        errors["choice"] = "Choose Response 1, Response 2 or Tie."
    criteria = criteria or {}
    cleaned_criteria: dict[str, str] = {}
    if not isinstance(criteria, dict):
        errors["criteria"] = "Criteria must map each criterion to 1, 2 or tie."
        criteria = {}
    unknown = set(criteria) - set(study.criteria or [])
    if unknown:
        errors["criteria"] = f"Unknown criteria: {', '.join(sorted(map(str, unknown)))}."
    for criterion in study.criteria or []:
        value = criteria.get(criterion)
        if value not in SCREEN_CHOICES:
            errors.setdefault("criteria", f"Choose 1, 2 or tie for “{criterion}”.")
        else:
            cleaned_criteria[criterion] = _to_candidate(value, left)
    if not isinstance(rationale, str):
        errors["rationale"] = "The rationale must be text."
        rationale = ""
    rationale = rationale.strip()
    if _unstorable_text(rationale):
        errors["rationale"] = f"The rationale {UNSTORABLE}"
        rationale = ""
    # A configured minimum length makes the rationale required too.
    if (study.rationale_required or study.rationale_min_length) and not rationale:
        errors["rationale"] = "Please say briefly why."
    elif rationale and len(rationale) < study.rationale_min_length:
        errors["rationale"] = (
            f"Please write at least {study.rationale_min_length} characters ({len(rationale)} so far)."
        )
    if active_seconds in ("", None):
        active_seconds = None
    else:
        try:
            active_seconds = float(active_seconds)
        except (TypeError, ValueError):
            active_seconds = math.nan
        if not math.isfinite(active_seconds) or active_seconds < 0:
            errors["active_seconds"] = "active_seconds must be a non-negative number."
    if errors:
        raise InvalidJudgment(errors)
    return {
        "choice": _to_candidate(choice, left),
        "criteria": cleaned_criteria,
        "rationale": rationale,
        "active_seconds": active_seconds,
    }


def _locked_own_assignment(assignment_id: int, annotator: AbstractBaseUser) -> Assignment:
    # Someone else's assignment is reported exactly like a missing one: ids reveal nothing.
    assignment = (
        Assignment.objects.select_for_update(no_key=True, of=("self",))
        .select_related("comparison__study")
        .filter(pk=assignment_id, annotator=annotator)
        .first()
    )
    if assignment is None:
        raise AssignmentNotFound("No such comparison for you.")
    return assignment


def judgment_submit(
    *,
    assignment_id: int,
    annotator: AbstractBaseUser,
    choice: str,
    criteria: dict[str, str] | None = None,
    rationale: str = "",
    active_seconds: float | None = None,
    now: datetime | None = None,
) -> tuple[Judgment, bool]:
    """Store the annotator's verdict; returns (judgment, created).

    Idempotent: a retried POST, a double-click or a second tab gets the first judgment back with
    created=False. After the lease ran out the judgment is still taken if the comparison has a free
    slot; otherwise SlotTaken is raised and nothing is written."""
    now = now or timezone.now()
    with transaction.atomic():
        # The row lock makes concurrent submits of one assignment queue up behind each other.
        assignment = _locked_own_assignment(assignment_id, annotator)
        if assignment.state == AssignmentState.SUBMITTED:
            return Judgment.objects.get(assignment=assignment), False
        comparison = assignment.comparison
        study = comparison.study
        if study.status != StudyStatus.OPEN:
            raise StudyClosed("This study was closed, so your judgment could not be recorded.")
        if assignment.state == AssignmentState.SKIPPED:
            raise AssignmentFinished("You skipped this comparison earlier.")
        cleaned = _clean_judgment(
            study=study,
            left=assignment.left,
            choice=choice,
            criteria=criteria,
            rationale=rationale,
            active_seconds=active_seconds,
        )
        retake_slot = assignment.state == AssignmentState.EXPIRED
        if retake_slot:
            # The lease ran out and its slot went back to the pool: take it again only if still free.
            current = Comparison.objects.select_for_update(no_key=True).get(pk=comparison.pk)
            if not comparison.is_gold and current.slots_taken >= study.overlap:
                raise SlotTaken(
                    "Your time on this comparison ran out and other annotators have since completed it, "
                    "so this judgment was not recorded.",
                    rationale=cleaned["rationale"],
                )
        seconds = max(0.0, (now - assignment.created_at).total_seconds())
        active = cleaned["active_seconds"]
        judgment = Judgment.objects.create(
            assignment=assignment,
            comparison=comparison,
            annotator=annotator,
            choice=cleaned["choice"],
            criteria=cleaned["criteria"],
            rationale=cleaned["rationale"],
            seconds=seconds,
            # The client's clock cannot have seen more of the page than the server served.
            active_seconds=None if active is None else min(active, seconds),
        )
        Assignment.objects.filter(pk=assignment.pk).update(state=AssignmentState.SUBMITTED, updated_at=now)
        Comparison.objects.filter(pk=comparison.pk).update(
            judgments_count=F("judgments_count") + 1, slots_taken=F("slots_taken") + int(retake_slot)
        )
        if comparison.is_gold:
            _gold_accuracy_check(study=study, annotator=annotator)
    return judgment, True


def _gold_accuracy_check(*, study: Study, annotator: AbstractBaseUser) -> None:
    from .selectors import gold_accuracy

    correct, judged = gold_accuracy(study=study, annotator=annotator)
    if judged >= GOLD_MIN_JUDGED and correct / judged < study.gold_min_accuracy:
        AnnotatorFlag.objects.get_or_create(
            study=study,
            annotator=annotator,
            defaults={
                "reason": f"Gold accuracy {correct}/{judged} ({correct / judged:.0%}) is below "
                f"{study.gold_min_accuracy:.0%}: judgments excluded from statistics until a researcher decides."
            },
        )


def _clean_reason(reason: Any) -> str:
    if reason is None:
        return ""
    if not isinstance(reason, str):
        raise InvalidJudgment({"reason": "The reason must be text."})
    if _unstorable_text(reason):
        raise InvalidJudgment({"reason": f"The reason {UNSTORABLE}"})
    return reason.strip()


def assignment_skip(*, assignment_id: int, annotator: AbstractBaseUser, reason: str) -> Assignment:
    """Give the comparison back without judging it; the annotator is never served it again."""
    reason = _clean_reason(reason)
    if not reason:
        raise InvalidJudgment({"reason": "Please give a reason for skipping."})
    with transaction.atomic():
        assignment = _locked_own_assignment(assignment_id, annotator)
        if assignment.state == AssignmentState.SKIPPED:
            return assignment
        if assignment.state == AssignmentState.SUBMITTED:
            raise AssignmentFinished("You already judged this comparison.")
        held_slot = assignment.state == AssignmentState.ACTIVE
        Assignment.objects.filter(pk=assignment.pk).update(
            state=AssignmentState.SKIPPED, skip_reason=reason[:2000], updated_at=timezone.now()
        )
        if held_slot:
            Comparison.objects.filter(pk=assignment.comparison_id).update(slots_taken=F("slots_taken") - 1)
        assignment.refresh_from_db()
    return assignment


def assignment_flag(*, assignment_id: int, annotator: AbstractBaseUser, reason: str) -> Assignment:
    """Report the content of a comparison (broken, offensive, leaking a system's identity) to researchers.

    Flagging does not end the assignment: the annotator may still judge or skip it."""
    reason = _clean_reason(reason)
    if not reason:
        raise InvalidJudgment({"reason": "Please say what is wrong with this content."})
    with transaction.atomic():
        assignment = _locked_own_assignment(assignment_id, annotator)
        Assignment.objects.filter(pk=assignment.pk).update(flag_reason=reason[:2000], updated_at=timezone.now())
        assignment.refresh_from_db()
    return assignment
