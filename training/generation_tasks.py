"""Celery tasks for candidate generation (queue: generation). Thin: ids in, one service call.

`run_chunk` is idempotent (tasks that already have a candidate are skipped, the Candidate unique
constraint refuses duplicates, and a chunk's results and counters commit together by compare-and-set),
so it runs with acks_late: a worker killed mid-chunk leaves the message to be redelivered."""

from __future__ import annotations

import logging

import requests
from celery import shared_task
from django.conf import settings
from django.db import OperationalError

from .auto_eval_jobs import auto_eval_job_fail, auto_eval_job_run
from .backends import TransientBackendError
from .generation import generation_chunk_claim, generation_chunk_fail, generation_chunk_run

__all__ = ["run_auto_eval", "run_chunk", "try_outline", "try_questions"]

log = logging.getLogger(__name__)

TRANSIENT = (TransientBackendError, requests.ConnectionError, requests.Timeout, OperationalError)


@shared_task(
    name="generation.run_chunk",
    bind=True,
    acks_late=True,
    ignore_result=True,
    # Transient errors are retried by Celery: exponential backoff from the base, capped, with full jitter.
    autoretry_for=TRANSIENT,
    max_retries=settings.PIG["GENERATION_MAX_RETRIES"],
    retry_backoff=settings.PIG["GENERATION_RETRY_BASE_S"],
    retry_backoff_max=600,
    retry_jitter=True,
)
def run_chunk(self, chunk_id: int) -> None:  # type: ignore[no-untyped-def]
    chunk = generation_chunk_claim(chunk_id=chunk_id)
    if chunk is None:
        return  # already settled, or the job was cancelled
    try:
        generation_chunk_run(chunk=chunk)
    except TRANSIENT as exc:
        if self.request.retries >= self.max_retries:
            generation_chunk_fail(chunk=chunk, error=f"gave up after {self.request.retries + 1} attempts: {exc}")
            return
        log.warning("chunk %s: transient error, retrying: %s", chunk_id, exc)
        raise  # autoretry_for schedules the retry
    except Exception as exc:
        log.exception("chunk %s failed", chunk_id)
        generation_chunk_fail(chunk=chunk, error=f"{type(exc).__name__}: {exc}")


# Idempotent (a redelivery re-scores, and only the delivery that settles the job stores results), so acks_late.
@shared_task(name="generation.auto_eval", acks_late=True, ignore_result=True)
def run_auto_eval(job_id: int) -> None:
    try:
        auto_eval_job_run(job_id=job_id)
    except Exception as exc:
        log.exception("auto-eval job %s failed", job_id)
        auto_eval_job_fail(job_id=job_id, error=f"{type(exc).__name__}: {exc}")


# "Try as the user" (training/try_loop.py): one generation each, state in the cache. Not acks_late: a step lost
# with its worker leaves the page waiting, and the researcher starts over; a redelivered step finds its stage
# moved on and does nothing.
@shared_task(name="generation.try_questions", ignore_result=True)
def try_questions(token: str) -> None:
    from .try_loop import try_run_questions

    try_run_questions(token=token)


@shared_task(name="generation.try_outline", ignore_result=True)
def try_outline(token: str) -> None:
    from .try_loop import try_run_outline

    try_run_outline(token=token)
