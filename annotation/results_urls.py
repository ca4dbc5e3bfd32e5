"""Researcher-facing results pages (staff only), mounted at /results/."""

from __future__ import annotations

app_name = "results"

urlpatterns: list = []
