"""Admin for systems, generation and training, one module per area."""

from __future__ import annotations

from . import core, runs  # noqa: F401
