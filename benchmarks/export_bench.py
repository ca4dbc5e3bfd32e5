"""Benchmark 2: export 1,000,000 judgments of one study to CSV and to Parquet, against PostgreSQL.

Fills the database named by DATABASE_URL once (study `bench-export-1m`, loaded with COPY; reused on
later runs), then runs each export in a child process and prints its wall time and peak RSS.
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/pig_stats PYTHONPATH=. python benchmarks/export_bench.py
"""

from __future__ import annotations

import itertools
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pigplatform.settings")
os.environ.setdefault("PIG_TESTING", "1")

import django

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from annotation.models import Assignment, Candidate, Comparison, Judgment, Study, Task  # noqa: E402
from training.models import System  # noqa: E402

N = 1_000_000
SLUG = "bench-export-1m"
SYSTEMS = ["gpt-4o", "llama-3-8b", "o3-mini", "ours", "qwen-2.5-7b"]
PAIRS = list(itertools.combinations(range(5), 2))
OVERLAP = 3


def _next_id(model: type) -> int:
    with connection.cursor() as cur:
        cur.execute(f"SELECT COALESCE(MAX(id), 0) + 1 FROM {model._meta.db_table}")  # noqa: S608
        return cur.fetchone()[0]


def _copy(model: type, columns: list[str], rows) -> None:
    with (
        connection.cursor() as cur,
        cur.copy(
            f"COPY {model._meta.db_table} ({', '.join(connection.ops.quote_name(c) for c in columns)}) FROM STDIN"
        ) as copy,
    ):
        for row in rows:
            copy.write_row(row)


def _reset_sequence(model: type) -> None:
    table = model._meta.db_table
    with connection.cursor() as cur:
        cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))")  # noqa: S608


def fill() -> Study:
    study = Study.objects.filter(slug=SLUG).first()
    if study and Judgment.objects.filter(comparison__study=study).count() >= N:
        return study
    if connection.vendor != "postgresql":
        sys.exit("Set DATABASE_URL to a PostgreSQL database.")
    print("Loading 1,000,000 judgments (once)…", flush=True)
    started = time.perf_counter()
    now = timezone.now()
    comparisons = -(-N // OVERLAP)
    tasks = -(-comparisons // len(PAIRS))
    with transaction.atomic():
        Study.objects.filter(slug=SLUG).delete()
        study = Study.objects.create(slug=SLUG, title="Export benchmark", kind="outline", overlap=OVERLAP)
        systems = [System.objects.get_or_create(name=f"bench-{s}")[0] for s in SYSTEMS]
        User = get_user_model()
        users = [User.objects.get_or_create(username=f"bench-annotator-{i}")[0] for i in range(300)]
        task0, cand0, comp0 = _next_id(Task), _next_id(Candidate), _next_id(Comparison)
        asg0, jud0 = _next_id(Assignment), _next_id(Judgment)
        _copy(
            Task,
            [
                "id",
                "key",
                "domain",
                "full_task",
                "masked_task",
                "hidden_facts",
                "reference_outline",
                "split",
                "created_at",
                "updated_at",
            ],
            (
                (
                    task0 + t,
                    f"bench-{task0 + t}",
                    f"domain-{t % 9}",
                    f"Full task {t}",
                    f"Masked task {t}",
                    "[]",
                    "",
                    "test",
                    now,
                    now,
                )
                for t in range(tasks)
            ),
        )
        _copy(
            Candidate,
            [
                "id",
                "task_id",
                "system_id",
                "questions",
                "answers",
                "revealed",
                "outline",
                "metadata",
                "blinding_flags",
                "created_at",
            ],
            (
                (
                    cand0 + t * 5 + s,
                    task0 + t,
                    systems[s].pk,
                    '["What is the budget?"]',
                    "[]",
                    "[]",
                    f"Outline {t} by {SYSTEMS[s]}",
                    "{}",
                    "[]",
                    now,
                )
                for t in range(tasks)
                for s in range(5)
            ),
        )
        _copy(
            Comparison,
            [
                "id",
                "study_id",
                "task_id",
                "candidate_a_id",
                "candidate_b_id",
                "is_gold",
                "gold_choice",
                "slots_taken",
                "judgments_count",
                "created_at",
            ],
            (
                (
                    comp0 + c,
                    study.pk,
                    task0 + c // 10,
                    cand0 + (c // 10) * 5 + PAIRS[c % 10][0],
                    cand0 + (c // 10) * 5 + PAIRS[c % 10][1],
                    False,
                    "",
                    OVERLAP,
                    OVERLAP,
                    now,
                )
                for c in range(comparisons)
            ),
        )

        def judges(j: int) -> tuple[int, int]:
            c = j // OVERLAP
            return comp0 + c, users[(c * 7 + (j % OVERLAP) * 101) % len(users)].pk

        _copy(
            Assignment,
            [
                "id",
                "comparison_id",
                "annotator_id",
                "left",
                "state",
                "lease_expires_at",
                "skip_reason",
                "flag_reason",
                "created_at",
                "updated_at",
            ],
            ((asg0 + j, *judges(j), "ab"[j % 2], "submitted", now, "", "", now, now) for j in range(N)),
        )
        _copy(
            Judgment,
            [
                "id",
                "assignment_id",
                "comparison_id",
                "annotator_id",
                "choice",
                "criteria",
                "rationale",
                "seconds",
                "active_seconds",
                "created_at",
            ],
            (
                (
                    jud0 + j,
                    asg0 + j,
                    *judges(j),
                    ("a", "b", "tie", "a", "b")[j % 5],
                    '{"Relevance": "a"}',
                    "Asked about the budget, which mattered.",
                    12.5 + j % 40,
                    10.0,
                    now,
                )
                for j in range(N)
            ),
        )
        for model in (Task, Candidate, Comparison, Assignment, Judgment):
            _reset_sequence(model)
    with connection.cursor() as cur:
        cur.execute("ANALYZE")
    print(f"…loaded in {time.perf_counter() - started:.0f} s", flush=True)
    return study


def export(fmt: str, path: str) -> None:
    started = time.perf_counter()
    call_command("export_judgments", "--study", SLUG, "--format", fmt, "-o", path)
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"RESULT {fmt} {wall:.2f} {peak:.0f} {Path(path).stat().st_size / 1e6:.0f}")


def main() -> None:
    fill()
    print(f"Export benchmark: {N:,} judgments from PostgreSQL (targets: < 20 s, < 200 MB peak RSS)")
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("csv", "parquet"):
            out = subprocess.run(
                [sys.executable, __file__, fmt, str(Path(tmp) / f"j.{fmt}")], check=True, capture_output=True, text=True
            ).stdout
            _, _, wall, peak, size = next(line for line in out.splitlines() if line.startswith("RESULT")).split()
            print(f"  {fmt:8} wall {float(wall):6.1f} s   peak RSS {peak:>4} MB   file {size} MB")


if __name__ == "__main__":
    if len(sys.argv) > 2:
        export(sys.argv[1], sys.argv[2])
    else:
        main()
