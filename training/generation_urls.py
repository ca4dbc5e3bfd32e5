"""Researcher-facing generation pages (staff only), mounted at /generation/."""

from __future__ import annotations

app_name = "generation"

urlpatterns: list = []
