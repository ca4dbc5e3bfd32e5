"""Fault: SIGKILL a Celery worker in the middle of a generation chunk, then start another one.

Expect: the chunk's message is redelivered (acks_late + the broker's visibility timeout), the job
completes, every task has exactly one candidate, and the job's counters add up.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/pig_fault CELERY_BROKER_URL=redis://127.0.0.1:6379/12 \\
        PYTHONPATH=. python benchmarks/fault_worker_kill.py

Loopback only; bounded in time (about 2 minutes on 2 cores).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pigplatform.settings")
os.environ.setdefault("PIG_TESTING", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Redis redelivers an unacknowledged message once this many seconds have passed.
os.environ["CELERY_VISIBILITY_TIMEOUT"] = os.environ.get("CELERY_VISIBILITY_TIMEOUT", "20")

import django

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db.models import Count  # noqa: E402

from annotation.models import Candidate, Task  # noqa: E402
from training.generation import generation_job_start  # noqa: E402
from training.models import Backend, ChunkStatus, GenerationJob, JobStatus, System  # noqa: E402
from training.tinymodel import build_tiny_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
N_TASKS = 24


def start_worker(name: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "pigplatform", "worker", "-n", f"{name}@%h", "-Q", "generation",
         "-c", "1", "--pool", "solo", "--loglevel", "WARNING"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def stop(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return
    proc.wait(timeout=30)


def main() -> int:
    if not os.environ.get("CELERY_BROKER_URL", "").startswith("redis"):
        print("needs CELERY_BROKER_URL=redis://… and DATABASE_URL=postgres://…")
        return 2
    call_command("migrate", verbosity=0)
    tag = str(int(time.time()))
    model_dir = build_tiny_model(Path(tempfile.mkdtemp()) / "tiny")
    system = System.objects.create(
        name=f"fault-tiny-{tag}", backend=Backend.TRANSFORMERS, model_path=str(model_dir),
        generation_params={"max_new_tokens": 64, "chunk_size": 8, "max_questions": 3, "torch_threads": 1},
    )  # fmt: skip
    tasks = [
        Task.objects.create(key=f"fault-{tag}-{i}", domain="grant proposal", full_task=f"Grant {i}; budget $5k.",
                            masked_task=f"Write an outline for grant {i}.", hidden_facts=["The budget is $5k."])
        for i in range(N_TASKS)
    ]  # fmt: skip
    first = start_worker("first")
    job = generation_job_start(system=system, tasks=tasks, simulator="lexical")
    deadline = time.monotonic() + 120
    while not job.chunks.filter(status=ChunkStatus.RUNNING).exists():
        if time.monotonic() > deadline:
            print("FAIL: no chunk started within 120 s")
            stop(first, signal.SIGTERM)
            return 1
        time.sleep(0.2)
    killed_chunk = job.chunks.get(status=ChunkStatus.RUNNING)
    time.sleep(1.0)  # well inside the chunk: the model is generating
    stop(first, signal.SIGKILL)
    killed_at = time.monotonic()
    print(f"SIGKILLed the worker while chunk {killed_chunk.index} was running")

    second = start_worker("second")
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            job.refresh_from_db()
            if job.status not in (JobStatus.QUEUED, JobStatus.RUNNING):
                break
            time.sleep(0.5)
    finally:
        stop(second, signal.SIGTERM)
    recovered_s = time.monotonic() - killed_at

    job.refresh_from_db()
    killed_chunk.refresh_from_db()
    per_task = Candidate.objects.filter(system=system).values("task").annotate(n=Count("id"))
    duplicates = [row for row in per_task if row["n"] != 1]
    violations = []
    if job.status != JobStatus.SUCCEEDED:
        violations.append(f"job ended {job.status}: {job.error or job.errors}")
    if Candidate.objects.filter(system=system).count() != N_TASKS:
        violations.append(f"{Candidate.objects.filter(system=system).count()} candidates for {N_TASKS} tasks")
    if duplicates:
        violations.append(f"duplicate candidates: {duplicates}")
    if job.done + job.skipped + job.failed != job.total:
        violations.append(f"counters: done {job.done} + skipped {job.skipped} + failed {job.failed} != {job.total}")
    print(f"job {job.status}: {job.done}/{job.total} done, {job.failed} failed; killed chunk attempts "
          f"{killed_chunk.attempts}; recovered in {recovered_s:.0f} s "
          f"(visibility timeout {os.environ['CELERY_VISIBILITY_TIMEOUT']} s)")  # fmt: skip
    print("invariants:", "OK" if not violations else "VIOLATED: " + "; ".join(violations))
    GenerationJob.objects.filter(pk=job.pk).delete()
    return 0 if not violations else 1


if __name__ == "__main__":
    sys.exit(main())
