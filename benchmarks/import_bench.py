"""Benchmark: import 10,000 tasks and 10,000 candidates (one system) on SQLite and on PostgreSQL, the bulk
import (annotation.services) side by side with the per-row path it replaced, in one run.

Each database runs in its own child process on a fresh database (a temporary SQLite file; a temporary
PostgreSQL database on the server DATABASE_URL points at, created and dropped here). Each measurement
starts from empty task/candidate tables and parses the same in-memory JSONL lines.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/pig PYTHONPATH=. python benchmarks/import_bench.py [--n 10000]

Targets (issue 10): 10,000 tasks < 2 s, 10,000 candidates < 3 s, on both databases.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------ the baseline: the per-row import
# A copy of the import services as they were before the bulk rewrite (commit 2f28134), kept here only so
# that both paths are timed in the same run: one SELECT (+ INSERT or UPDATE) per line, and the blinding
# patterns compiled (system names read) once per candidate.


def legacy_tasks_import(lines: list[bytes]) -> Any:
    from django.db import transaction

    from annotation.jsonl import ValidationFailed, parse_jsonl, validate_rows
    from annotation.models import Task
    from annotation.services import ImportReport, _clean_task

    rows, errors = parse_jsonl(lines)
    cleaned = validate_rows(rows, errors, _clean_task)
    if errors:
        raise ValidationFailed(errors)
    report = ImportReport()
    with transaction.atomic():
        for _, row in cleaned:
            key = row.pop("key")
            _legacy_upsert(Task, {"key": key}, row, report)
    return report


def legacy_candidates_import(lines: list[bytes], system_name: str) -> Any:
    from django.db import transaction

    from annotation.jsonl import ValidationFailed, parse_jsonl, validate_rows
    from annotation.models import Candidate, Task
    from annotation.services import ImportReport, _clean_candidate, candidate_blinding_flags
    from training.models import Backend, System

    rows, errors = parse_jsonl(lines)
    cleaned = validate_rows(rows, errors, _clean_candidate)
    tasks = Task.objects.in_bulk([row["key"] for _, row in cleaned], field_name="key")
    if errors:
        raise ValidationFailed(errors)
    report = ImportReport()
    with transaction.atomic():
        system = System.objects.filter(name=system_name).first() or System.objects.create(
            name=system_name, backend=Backend.STATIC
        )
        for _, row in cleaned:
            task = tasks[row.pop("key")]
            row["blinding_flags"] = candidate_blinding_flags(
                questions=row["questions"], answers=row["answers"], outline=row["outline"]
            )
            _legacy_upsert(Candidate, {"task": task, "system": system}, row, report)
    return report


def _legacy_upsert(model: type, lookup: dict[str, Any], values: dict[str, Any], report: Any) -> None:
    obj = model.objects.filter(**lookup).first()
    if obj is None:
        model.objects.create(**lookup, **values)
        report.created += 1
    elif any(getattr(obj, k) != v for k, v in values.items()):
        model.objects.filter(pk=obj.pk).update(**values)
        report.updated += 1
    else:
        report.unchanged += 1


# ------------------------------------------------------------------ data and timing (child process)


def task_lines(n: int) -> list[bytes]:
    domains = ["grant proposal", "legal memo", "travel itinerary", "lesson plan", "event plan"]
    return [
        json.dumps(
            {
                "key": f"bench-{i:06d}",
                "domain": domains[i % len(domains)],
                "full_task": f"Draft an outline for project {i}. The budget is ${1000 + i}. The deadline is in May.",
                "masked_task": f"Draft an outline for project {i}.",
                "hidden_facts": [f"The budget is ${1000 + i}.", "The deadline is in May."],
                "split": "train" if i % 4 else "test",
            }
        ).encode()
        + b"\n"
        for i in range(n)
    ]


def candidate_lines(n: int) -> list[bytes]:
    return [
        json.dumps(
            {
                "key": f"bench-{i:06d}",
                "questions": ["What is the budget?", "When is the deadline?", "Who will read it?"],
                "answers": [f"${1000 + i}.", "In May.", "Not specified."],
                "outline": f"## Project {i}\n- Budget: ${1000 + i}\n- Deadline: May\n- Plan: three phases",
            }
        ).encode()
        + b"\n"
        for i in range(n)
    ]


def _clear() -> None:
    from annotation.models import Candidate, Task
    from training.models import System

    Candidate.objects.all().delete()
    Task.objects.all().delete()
    System.objects.all().delete()


def _timed(fn: Any) -> tuple[tuple[float, float], Any]:
    """(wall seconds, this process's CPU seconds) and the result. CPU time shows the import's own cost when
    other jobs share the machine; for PostgreSQL it leaves out the server's share, which wall time includes."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return (time.perf_counter() - wall, time.process_time() - cpu), result


def child(n: int) -> dict[str, Any]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pigplatform.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from annotation.services import candidates_import, tasks_import

    call_command("migrate", verbosity=0)
    tasks, cands = task_lines(n), candidate_lines(n)
    out: dict[str, Any] = {"vendor": connection.vendor}
    for label, import_tasks, import_cands in (
        ("per-row (before)", legacy_tasks_import, legacy_candidates_import),
        (
            "bulk (now)",
            lambda lines: tasks_import(lines=lines),
            lambda lines, name: candidates_import(lines=lines, system_name=name),
        ),
    ):
        _clear()
        t_tasks, r_tasks = _timed(lambda f=import_tasks: f(tasks))
        t_again, r_again = _timed(lambda f=import_tasks: f(tasks))
        t_cands, r_cands = _timed(lambda f=import_cands: f(cands, "bench-system"))
        assert (r_tasks.created, r_again.unchanged, r_cands.created) == (n, n, n), (r_tasks, r_again, r_cands)
        out[label] = {"tasks": t_tasks, "tasks again (unchanged)": t_again, "candidates": t_cands}
    _clear()
    return out


# ------------------------------------------------------------------ parent: one child per database


def _postgres_database(server_url: str) -> tuple[str, str]:
    import psycopg

    base = server_url.rsplit("/", 1)[0]
    name = f"pig_import_bench_{os.getpid()}"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{base}/{name}", name


def _drop_postgres(server_url: str, name: str) -> None:
    import psycopg

    base = server_url.rsplit("/", 1)[0]
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_child(database_url: str, n: int, var_dir: str) -> dict[str, Any]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "PIG_TESTING": "1",
        "PIG_VAR_DIR": var_dir,
        "PYTHONPATH": str(ROOT),
        "LOG_LEVEL": "WARNING",
    }
    env.pop("CACHE_URL", None)
    done = subprocess.run(
        [sys.executable, __file__, "--child", "--n", str(n)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise SystemExit(f"child failed on {database_url}:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.n)))
        return
    results: list[tuple[str, dict[str, Any]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        print(
            f"Importing {args.n:,} tasks and {args.n:,} candidates (one system); "
            f"load average {os.getloadavg()} on {os.cpu_count()} CPUs…",
            flush=True,
        )
        results.append(("SQLite", run_child(f"sqlite:///{tmp}/bench.sqlite3", args.n, tmp)))
        server = os.environ.get("DATABASE_URL", "")
        if server.startswith("postgres"):
            url, name = _postgres_database(server)
            try:
                results.append(("PostgreSQL", run_child(url, args.n, tmp)))
            finally:
                _drop_postgres(server, name)
        else:
            print("(DATABASE_URL is not PostgreSQL: PostgreSQL skipped)")
    print()
    columns = ("tasks", "tasks again (unchanged)", "candidates")
    print("wall seconds (CPU seconds of the importing process)")
    print(f"{'database':<11} {'path':<17} {'tasks':>15} {'re-import':>15} {'candidates':>15}")
    for db, figures in results:
        for label in ("per-row (before)", "bulk (now)"):
            cells = " ".join(f"{f'{wall:.2f} ({cpu:.2f})':>15}" for wall, cpu in (figures[label][c] for c in columns))
            print(f"{db:<11} {label:<17} {cells}")
        before, now = figures["per-row (before)"], figures["bulk (now)"]
        ratios = " ".join(f"{f'{before[c][0] / now[c][0]:.1f}x':>15}" for c in columns)
        print(f"{'':<11} {'speed-up (wall)':<17} {ratios}")
    print(f"\nTargets: tasks < 2 s, candidates < 3 s ({args.n:,} each). Load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
