"""Celery tasks for training runs (queue: training)."""

from __future__ import annotations

__all__: list[str] = []
