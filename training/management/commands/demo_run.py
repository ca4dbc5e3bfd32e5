"""`python manage.py demo_run` (what bin/demo runs after installing): prepare the demo, run the web server and
both Celery workers, and stop all of it cleanly on Ctrl-C.

Ctrl-C once: live training runs are marked cancelled at once (their supervisors then kill the training
processes within seconds), every process the demo started gets SIGTERM, and whatever is still there after
STOP_SECONDS is killed; unfinished generation jobs are settled as cancelled. Ctrl-C twice: everything is
killed at once. Each child runs in its own process group, so a signal reaches its own children too (a
worker's pool processes), and the terminal's Ctrl-C reaches only this process, which decides."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from training.generation import generation_jobs_abandon
from training.runs import training_runs_stop_all

# Everything must be gone within 10 s of Ctrl-C: SIGTERM first, SIGKILL for what is left after this.
STOP_SECONDS = 7.0
STOP_REASON = "stopped with bin/demo (Ctrl-C)"


@dataclass
class Child:
    name: str
    proc: subprocess.Popen
    log: Path | None = None


@dataclass
class Children:
    items: list[Child] = field(default_factory=list)

    def start(self, name: str, cmd: list[str], *, log: Path | None = None) -> Child:
        out: TextIO | int = subprocess.DEVNULL
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            out = log.open("ab")  # type: ignore[assignment]
        proc = subprocess.Popen(
            cmd, cwd=settings.BASE_DIR, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        child = Child(name, proc, log)
        self.items.append(child)
        return child

    def alive(self) -> list[Child]:
        return [c for c in self.items if c.proc.poll() is None]

    def signal_all(self, sig: int, *, group: bool = True) -> None:
        for child in self.items:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if group:
                    os.killpg(child.proc.pid, sig)  # the group: a worker's pool processes too
                else:
                    # Only the leader: a Celery worker then shuts its pool down itself, letting a training
                    # supervisor kill its training process first.
                    child.proc.send_signal(sig)

    def wait_all(self, deadline: float) -> bool:
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        return not self.alive()


class Command(BaseCommand):
    help = "Run the demo: set up, start the web server and two workers, stop everything on Ctrl-C."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--skip-model", action="store_true", help="no SmolLM2 conversion (tests)")
        parser.add_argument("--no-generate", action="store_true", help="no generation job for the held-out tasks")
        parser.add_argument("--train", action="store_true", help="also start the short CPU GRPO demo run")

    def handle(self, *args: Any, port: int, skip_model: bool, no_generate: bool, train: bool, **options: Any) -> None:
        self.children = Children()
        self.interrupts = 0
        self.interrupted_at: float | None = None
        var = Path(settings.VAR_DIR)
        python = sys.executable
        manage = [python, "manage.py"]

        with self.stage("database migrations and demo data", "10 s"):
            call_command("migrate", interactive=False, verbosity=0)
            call_command("demo_setup", stdout=self.stdout)
        if not skip_model:
            with self.stage("SmolLM2-135M model conversion", "30 s the first time, then instant"):
                call_command("prepare_smollm2", stdout=self.stdout)

        signal.signal(signal.SIGINT, self._interrupted)
        signal.signal(signal.SIGTERM, self._interrupted)
        celery = [python, "-m", "celery", "-A", "pigplatform", "worker", "-c", "1", "--loglevel", "INFO"]
        self.children.start("generation worker", [*celery, "-n", "gen@%h", "-Q", "default,generation"],
                            log=var / "worker.log")  # fmt: skip
        self.children.start("training worker", [*celery, "-n", "train@%h", "-Q", "training"],
                            log=var / "worker-training.log")  # fmt: skip
        if not no_generate and not skip_model:
            # Real model output for a newcomer; skipped (no job) when every held-out task has its candidate.
            call_command("generate_candidates", system="smollm2-135m", split="test", stdout=self.stdout)
        # When they are done, SmolLM2's questions join the open answer study (people play the user) too.
        self.children.start("answer study", [*manage, "demo_answer_study", "--wait"], log=var / "demo-answers.log")
        if train:
            self.children.start("demo training run", [*manage, "demo_train", "--queue"], log=var / "demo-train.log")
        web = self.children.start("web server", [*manage, "runserver", f"127.0.0.1:{port}", "--noreload"])
        self.stdout.write(BANNER.format(port=port))
        self.stdout.flush()
        while web.proc.poll() is None and not self.interrupts:
            time.sleep(0.2)
        self._shutdown()

    def stage(self, name: str, rough: str) -> _Stage:
        return _Stage(self.stdout, name, rough)

    def _interrupted(self, signum: int, frame: Any) -> None:
        self.interrupts += 1
        self.interrupted_at = self.interrupted_at or time.monotonic()
        if self.interrupts >= 2:
            # A second Ctrl-C: no more waiting.
            self.stdout.write("\nSecond Ctrl-C: killing every demo process now.")
            self.children.signal_all(signal.SIGKILL)
            self.stdout.flush()
            os._exit(130)

    def _shutdown(self) -> None:
        started = self.interrupted_at or time.monotonic()
        self.stdout.write("\nStopping the demo (press Ctrl-C again to kill everything at once)…")
        self.stdout.flush()
        for name in training_runs_stop_all(reason=STOP_REASON):
            self.stdout.write(f"  training run {name}: cancelled")
        self.children.signal_all(signal.SIGTERM, group=False)
        if not self.children.wait_all(started + STOP_SECONDS):
            for child in self.children.alive():
                # An idle Celery worker alone takes about 10 s to shut down warm (its timer thread).
                self.stdout.write(f"  {child.name}: still shutting down after {STOP_SECONDS:.0f} s, killed")
            self.children.signal_all(signal.SIGKILL)
            self.children.wait_all(time.monotonic() + 2)
        # The workers are gone: a chunk one of them was running would keep its job "running" for ever.
        for job_id in generation_jobs_abandon(reason=STOP_REASON):
            self.stdout.write(f"  generation job #{job_id}: cancelled (restart bin/demo to finish it)")
        self.stdout.write(f"Stopped in {time.monotonic() - started:.1f} s.")
        self.stdout.flush()
        sys.stderr.flush()
        # Straight out: tearing down the interpreter (the model libraries imported on the way) can take
        # seconds on a busy machine, and everything worth saving is committed.
        os._exit(130 if self.interrupts else 0)


class _Stage:
    """Prints what is being done with a rough duration, then how long it took."""

    def __init__(self, out: Any, name: str, rough: str) -> None:
        self.out, self.name, self.rough = out, name, rough

    def __enter__(self) -> _Stage:
        self.started = time.monotonic()
        self.out.write(f"==> {self.name} (rough time: {self.rough})…")
        self.out.flush()
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.out.write(f"    {self.name}: done in {time.monotonic() - self.started:.0f} s")


BANNER = """
  PIG Platform is running at http://127.0.0.1:{port}/
    researcher (staff, admin at /admin/):  researcher / pig-researcher-demo
    annotators:                            alice / pig-alice-demo,  bob / pig-bob-demo
  Worker logs: var/worker.log (generation), var/worker-training.log (training).
  SmolLM2 candidates for the held-out tasks are generated by the worker: Admin › Generation jobs.
  PIG_DEMO_TRAIN=1 bin/demo also starts a short CPU GRPO run: Admin › Training runs.
  Press Ctrl-C to stop everything (twice to stop at once).
"""
