"""Researcher-facing results pages (staff only), mounted at /results/."""

from __future__ import annotations

from django.urls import path

from . import results

app_name = "results"

urlpatterns = [
    path("<slug:slug>/", results.study_results, name="study"),
    path("<slug:slug>/download/<str:fmt>/", results.study_download, name="download"),
]
