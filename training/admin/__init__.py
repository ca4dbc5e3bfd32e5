"""Admin for systems, generation and training, one module per area."""

from __future__ import annotations

from . import core, generation, runs  # noqa: F401
