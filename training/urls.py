"""Researcher-facing training pages (staff only), mounted at /training/."""

from __future__ import annotations

from django.urls import path

from . import views_runs

app_name = "training"

urlpatterns = [
    path("runs/<int:pk>/progress.json", views_runs.run_progress, name="run_progress"),
    path("runs/<int:pk>/curve.svg", views_runs.run_curve, name="run_curve"),
]
