"""Server time of next-comparison and submit with many annotators at once, on PostgreSQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/pig_bench python manage.py migrate
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/pig_bench python benchmarks/judging_latency.py

Builds a study of --comparisons comparisons (overlap 3, gold rate 10%), then --annotators threads,
each with its own database connection, spread over --processes processes (like web workers), loop:
next → (think) → submit. The time inside each service
call is recorded; p50/p95/p99 are printed. --think-ms 0 is a saturation test (every annotator
hammering at once); the default think time models fast annotators. Everything it creates is
deleted at the end.

    ... judging_latency.py --systems 4 --goal decide_all

runs the same load twice, without and then with a study goal (the engine reads the pair states and
serves open pairs; a thread recomputes the pair states every 2 s as the worker task would).
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import os
import random
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pigplatform.settings")
os.environ.setdefault("PIG_TESTING", "1")

import django

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from annotation import services  # noqa: E402
from annotation.models import (  # noqa: E402
    Assignment,
    Candidate,
    Comparison,
    Judgment,
    Study,
    StudyGoal,
    StudyPair,
    StudyStatus,
    Task,
)
from annotation.services_goal import study_pairs_sync, study_sequential_refresh  # noqa: E402
from training.models import Backend, System  # noqa: E402


def build(*, comparisons: int, annotators: int, tag: str, systems_n: int = 2, goal: str = "") -> tuple[Study, list]:
    """With more than two systems each task compares one pair, the pairs taking turns."""
    User = get_user_model()
    pairs = list(itertools.combinations(range(systems_n), 2))
    with transaction.atomic():
        systems = [System.objects.create(name=f"bench-{tag}-{i}", backend=Backend.STATIC) for i in range(systems_n)]
        tasks = Task.objects.bulk_create(
            [
                Task(key=f"bench-{tag}-{i}", domain="bench", full_task=f"Full task {i}", masked_task=f"Task {i}")
                for i in range(comparisons)
            ],
            batch_size=2000,
        )
        candidates = Candidate.objects.bulk_create(
            [
                Candidate(task=task, system=systems[s], questions=["What is the budget?"], outline="# Plan")
                for i, task in enumerate(tasks)
                for s in pairs[i % len(pairs)]
            ],
            batch_size=2000,
        )
        study = Study.objects.create(
            slug=f"bench-{tag}",
            title="Benchmark",
            kind="questions",
            overlap=3,
            status=StudyStatus.OPEN,
            gold_rate=0.1,
            goal=goal,
        )
        n_gold = comparisons // 20
        Comparison.objects.bulk_create(
            [
                Comparison(
                    study=study,
                    task=task,
                    candidate_a=candidates[2 * i],
                    candidate_b=candidates[2 * i + 1],
                    is_gold=i < n_gold,
                    gold_choice="a" if i < n_gold else "",
                )
                for i, task in enumerate(tasks)
            ],
            batch_size=2000,
        )
        users = [User.objects.create(username=f"bench-{tag}-{i}") for i in range(annotators)]
        study.annotators.add(*users)
        study_pairs_sync(study=study)  # what building comparisons through the service does
    with connection.cursor() as cursor:
        # Fresh planner statistics, as autovacuum would provide in a running deployment.
        cursor.execute("ANALYZE annotation_comparison, annotation_assignment, annotation_judgment")
    return study, users


def cleanup(study: Study, users: list, tag: str) -> None:
    with transaction.atomic():
        Judgment.objects.filter(comparison__study=study).delete()
        Assignment.objects.filter(comparison__study=study).delete()
        Comparison.objects.filter(study=study).delete()
        StudyPair.objects.filter(study=study).delete()
        study.delete()
        Candidate.objects.filter(task__key__startswith=f"bench-{tag}-").delete()
        Task.objects.filter(key__startswith=f"bench-{tag}-").delete()
        System.objects.filter(name__startswith=f"bench-{tag}-").delete()
        get_user_model().objects.filter(pk__in=[u.pk for u in users]).delete()


def run_annotators(study_id: int, user_ids: list[int], judgments: int, think_ms: float) -> tuple[list, list]:
    """One web-server-like process: its share of the annotators, one thread (and connection) each."""
    study = Study.objects.get(pk=study_id)
    users = list(get_user_model().objects.filter(pk__in=user_ids))
    connection.close()
    next_ms: list[float] = []
    submit_ms: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(users))

    def think(rng: random.Random) -> None:
        if think_ms:
            time.sleep(rng.uniform(0, 2 * think_ms) / 1000)

    def annotate(user) -> None:
        rng = random.Random(user.pk)
        mine_next, mine_submit = [], []
        try:
            # A web worker keeps its connection open (CONN_MAX_AGE); connecting is not part of a request.
            connection.ensure_connection()
            barrier.wait()
            think(rng)  # annotators do not all click in the same millisecond
            for _ in range(judgments):
                started = time.perf_counter()
                assignment = services.assignment_next_for_annotator(study=study, annotator=user)
                mine_next.append((time.perf_counter() - started) * 1000)
                if assignment is None:
                    break
                think(rng)
                started = time.perf_counter()
                services.judgment_submit(
                    assignment_id=assignment.pk, annotator=user, choice=rng.choice(["1", "2", "tie"])
                )
                mine_submit.append((time.perf_counter() - started) * 1000)
                think(rng)
        finally:
            connection.close()
            with lock:
                next_ms.extend(mine_next)
                submit_ms.extend(mine_submit)

    threads = [threading.Thread(target=annotate, args=(u,)) for u in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return next_ms, submit_ms


REFRESH_S = 2.0


def refresh_loop(study_id: int, stop: threading.Event, timings: list[float]) -> None:
    """What the `default.sequential_refresh` worker task does, at its debounce cadence, during the run."""
    try:
        while not stop.wait(REFRESH_S):
            started = time.perf_counter()
            study_sequential_refresh(study_id=study_id)
            timings.append((time.perf_counter() - started) * 1000)
    finally:
        connection.close()


def percentiles(samples: list[float]) -> str:
    if len(samples) < 2:
        return f"{len(samples)} sample(s): {', '.join(f'{s:.2f} ms' for s in samples) or '–'}"
    q = statistics.quantiles(samples, n=100, method="inclusive")
    return f"p50 {q[49]:6.2f} ms   p95 {q[94]:6.2f} ms   p99 {q[98]:6.2f} ms   (n={len(samples)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--comparisons", type=int, default=10_000)
    parser.add_argument("--annotators", type=int, default=50)
    parser.add_argument("--judgments", type=int, default=20, help="per annotator")
    parser.add_argument("--processes", type=int, default=4, help="server processes sharing the annotators")
    parser.add_argument("--think-ms", type=float, default=500, help="mean think time between calls (uniform 0..2x)")
    parser.add_argument("--systems", type=int, default=2, help="systems; each task compares one pair of them")
    parser.add_argument(
        "--goal",
        choices=[g for g in StudyGoal.values if g],
        help="give the study a goal: the engine serves open pairs, and a refresh (as the worker would) "
        f"recomputes the pair states every {REFRESH_S:.0f} s during the run",
    )
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("Set DATABASE_URL to a PostgreSQL database (this measures row-lock behaviour).")

    # With a goal, the same load runs first without one (today's engine), then with it: side by side.
    for goal in ["", args.goal] if args.goal else [""]:
        run_variant(args, goal)
        print()


def run_variant(args: argparse.Namespace, goal: str) -> None:
    tag = uuid.uuid4().hex[:8]
    t0 = time.perf_counter()
    study, users = build(
        comparisons=args.comparisons, annotators=args.annotators, tag=tag, systems_n=args.systems, goal=goal
    )
    print(
        f"built {args.comparisons} comparisons, {args.systems} systems, {args.annotators} annotators, "
        f"goal: {goal or 'none'} in {time.perf_counter() - t0:.1f} s"
    )
    connection.close()  # children open their own
    chunks = [[u.pk for u in users[i :: args.processes]] for i in range(args.processes)]
    t0 = time.perf_counter()
    refreshes: list[float] = []
    stop = threading.Event()
    refresher = threading.Thread(target=refresh_loop, args=(study.pk, stop, refreshes)) if goal else None
    with multiprocessing.get_context("fork").Pool(args.processes) as pool:
        if refresher:
            refresher.start()  # after the fork: the children never inherit a running thread
        results = pool.starmap(run_annotators, [(study.pk, chunk, args.judgments, args.think_ms) for chunk in chunks])
    stop.set()
    if refresher:
        refresher.join()
    wall = time.perf_counter() - t0
    next_ms = [ms for r in results for ms in r[0]]
    submit_ms = [ms for r in results for ms in r[1]]
    judged = Judgment.objects.filter(comparison__study=study).count()
    print(
        f"{args.annotators} concurrent annotators over {args.processes} processes, "
        f"think time {args.think_ms:.0f} ms mean: "
        f"{judged} judgments in {wall:.1f} s ({judged / wall:.0f}/s)"
    )
    print(f"next-comparison  {percentiles(next_ms)}")
    print(f"submit           {percentiles(submit_ms)}")
    if refresher:
        decided = StudyPair.objects.filter(study=study).exclude(decided="").count()
        print(f"pair-state refresh (the worker's job, every {REFRESH_S:.0f} s) {percentiles(refreshes)}")
        print(f"pairs decided by the end: {decided} of {StudyPair.objects.filter(study=study).count()}")
        # Judgments on a goal study also enqueue the debounced refresh; no worker runs here to take them.
        from pigplatform.celery import app

        app.control.purge()
    cleanup(study, users, tag)


if __name__ == "__main__":
    main()
