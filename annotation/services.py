"""Writes for the human-evaluation side: imports and study building. Atomic and idempotent."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction

from training.models import Backend, System

from .blinding import compile_patterns, find_self_identification
from .jsonl import LineError, ValidationFailed, parse_jsonl, require_text, require_text_list, validate_rows
from .models import Candidate, Comparison, Split, Study, Task

__all__ = [
    "ImportReport",
    "ValidationFailed",
    "candidate_blinding_flags",
    "candidates_clear_blinding_flags",
    "candidates_import",
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
        "hidden_facts": require_text_list(obj, "hidden_facts"),
        "reference_outline": require_text(obj, "reference_outline", optional=True) or "",
        "split": split,
    }


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
