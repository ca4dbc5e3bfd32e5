"""Server time to serve an answer item and to store an answer set with many annotators at once, on PostgreSQL,
beside the pairwise judging engine (the baseline, benchmarks/judging_latency.py) in the same run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/pig_bench python manage.py migrate
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/pig_bench python benchmarks/answer_latency.py

Builds an answer study of --items items (two systems' candidates, three questions each, overlap 1, gold rate
10%), then --annotators threads, each with its own connection, spread over --processes processes (like web
workers), loop: serve (lease + the intent card the page shows) → (think) → store the answer set. p50/p95/p99
of the time inside the service calls are printed; target p95 < 30 ms. Everything it creates is deleted.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
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

from annotation import answers, answers_selectors  # noqa: E402
from annotation.models import (  # noqa: E402
    AnswerAssignment,
    AnswerItem,
    Candidate,
    HumanTranscript,
    Study,
    StudyKind,
    StudyStatus,
    Task,
)
from benchmarks import judging_latency as baseline  # noqa: E402
from training.models import Backend, System  # noqa: E402

QUESTIONS = ["What is the budget?", "Who is the audience?", "When is it due?"]
FACTS = ["The budget is $5,000.", "The audience is first-year students."]


def build(*, items: int, annotators: int, tag: str) -> tuple[Study, list]:
    User = get_user_model()
    with transaction.atomic():
        systems = [System.objects.create(name=f"abench-{tag}-{i}", backend=Backend.STATIC) for i in range(2)]
        tasks = Task.objects.bulk_create(
            [
                Task(
                    key=f"abench-{tag}-{i}",
                    domain="bench",
                    full_task=f"Full task {i}. The budget is $5,000.",
                    masked_task=f"Task {i}",
                    hidden_facts=FACTS,
                )
                for i in range(items // 2)
            ],
            batch_size=2000,
        )
        Candidate.objects.bulk_create(
            [Candidate(task=t, system=s, questions=QUESTIONS, outline="# Plan") for t in tasks for s in systems],
            batch_size=2000,
        )
        study = Study.objects.create(
            slug=f"abench-{tag}", title="Benchmark", kind=StudyKind.ANSWER, overlap=1, status=StudyStatus.OPEN,
            gold_rate=0.1,
        )  # fmt: skip
        study.systems.add(*systems)
        users = [User.objects.create(username=f"abench-{tag}-{i}") for i in range(annotators)]
        study.annotators.add(*users)
    answers.study_build_answer_items(study=study)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE annotation_answeritem, annotation_answerassignment, annotation_humantranscript")
    return study, users


def cleanup(study: Study, users: list, tag: str) -> None:
    with transaction.atomic():
        HumanTranscript.objects.filter(item__study=study).delete()
        AnswerAssignment.objects.filter(item__study=study).delete()
        AnswerItem.objects.filter(study=study).delete()
        study.delete()
        Candidate.objects.filter(task__key__startswith=f"abench-{tag}-").delete()
        Task.objects.filter(key__startswith=f"abench-{tag}-").delete()
        System.objects.filter(name__startswith=f"abench-{tag}-").delete()
        get_user_model().objects.filter(pk__in=[u.pk for u in users]).delete()


def run_annotators(study_id: int, user_ids: list[int], sets: int, think_ms: float) -> tuple[list, list]:
    """One web-server-like process: its share of the annotators, one thread (and connection) each."""
    study = Study.objects.get(pk=study_id)
    users = list(get_user_model().objects.filter(pk__in=user_ids))
    connection.close()
    serve_ms: list[float] = []
    store_ms: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(users))

    def think(rng: random.Random) -> None:
        if think_ms:
            time.sleep(rng.uniform(0, 2 * think_ms) / 1000)

    def play(user) -> None:
        rng = random.Random(user.pk)
        mine_serve, mine_store = [], []
        try:
            connection.ensure_connection()  # a web worker keeps its connection (CONN_MAX_AGE)
            barrier.wait()
            think(rng)
            for _ in range(sets):
                started = time.perf_counter()
                assignment = answers.answer_assignment_next(study=study, annotator=user)
                if assignment is not None:
                    mine = answers_selectors.answer_assignment_for_annotator(user=user, assignment_id=assignment.pk)
                    answers_selectors.intent_card(item=mine.item, study=study)
                mine_serve.append((time.perf_counter() - started) * 1000)
                if assignment is None:
                    break
                think(rng)
                sent = [{"text": "It is $5,000."}, {"doesnt_say": True}, {"text": "Next Friday."}]
                sent += [{"doesnt_say": True}] * (len(mine.item.questions) - len(sent))  # gold: one more
                started = time.perf_counter()
                answers.answer_set_submit(assignment_id=assignment.pk, annotator=user, answers=sent)
                mine_store.append((time.perf_counter() - started) * 1000)
                think(rng)
        finally:
            connection.close()
            with lock:
                serve_ms.extend(mine_serve)
                store_ms.extend(mine_store)

    threads = [threading.Thread(target=play, args=(u,)) for u in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return serve_ms, store_ms


def _pool(fn, study_id: int, users: list, per: int, args: argparse.Namespace) -> tuple[list, list, float]:
    connection.close()  # children open their own
    chunks = [[u.pk for u in users[i :: args.processes]] for i in range(args.processes)]
    t0 = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(args.processes) as pool:
        results = pool.starmap(fn, [(study_id, chunk, per, args.think_ms) for chunk in chunks])
    return [ms for r in results for ms in r[0]], [ms for r in results for ms in r[1]], time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--annotators", type=int, default=50)
    parser.add_argument("--sets", type=int, default=20, help="answer sets (and judgments) per annotator")
    parser.add_argument("--processes", type=int, default=4, help="server processes sharing the annotators")
    parser.add_argument("--think-ms", type=float, default=500, help="mean think time between calls (uniform 0..2x)")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("Set DATABASE_URL to a PostgreSQL database (this measures row-lock behaviour).")
    print(
        f"{args.annotators} concurrent annotators over {args.processes} processes, think time "
        f"{args.think_ms:.0f} ms mean, {args.sets} per annotator"
    )

    tag = uuid.uuid4().hex[:8]
    study, users = baseline.build(comparisons=args.items, annotators=args.annotators, tag=tag)
    try:
        next_ms, submit_ms, wall = _pool(baseline.run_annotators, study.pk, users, args.sets, args)
        print(f"baseline: pairwise judging, {args.items} comparisons ({wall:.1f} s)")
        print(f"  next-comparison   {baseline.percentiles(next_ms)}")
        print(f"  judgment submit   {baseline.percentiles(submit_ms)}")
    finally:
        baseline.cleanup(study, users, tag)

    tag = uuid.uuid4().hex[:8]
    study, users = build(items=args.items, annotators=args.annotators, tag=tag)
    try:
        serve_ms, store_ms, wall = _pool(run_annotators, study.pk, users, args.sets, args)
        stored = HumanTranscript.objects.filter(item__study=study).count()
        print(f"answer study: {args.items} items, {stored} answer sets stored in {wall:.1f} s")
        print(f"  serve item+card   {baseline.percentiles(serve_ms)}")
        print(f"  store answer set  {baseline.percentiles(store_ms)}")
    finally:
        cleanup(study, users, tag)


if __name__ == "__main__":
    main()
