"""Reads for statistics, exports and the results page: the judgments of a study as a table.

Annotators appear under a pseudonym by default (a keyed hash of their id with SECRET_KEY: stable
across exports and studies, meaningless without the key); real usernames only when asked for.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db.models import Count, Max, Q, QuerySet

from .models import AnnotatorFlag, Comparison, Judgment, Study, StudyGoal, StudyPair

if TYPE_CHECKING:
    from annotation.stats import Table

# One row per judgment, in this order, for every export format; `item` is the comparison id.
EXPORT_COLUMNS = (
    "judgment_id",
    "study",
    "kind",
    "item",
    "task_key",
    "domain",
    "system_a",
    "system_b",
    "choice",
    "left",
    "annotator",
    "annotator_flagged",
    "is_gold",
    "criteria",
    "rationale",
    "seconds",
    "active_seconds",
    "created_at",
)

_FIELDS = (
    "id",
    "comparison_id",
    "comparison__task__key",
    "comparison__task__domain",
    "comparison__candidate_a__system__name",
    "comparison__candidate_b__system__name",
    "choice",
    "assignment__left",
    "annotator_id",
    "annotator__username",
    "comparison__is_gold",
    "criteria",
    "rationale",
    "seconds",
    "active_seconds",
    "created_at",
)


def annotator_pseudonym(user_id: int) -> str:
    digest = hmac.new(settings.SECRET_KEY.encode(), f"annotator:{user_id}".encode(), hashlib.sha256).hexdigest()
    return f"ann-{digest[:12]}"


def flagged_annotator_ids(*, study: Study) -> set[int]:
    return set(AnnotatorFlag.objects.filter(study=study).values_list("annotator_id", flat=True))


def study_annotator_names(*, study: Study, real_usernames: bool = False) -> dict[int, str]:
    """Annotator id -> name in exports, for everyone who judged in the study."""
    rows = (
        Judgment.objects.filter(comparison__study=study)
        .values_list("annotator_id", "annotator__username")
        .distinct()
        .order_by()
    )
    return {uid: (username if real_usernames else annotator_pseudonym(uid)) for uid, username in rows}


def study_judgments(*, study: Study) -> QuerySet[Judgment]:
    return Judgment.objects.filter(comparison__study=study).order_by("id")


def judgment_export_rows(
    *, study: Study, real_usernames: bool = False, chunk_size: int = 5000
) -> Iterator[dict[str, Any]]:
    """Every judgment of the study (gold included, marked), streamed from a server-side cursor."""
    flagged = flagged_annotator_ids(study=study)
    names: dict[int, str] = {}  # one hash per annotator, not per row
    for row in study_judgments(study=study).values_list(*_FIELDS).iterator(chunk_size=chunk_size):
        (jid, item, key, domain, sys_a, sys_b, choice, left, uid, username, gold, crit, rationale, sec, active, at) = (
            row
        )
        if uid not in names:
            names[uid] = username if real_usernames else annotator_pseudonym(uid)
        yield {
            "judgment_id": jid,
            "study": study.slug,
            "kind": study.kind,
            "item": item,
            "task_key": key,
            "domain": domain,
            "system_a": sys_a,
            "system_b": sys_b,
            "choice": choice,
            "left": sys_a if left == "a" else sys_b,
            "annotator": names[uid],
            "annotator_flagged": uid in flagged,
            "is_gold": gold,
            "criteria": crit,
            "rationale": rationale,
            "seconds": sec,
            "active_seconds": active,
            "created_at": at,
        }


def study_judgments_table(*, study: Study, exclude_flagged: bool = False, real_usernames: bool = False) -> Table:
    """The stats table of a study: non-gold judgments, choice relative to candidate_a / candidate_b."""
    qs = study_judgments(study=study).filter(comparison__is_gold=False)
    if exclude_flagged:
        qs = qs.exclude(annotator_id__in=flagged_annotator_ids(study=study))
    rows = list(
        qs.values_list(
            "comparison_id",
            "annotator_id",
            "annotator__username",
            "comparison__candidate_a__system__name",
            "comparison__candidate_b__system__name",
            "choice",
            "assignment__left",
            "comparison__task__domain",
            "seconds",
            "created_at",
        ).iterator(chunk_size=10000)
    )
    names: dict[int, str] = {}
    for _, uid, username, *_rest in rows:
        if uid not in names:
            names[uid] = username if real_usernames else annotator_pseudonym(uid)
    # Imported here: scipy costs ~60 MB of memory, and exports (which share this module) never need it.
    from annotation.stats import make_table

    return make_table(
        {
            "item": [r[0] for r in rows],
            "annotator": [names[r[1]] for r in rows],
            "system_a": [r[3] for r in rows],
            "system_b": [r[4] for r in rows],
            "choice": [r[5] for r in rows],
            "kind": [study.kind] * len(rows),
            "left": [r[3] if r[6] == "a" else r[4] for r in rows],
            "domain": [r[7] for r in rows],
            "seconds": [r[8] for r in rows],
            "created_at": [r[9] for r in rows],
        }
    )


def study_design_pair_count(*, study: Study) -> int:
    """How many system pairs the study's (non-gold) comparisons compare: the family that the sequential
    figures are corrected for, fixed by the design rather than by which pairs have judgments so far."""
    pairs = (
        Comparison.objects.filter(study=study, is_gold=False)
        .values_list("candidate_a__system_id", "candidate_b__system_id")
        .distinct()
        .order_by()
    )
    return len({frozenset(pair) for pair in pairs})


def study_stats_version(*, study: Study) -> str:
    """Changes whenever the figures could: a new judgment (ids only grow; judgments are immutable) or flag."""
    j = Judgment.objects.filter(comparison__study=study).aggregate(n=Count("id"), last=Max("id"))
    f = AnnotatorFlag.objects.filter(study=study).aggregate(n=Count("id"), last=Max("id"))
    return f"{j['n']}-{j['last']}-{f['n']}-{f['last']}"


def study_progress(*, study: Study) -> dict[str, Any]:
    comparisons = Comparison.objects.filter(study=study, is_gold=False).count()
    needed = comparisons * study.overlap
    done = Judgment.objects.filter(comparison__study=study, comparison__is_gold=False).count()
    flagged = flagged_annotator_ids(study=study)
    by_annotator = (
        Judgment.objects.filter(comparison__study=study)
        .values("annotator_id", "annotator__username")
        .annotate(judgments=Count("id"), gold=Count("id", filter=Q(comparison__is_gold=True)))
        .order_by("-judgments", "annotator__username")
    )
    return {
        "comparisons": comparisons,
        "needed": needed,
        "done": done,
        "percent": round(100 * done / needed, 1) if needed else 0.0,
        "annotators": [
            {
                "username": row["annotator__username"],
                "judgments": row["judgments"],
                "gold": row["gold"],
                "flagged": row["annotator_id"] in flagged,
            }
            for row in by_annotator
        ],
    }


def study_goal_summary(*, study: Study) -> dict[str, Any] | None:
    """The goal, judgments spent (of the budget), pairs decided and a rough estimate of judgments left,
    from the pair states of the last refresh; None for a study with neither goal nor budget."""
    if not study.goal and study.budget is None:
        return None
    pairs = list(StudyPair.objects.filter(study=study).select_related("system_a", "system_b"))
    spent = Judgment.objects.filter(comparison__study=study, comparison__is_gold=False).count()
    still_open = [p for p in pairs if p.open] if study.goal else []
    estimates = [p.judgments_left for p in still_open]
    known = sum(e for e in estimates if e is not None)
    left: int | None = known if None not in estimates else None
    if study.budget is not None:
        room = max(0, study.budget - spent)
        left = room if left is None and not study.goal else (min(left, room) if left is not None else None)
    # Open pairs whose comparisons all reached the overlap can never be served again: the goal would
    # never be met by waiting. The researcher has to add tasks or raise the overlap.
    with_room = set(
        Comparison.objects.filter(
            pair__in=[p.pk for p in still_open], is_gold=False, slots_taken__lt=study.overlap
        ).values_list("pair_id", flat=True)
    )
    starved = [f"{p.system_a.name} vs {p.system_b.name}" for p in still_open if p.pk not in with_room]
    goal = StudyGoal(study.goal).label if study.goal else "none (budget only)"
    if study.goal == StudyGoal.HALF_WIDTH:
        goal += f" (±{100 * (study.goal_half_width or 0):.1f} points)"
    return {
        "goal": goal,
        "budget": study.budget,
        "spent": spent,
        "pairs": len(pairs),
        "decided": sum(1 for p in pairs if p.decided),
        "open": len(still_open),
        "left": left,
        "left_partial": None in estimates,
        "left_known": known,
        "closed_reason": study.get_closed_reason_display() if study.closed_reason else "",
        "starved": starved,
        "refreshed_at": max((p.refreshed_at for p in pairs if p.refreshed_at), default=None),
    }
