"""Celery tasks of the training app (Celery autodiscovers this module): thin wrappers, one per area."""

from __future__ import annotations

from .generation_tasks import *  # noqa: F403
from .run_tasks import *  # noqa: F403
