"""Automatic evaluation as a job: a worker scores the candidates (progress per candidate on the job row),
the researcher watches the auto-eval page instead of waiting on a web request. The scoring itself is
`generation.auto_eval_run`; this module only runs it in the background."""

from __future__ import annotations

import time
from collections.abc import Sequence

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from pigplatform.queueing import enqueue_on_commit

from .autoeval import AutoEvalJobSettled, auto_eval_run
from .models import AutoEvalJob, JobStatus, System
from .rewards import RewardSpec

MATCHERS = ("embedding", "lexical")
# A progress write at most this often: scoring a candidate can take a millisecond.
PROGRESS_EVERY_S = 0.5


def auto_eval_job_start(
    *,
    systems: Sequence[System],
    split: str = "",
    baseline: System | None = None,
    matcher: str = "embedding",
    user: AbstractBaseUser | None = None,
) -> AutoEvalJob:
    """Record an evaluation and enqueue it on the generation queue (where the embedding model lives)."""
    if not systems:
        raise ValidationError("choose at least one system")
    if matcher not in MATCHERS:
        raise ValidationError(f"unknown matcher '{matcher}' (choose {', '.join(MATCHERS)})")
    with transaction.atomic():
        job = AutoEvalJob(
            split=split,
            baseline=baseline,
            matcher=matcher,
            created_by=user if user is not None and user.is_authenticated else None,
        )
        job.full_clean()
        job.save()
        job.systems.set(systems)
        _enqueue_auto_eval(job.pk)
    return job


def _enqueue_auto_eval(job_id: int) -> None:
    def send() -> None:
        from .generation_tasks import run_auto_eval

        run_auto_eval.delay(job_id)

    def record(error: str) -> None:
        AutoEvalJob.objects.filter(pk=job_id).update(error=error)

    enqueue_on_commit(send, record)


def auto_eval_job_run(*, job_id: int) -> AutoEvalJob | None:
    """Claim and run the job; None when there is nothing to do (settled already).

    A redelivered message (the worker died) claims a running job again and scores from the start: results
    are stored only by the delivery that settles the job, so they are never stored twice."""
    now = timezone.now()
    claimed = AutoEvalJob.objects.filter(pk=job_id, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).update(
        status=JobStatus.RUNNING, started_at=now, done=0, error=""
    )
    if not claimed:
        return None
    job = AutoEvalJob.objects.select_related("baseline").get(pk=job_id)
    last_write = 0.0

    def progress(scored: int, total: int) -> None:
        nonlocal last_write
        if scored == total or time.monotonic() - last_write >= PROGRESS_EVERY_S:
            last_write = time.monotonic()
            AutoEvalJob.objects.filter(pk=job_id, status=JobStatus.RUNNING).update(done=scored, total=total)

    try:
        auto_eval_run(
            systems=list(job.systems.order_by("name")),
            split=job.split,
            baseline=job.baseline,
            spec=_job_spec(job),
            progress=progress,
            job=job,
        )
    except AutoEvalJobSettled:
        return None
    job.refresh_from_db()
    return job


def _job_spec(job: AutoEvalJob) -> RewardSpec | None:
    """The job's matcher choice on the evaluation spec; None (the baseline's spec) for the default matcher."""
    from .rewards import default_spec

    if not job.matcher or job.matcher == default_spec().matcher:
        return None
    return default_spec().with_overrides({"matcher": job.matcher})


def auto_eval_job_fail(*, job_id: int, error: str) -> None:
    AutoEvalJob.objects.filter(pk=job_id, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).update(
        status=JobStatus.FAILED, error=error[:2000], finished_at=timezone.now()
    )
