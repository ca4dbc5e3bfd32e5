"""Researcher-facing training pages (staff only), mounted at /training/."""

from __future__ import annotations

app_name = "training"

urlpatterns: list = []
