"""Celery task for training runs (queue: training; run workers with `-Q training -c 1`, one per GPU node).

The task supervises: it claims the run, writes the spec, starts `accelerate launch … -m training.grpo` (or
`training.dpo`) in its own process group, streams the child's output into `run.log` (a bounded tail), beats the
heartbeat, kills the whole group when cancel is requested and the child does not stop by itself, and maps the exit
status to the run's final status."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections import deque
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.db import connections

from pigplatform.celery import app

from .grpo import launch_command
from .models import Device, JobStatus, TrainingRun
from .runs import (
    TrainingRunError,
    training_run_claim,
    training_run_finish,
    training_run_spec,
    training_run_supervisor_beat,
)

__all__ = ["run_training", "supervise"]

logger = logging.getLogger(__name__)
LOG_LINES = 400
LOG_CHARS = 60_000
BEAT_SECONDS = 2.0
CANCEL_GRACE_SECONDS = 60.0  # the callback stops at the next step end; a step may be slow on a big model
KILL_GRACE_SECONDS = 10.0


@app.task(
    name="training.run",
    acks_late=True,  # safe: claiming is a compare-and-set on (status, attempt), so a redelivery is a no-op
    ignore_result=True,
    soft_time_limit=settings.PIG["TRAINING_TIME_LIMIT_S"],
    time_limit=settings.PIG["TRAINING_TIME_LIMIT_S"] + 300,
)
def run_training(run_id: int, attempt: int, resume: bool = False) -> str:
    return supervise(run_id=run_id, attempt=attempt, resume=resume)


def _database_url() -> str:
    """The URL of the database this process uses, for the child (in tests: the test database)."""
    db = connections["default"].settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = quote(db.get("USER") or "", safe="")
    password = f":{quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{auth}{db.get('HOST') or '127.0.0.1'}{port}/{db['NAME']}"


def _kill_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


class _Tail:
    """The last lines of the child's output, read in a thread so a quiet child never blocks the loop."""

    def __init__(self, stream) -> None:
        self.lines: deque[str] = deque(maxlen=LOG_LINES)
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream) -> None:
        for line in iter(stream.readline, ""):
            with self.lock:
                # PostgreSQL refuses NUL in text; a model's sampled bytes may contain it.
                self.lines.append(line.rstrip("\n")[-2000:].replace("\x00", "\ufffd"))
        stream.close()

    def text(self, prefix: str = "") -> str:
        with self.lock:
            body = "\n".join(self.lines)
        return (prefix + body)[-LOG_CHARS:]


def supervise(*, run_id: int, attempt: int, resume: bool = False) -> str:
    if not training_run_claim(run_id=run_id, attempt=attempt):
        return "skipped: not queued for this attempt (already running, finished, cancelled or resumed elsewhere)"
    run = TrainingRun.objects.get(pk=run_id)
    try:
        spec = training_run_spec(run, resume=resume)
    except TrainingRunError as exc:
        training_run_finish(run_id=run_id, attempt=attempt, status=JobStatus.FAILED, error=str(exc))
        return JobStatus.FAILED
    spec.supervisor_pid = os.getpid()
    Path(spec.output_dir).mkdir(parents=True, exist_ok=True)
    spec_path = spec.save(Path(spec.output_dir) / f"spec-attempt{attempt}.json")
    cmd = launch_command(
        spec_path,
        device="cpu" if run.device == Device.CPU else "auto",
        num_processes=run.num_processes,
        deepspeed_config=run.deepspeed_config,
        run_id=run_id,
        cpu_threads=settings.PIG["TRAINING_CPU_THREADS"],
        module=f"training.{run.algorithm}",  # training.grpo or training.dpo
    )
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(settings.BASE_DIR), os.environ.get("PYTHONPATH")])),
        "TOKENIZERS_PARALLELISM": "false",
    }
    if run.device == Device.CPU:
        env["CUDA_VISIBLE_DEVICES"] = ""
    previous = (run.log + "\n") if resume and run.log else ""
    header = f"{previous}--- attempt {attempt}{' (resume)' if resume else ''}: {' '.join(cmd)}\n"
    # Its own session/process group: cancel and cleanup reach accelerate's workers too, not just the launcher.
    proc = subprocess.Popen(
        cmd,
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    tail = _Tail(proc.stdout)
    cancel_seen_at: float | None = None
    killed = False
    last_beat = 0.0
    try:
        while proc.poll() is None:
            time.sleep(0.25)
            if time.monotonic() - last_beat < BEAT_SECONDS:
                continue
            last_beat = time.monotonic()
            state = training_run_supervisor_beat(run_id=run_id, attempt=attempt, log=tail.text(header))
            if state == "superseded":
                _kill_group(proc, signal.SIGKILL)
                proc.wait()
                return "superseded"
            if state == "cancelled" and cancel_seen_at is None:
                cancel_seen_at = time.monotonic()
            if cancel_seen_at is not None and not killed and time.monotonic() - cancel_seen_at > CANCEL_GRACE_SECONDS:
                _kill_group(proc, signal.SIGTERM)
                killed = True
                try:
                    proc.wait(timeout=KILL_GRACE_SECONDS)
                except subprocess.TimeoutExpired:
                    _kill_group(proc, signal.SIGKILL)
    finally:
        # Whatever ends this loop (soft time limit, worker shutdown, a bug), leave no training behind.
        if proc.poll() is None:
            _kill_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=KILL_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                _kill_group(proc, signal.SIGKILL)
                proc.wait()
        _kill_group(proc, signal.SIGKILL)  # stragglers of the group (e.g. dataloader workers)
        tail.thread.join(timeout=5)
    return _record_exit(run_id, attempt, proc.returncode, tail.text(header))


def _record_exit(run_id: int, attempt: int, code: int, log: str) -> str:
    cancel_requested = TrainingRun.objects.filter(pk=run_id).values_list("cancel_requested", flat=True).first()
    if cancel_requested:
        status, error = JobStatus.CANCELLED, ""
    elif code == 0:
        status, error = JobStatus.SUCCEEDED, ""
    else:
        reason = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        lines = log.splitlines()
        error = f"The training process failed ({reason}). Last output:\n" + "\n".join(lines[-40:])
        status = JobStatus.FAILED
    training_run_finish(run_id=run_id, attempt=attempt, status=status, error=error, log=log)
    run = TrainingRun.objects.get(pk=run_id)
    return run.status
