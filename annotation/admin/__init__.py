"""Admin for the human-evaluation side, one module per area (imported here so Django discovers them)."""

from __future__ import annotations

from . import core, judging  # noqa: F401
