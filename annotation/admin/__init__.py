"""Admin for the human-evaluation side, one module per area (imported here so Django discovers them)."""

from __future__ import annotations

from . import (
    core,  # noqa: F401
    goal,  # noqa: F401  (after core: it extends the registered StudyAdmin)
    judging,  # noqa: F401
    results,  # noqa: F401  (after core: it extends the registered StudyAdmin)
    study_answers,  # noqa: F401  (after core: answer items, transcripts, and a Study action)
)
