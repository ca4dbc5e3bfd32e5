"""Writes for studies with a goal: the per-pair anytime-valid state, the serving plan, self-closing.

The state of each pair (StudyPair) is recomputed from the judgments by a background refresh, debounced
per study, after judgments arrive; the next-comparison request only reads a handful of StudyPair rows.
The state may lag a few seconds behind: that is harmless, because a decision taken on older data is
still a decision on the past, and the anytime-valid figures hold whenever anyone acts on them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import partial

from django.core.cache import cache
from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from training.models import System

from .models import ClosedReason, Comparison, Decided, Judgment, Study, StudyGoal, StudyPair, StudyStatus

__all__ = [
    "ServingPlan",
    "study_close_automatically",
    "study_pairs_sync",
    "study_sequential_refresh",
    "study_sequential_refresh_soon",
    "study_serving_plan",
]

# At most one refresh per study per this many seconds; it runs this long after the first judgment that
# asked for it, so it includes everything that arrived meanwhile.
REFRESH_EVERY_S = 2


def _oriented(study: Study, first: System, second: System) -> tuple[System, System]:
    """The statistics' orientation: alphabetical, except that the reference system is always B."""
    if study.reference_system_id in (first.pk, second.pk):
        return (second, first) if first.pk == study.reference_system_id else (first, second)
    return (first, second) if first.name < second.name else (second, first)


def study_pairs_sync(*, study: Study) -> list[StudyPair]:
    """One StudyPair per pair of systems the study's comparisons compare, and every comparison linked to
    its pair. Idempotent; called when comparisons are built and before each refresh. Only comparisons not
    yet linked are looked at, so once a study is linked this costs one indexed read."""
    unlinked = Comparison.objects.filter(study=study, pair__isnull=True)
    if not unlinked.exists():
        return list(StudyPair.objects.filter(study=study).select_related("system_a", "system_b"))
    # Pairs come from the regular comparisons only: a pair seen only in gold items would join the family
    # (widening every interval) and, never judged, keep a "decide every pair" goal from ever being met.
    found = (
        unlinked.filter(is_gold=False)
        .values_list("candidate_a__system_id", "candidate_b__system_id")
        .distinct()
        .order_by()
    )
    unordered = {frozenset(ids) for ids in found}
    systems = System.objects.in_bulk({pk for ids in unordered for pk in ids})
    wanted = [_oriented(study, *(systems[pk] for pk in sorted(ids))) for ids in unordered]
    with transaction.atomic():
        # The unique constraint makes concurrent syncs safe: the second insert of a pair is a no-op.
        StudyPair.objects.bulk_create(
            [StudyPair(study=study, system_a=a, system_b=b) for a, b in wanted], ignore_conflicts=True
        )
        pairs = list(StudyPair.objects.filter(study=study).select_related("system_a", "system_b"))
        for pair in pairs:
            unlinked.filter(
                Q(candidate_a__system=pair.system_a, candidate_b__system=pair.system_b)
                | Q(candidate_a__system=pair.system_b, candidate_b__system=pair.system_a)
            ).update(pair=pair)
    return pairs


def study_close_automatically(*, study: Study, reason: str) -> bool:
    """Close an open study because its goal was met or its budget spent. Compare-and-set: a study a
    researcher closed or reopened meanwhile is left alone; returns whether this call closed it."""
    return (
        Study.objects.filter(pk=study.pk, status=StudyStatus.OPEN).update(
            status=StudyStatus.CLOSED, closed_reason=reason
        )
        == 1
    )


def _states(pairs: list[StudyPair], rows: dict[tuple[str, str], dict], index: dict[int, int]):  # type: ignore[no-untyped-def]
    from annotation.stats.goal import PairState

    states = []
    for pair in pairs:
        row = rows.get((pair.system_a.name, pair.system_b.name))
        states.append(
            PairState(
                system_a=index[pair.system_a_id],
                system_b=index[pair.system_b_id],
                n=row["n"] if row else 0,
                wins_a=row["wins_a"] if row else 0,
                wins_b=row["wins_b"] if row else 0,
                ties=row["ties"] if row else 0,
                cs_low=row["cs_low"] if row else 0.0,
                cs_high=row["cs_high"] if row else 1.0,
                decided=row["decided"] if row else None,
            )
        )
    return states


