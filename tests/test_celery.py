"""Celery round trips through real workers: the configured broker (Redis in CI) and the embedded one."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from celery.contrib.testing.worker import start_worker
from django.conf import settings

from pigplatform.celery import app, ping

ROOT = Path(settings.BASE_DIR)


@pytest.mark.skipif(
    not os.environ.get("CELERY_BROKER_URL", "").startswith(("redis", "amqp")),
    reason="needs a broker server (CI sets CELERY_BROKER_URL=redis://…)",
)
def test_round_trip_through_a_real_worker_on_the_configured_broker():
    with start_worker(app, queues=["default"], perform_ping_check=False, pool="solo", loglevel="WARNING"):
        assert ping.delay("hello").get(timeout=30) == "hello"


def test_round_trip_through_the_embedded_filesystem_broker_across_processes(tmp_path: Path):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "DATABASE_URL"))},
        "PIG_VAR_DIR": str(tmp_path),
        "DEBUG": "1",
    }
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "pigplatform",
            "worker",
            "-Q",
            "default",
            "-c",
            "1",
            "--pool",
            "solo",
            "--loglevel",
            "WARNING",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        sender = subprocess.run(
            [sys.executable, "manage.py", "celery_ping", "--timeout", "60"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert sender.returncode == 0, sender.stderr
        assert "worker answered: pong" in sender.stdout
        assert (tmp_path / "broker" / "in").is_dir()
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
        time.sleep(0.1)


def test_tasks_are_routed_to_named_queues():
    assert app.conf.task_routes["generation.*"]["queue"] == "generation"
    assert app.conf.task_routes["training.*"]["queue"] == "training"
    assert {q.name for q in app.conf.task_queues} == {"default", "generation", "training"}
    assert app.conf.worker_prefetch_multiplier == 1
    assert app.conf.task_serializer == "json"
