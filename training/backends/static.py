"""The `static` backend: a system whose outputs are imported, never generated."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import BackendError, GenerationResult, Messages


class StaticBackend:
    name = "static"

    def __init__(self, model: str = "") -> None:
        self.model = model

    def generate(self, prompts: Sequence[Messages], params: dict[str, Any]) -> list[GenerationResult]:
        raise BackendError(
            "this system uses the static backend: its candidates are imported "
            "(manage.py import_candidates), not generated. Choose a transformers, vllm or openai system."
        )
