"""Researcher-facing generation pages (staff only), mounted at /generation/."""

from __future__ import annotations

from django.urls import path

from . import generation_views as views
from . import try_views

app_name = "generation"

urlpatterns = [
    path("start/", views.start, name="start"),
    path("jobs/<int:pk>/", views.job_detail, name="job"),
    path("jobs/<int:pk>/progress.json", views.job_progress, name="job-progress"),
    path("jobs/<int:pk>/cancel/", views.job_cancel, name="job-cancel"),
    path("auto-eval/", views.auto_eval, name="auto-eval"),
    path("auto-eval/export.<str:fmt>", views.auto_eval_export, name="auto-eval-export"),
    path("try/", try_views.start, name="try"),
    path("try/<str:token>/", try_views.session, name="try-session"),
    path("try/<str:token>/state.json", try_views.session_state, name="try-state"),
    path("try/<str:token>/save/", try_views.save, name="try-save"),
]
