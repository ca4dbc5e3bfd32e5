"""Celery tasks for candidate generation (queue: generation)."""

from __future__ import annotations

__all__: list[str] = []
