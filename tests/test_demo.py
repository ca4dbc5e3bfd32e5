"""bin/demo's process handling (`manage.py demo_run`), run for real: its own SQLite database and filesystem
broker under a temporary var/, a real runserver and two real Celery workers, stopped with SIGINT as a
terminal's Ctrl-C would. Each test snapshots every process the demo started (and their children) before the
signal and checks that none survives."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from django.conf import settings

STARTUP_S = 240  # migrations, demo data and two workers on a shared 2-core machine


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Demo:
    def __init__(self, var: Path, *args: str) -> None:
        self.var = var
        self.port = _free_port()
        self.env = {
            key: value
            for key, value in os.environ.items()
            if key not in {"DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL", "CELERY_RESULT_BACKEND"}
        }
        self.env.update(DEBUG="1", PIG_VAR_DIR=str(var), PYTHONPATH=str(settings.BASE_DIR), PIG_TESTING="")
        self.out = (var / "demo.out").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "demo_run", "--port", str(self.port), "--skip-model", "--no-generate", *args],
            cwd=settings.BASE_DIR,
            env=self.env,
            stdout=self.out,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        return (self.var / "demo.out").read_text(errors="replace")

    def wait_until_running(self) -> None:
        deadline = time.monotonic() + STARTUP_S
        while "is running at" not in self.output():
            assert self.proc.poll() is None, f"demo exited early:\n{self.output()}"
            assert time.monotonic() < deadline, f"demo did not start:\n{self.output()}"
            time.sleep(0.5)
        # Both workers answer a ping before the test goes on (they log "ready").
        while not all("ready" in _read(self.var / log) for log in ("worker.log", "worker-training.log")):
            assert time.monotonic() < deadline, "workers did not get ready"
            time.sleep(0.5)

    def processes(self) -> list[psutil.Process]:
        return psutil.Process(self.proc.pid).children(recursive=True)

    def sql(self, query: str, *params: object) -> list[tuple]:
        with sqlite3.connect(self.var / "pig.sqlite3", timeout=30) as db:
            return db.execute(query, params).fetchall()

    def shell(self, code: str) -> None:
        subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", code],
            cwd=settings.BASE_DIR,
            env=self.env,
            check=True,
            capture_output=True,
        )

    def stop_and_wait(self, *signals: int, gap: float = 0.0) -> float:
        """Send the signals (gap seconds apart); return seconds from the first until the demo exited."""
        started = time.monotonic()
        for sig in signals:
            self.proc.send_signal(sig)
            time.sleep(gap)
        self.proc.wait(timeout=60)
        return time.monotonic() - started


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _survivors(processes: list[psutil.Process], within: float) -> list[str]:
    _, alive = psutil.wait_procs(processes, timeout=within)
    return [f"{p.pid} {' '.join(p.cmdline()[:6])}" for p in alive if p.is_running() and p.status() != "zombie"]


@pytest.fixture
def demo_var(tmp_path: Path) -> Path:
    var = tmp_path / "var"
    var.mkdir()
    return var


@pytest.fixture
def started(demo_var: Path) -> Iterator[Demo]:
    demo = Demo(demo_var)
    try:
        demo.wait_until_running()
        yield demo
    finally:
        if demo.proc.poll() is None:
            for process in demo.processes():
                process.kill()
            demo.proc.kill()
        demo.out.close()


@pytest.mark.slow
def test_ctrl_c_stops_every_demo_process_within_ten_seconds_and_cancels_live_runs(started: Demo):
    started.shell(
        "from django.utils import timezone; from training.models import TrainingRun; "
        "TrainingRun.objects.create(name='left-running', status='running', started_at=timezone.now(), "
        "heartbeat_at=timezone.now(), attempt=1)"
    )
    processes = started.processes()
    assert len(processes) >= 3  # web server, two workers (and their pool processes)
    assert started.proc.poll() is None
    seconds = started.stop_and_wait(signal.SIGINT)
    assert seconds < 10, started.output()
    assert _survivors(processes, within=0.5) == []
    assert started.proc.returncode == 130
    [(status, error)] = started.sql("SELECT status, error FROM training_trainingrun WHERE name = 'left-running'")
    assert status == "cancelled"
    assert "bin/demo" in error
    output = started.output()
    assert "training run left-running: cancelled" in output
    assert "Stopped in" in output


@pytest.mark.slow
def test_a_second_ctrl_c_kills_everything_at_once(started: Demo):
    processes = started.processes()
    seconds = started.stop_and_wait(signal.SIGINT, signal.SIGINT, gap=0.1)
    assert seconds < 3, started.output()
    assert _survivors(processes, within=1.0) == []
    assert "Second Ctrl-C" in started.output()


@pytest.mark.slow
def test_ctrl_c_during_a_training_step_stops_the_training_process_too(demo_var: Path):
    demo = Demo(demo_var, "--train")
    try:
        demo.wait_until_running()
        deadline = time.monotonic() + STARTUP_S
        # Wait until the training process itself runs (accelerate launch → python -m training.grpo).
        while not any("training.grpo" in " ".join(p.cmdline()) for p in _alive(demo.processes())):
            assert time.monotonic() < deadline, _read(demo_var / "worker-training.log")[-3000:]
            time.sleep(0.5)
        assert demo.sql("SELECT status FROM training_trainingrun") == [("running",)]
        processes = demo.processes()
        seconds = demo.stop_and_wait(signal.SIGINT)
        assert seconds < 10, demo.output()
        assert _survivors(processes, within=1.0) == []
        assert demo.sql("SELECT status FROM training_trainingrun") == [("cancelled",)]
    finally:
        if demo.proc.poll() is None:
            for process in demo.processes():
                process.kill()
            demo.proc.kill()
        demo.out.close()


def _alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for process in processes:
        try:
            process.cmdline()
        except psutil.Error:
            continue
        out.append(process)
    return out
