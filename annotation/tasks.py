"""Celery tasks of the annotation app: thin, ids in."""

from __future__ import annotations

from celery import shared_task

from annotation.models import Study


@shared_task(name="default.results_refresh", acks_late=True, ignore_result=True)
def results_refresh(study_id: int, exclude_flagged: bool) -> None:
    """Recompute a study's results figures in the background (idempotent: it only rewrites the cache)."""
    from annotation.results import study_figures_compute

    study = Study.objects.filter(pk=study_id).first()
    if study is not None:
        study_figures_compute(study=study, exclude_flagged=exclude_flagged)


@shared_task(name="default.sequential_refresh", acks_late=True, ignore_result=True)
def sequential_refresh(study_id: int) -> None:
    """Recompute a goal study's pair states and close it when its goal is met (idempotent: a recompute)."""
    from annotation.services_goal import study_sequential_refresh

    study_sequential_refresh(study_id=study_id)