def study_sequential_refresh(*, study_id: int) -> Study | None:
    """Recompute every pair's confidence sequence, e-value and decision from the study's judgments (gold
    and flagged annotators left out, in arrival order), mark which pairs the goal still needs and how
    much one more judgment would help each, and close the study if its goal is met or budget spent."""
    from annotation.selectors_stats import study_judgments_table
    from annotation.stats import sequential_rows
    from annotation.stats.goal import goal_met, judgments_left, open_pairs, shrink_weight

    with transaction.atomic():
        # Serialises refreshes of one study, so an older computation never overwrites a newer one. No
        # other code path locks the study row, so judging is never held up by this.
        study = Study.objects.select_for_update(no_key=True).filter(pk=study_id).first()
        if study is None:
            return None
        pairs = study_pairs_sync(study=study)
        reference = study.reference_system.name if study.reference_system_id else None
        table = study_judgments_table(study=study, exclude_flagged=True)
        rows = {
            (r["system_a"], r["system_b"]): r
            for r in sequential_rows(table, reference=reference, family_size=len(pairs) or None)
        }
        index = {pk: i for i, pk in enumerate(sorted({p.system_a_id for p in pairs} | {p.system_b_id for p in pairs}))}
        states = _states(pairs, rows, index)
        goal, half_width = study.goal, study.goal_half_width
        needed = open_pairs(states, goal, half_width) if goal and states else [True] * len(states)
        now = timezone.now()
        for pair, state, is_open in zip(pairs, states, needed, strict=True):
            row = rows.get((pair.system_a.name, pair.system_b.name))
            pair.n, pair.wins_a, pair.wins_b, pair.ties = state.n, state.wins_a, state.wins_b, state.ties
            pair.cs_low, pair.cs_high = state.cs_low, state.cs_high
            pair.e_value = row["e_value"] if row else 1.0
            pair.decided = state.decided or Decided.OPEN
            pair.open = is_open
            pair.weight = shrink_weight(state)
            pair.judgments_left = (judgments_left(state, goal, half_width) if is_open else 0) if goal else None
            pair.refreshed_at = now
        StudyPair.objects.bulk_update(
            pairs,
            [
                "n",
                "wins_a",
                "wins_b",
                "ties",
                "cs_low",
                "cs_high",
                "e_value",
                "decided",
                "open",
                "weight",
                "judgments_left",
                "refreshed_at",
            ],
        )
        spent = Judgment.objects.filter(comparison__study=study, comparison__is_gold=False).count()
        if study.goal and states and goal_met(states, goal, half_width):
            study_close_automatically(study=study, reason=ClosedReason.GOAL_MET)
        elif study.budget is not None and spent >= study.budget:
            study_close_automatically(study=study, reason=ClosedReason.BUDGET_SPENT)
    study.refresh_from_db()
    return study


def _refresh_key(study_id: int) -> str:
    return f"pig:sequential-refresh:{study_id}"


def study_sequential_refresh_soon(*, study_id: int) -> None:
    """Ask a worker to refresh the study's pair states within REFRESH_EVERY_S (at most one pending)."""
    if not cache.add(_refresh_key(study_id), 1, REFRESH_EVERY_S):
        return
    from annotation.tasks import sequential_refresh
    from pigplatform.queueing import send_or_record

    send_or_record(
        partial(sequential_refresh.apply_async, args=(study_id,), countdown=REFRESH_EVERY_S),
        lambda _error: cache.delete(_refresh_key(study_id)),
    )


@dataclass(frozen=True)
class ServingPlan:
    pair_ids: list[int] | None  # pairs to try, in order; None: any comparison, as without a goal
    exhausted: bool  # nothing may be served: the budget is taken or no pair is open


def study_serving_plan(*, study: Study, rng: random.Random) -> ServingPlan:
    """Which pairs the next comparison may come from. Reads a few rows, writes nothing (except, once, the
    pairs of a study that was given a goal before any refresh ran)."""
    if study.budget is not None:
        # Judgments plus live leases: a lease handed out now would be judged later.
        taken = Comparison.objects.filter(study=study, is_gold=False).aggregate(total=Sum("slots_taken"))["total"]
        if (taken or 0) >= study.budget:
            return ServingPlan(pair_ids=[], exhausted=True)
    if study.goal == StudyGoal.NONE:
        return ServingPlan(pair_ids=None, exhausted=False)
    # Imported here, past the no-goal return: the stats package loads numpy and scipy (about 1.5 s), and a
    # module-level import made every process's first next-comparison request of every study wait for it
    # (judging_latency: p95 29 → 100 ms, p99 45 ms → 1.6 s).
    from annotation.stats.goal import pair_order

    pairs = list(StudyPair.objects.filter(study=study).order_by("pk").values_list("pk", "open", "weight"))
    if not pairs:
        pairs = [(p.pk, p.open, p.weight) for p in study_pairs_sync(study=study)]
    order = pair_order([o for _, o, _ in pairs], [w for _, _, w in pairs], study.drift_check_share, rng)
    return ServingPlan(pair_ids=[pairs[i][0] for i in order], exhausted=not order)
