"""Shared set-up for the training-run tests: fast hyperparameters, tasks, waiting, a real worker."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests import factories
from training.models import TrainingRun

# Tiny and quick: 2 prompts × 2 generations of 16 tokens per step. The `concise` term gives an untrained
# model's gibberish samples different rewards, so the policy gradient is not zero and weights move.
FAST = {
    "max_steps": 2,
    "num_generations": 2,
    "per_device_train_batch_size": 2,
    "gradient_accumulation_steps": 1,
    "max_completion_length": 16,
    "learning_rate": 1e-3,
    "save_steps": 2,
    "seed": 7,
}
# A random-weight model never asks an on-topic question, so the machinery tests turn off the gate that keeps
# `concise` from rewarding such output; real runs keep it on.
DENSE = {"terms": {"elicitation": 1.0, "concise": 0.5}, "concise_requires_on_topic": False}

needs_broker = pytest.mark.skipif(
    not os.environ.get("CELERY_BROKER_URL", "").startswith(("redis", "amqp")),
    reason="needs a broker server (CI sets CELERY_BROKER_URL=redis://…)",
)


def make_train_tasks(n: int = 4) -> None:
    for i in range(n):
        factories.TaskFactory(
            split="train",
            masked_task=f"Write an outline for grant proposal {i}.",
            hidden_facts=["The budget is $5,000.", "The audience is hospital administrators."],
        )


def wait_for(predicate: Callable[[], bool], timeout: float = 120, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def wait_finished(run: TrainingRun, timeout: float = 150) -> TrainingRun:
    def done() -> bool:
        run.refresh_from_db()
        return run.status in ("succeeded", "failed", "cancelled")

    wait_for(done, timeout, f"run {run.name} to finish (log tail: {run.log[-500:]!r})")
    return run


@contextmanager
def training_worker() -> Iterator[None]:
    """A real Celery worker on the configured broker, consuming the `training` queue in this process."""
    from celery.contrib.testing.worker import start_worker

    import training.tasks  # noqa: F401  (registers training.run)
    from pigplatform.celery import app

    app.control.purge()  # leftovers of an aborted earlier session must not start runs here
    with start_worker(app, queues=["training"], pool="solo", perform_ping_check=False, loglevel="WARNING"):
        yield


def weights(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))
