"""A scripted model for tests that need predictable text (a stand-in for a model, not for infrastructure)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from training.backends import GenerationResult


class ScriptedBackend:
    name = "scripted"
    model = "scripted"

    def __init__(self, reply: Callable[[list[dict[str, str]]], str]) -> None:
        self.reply = reply
        self.calls: list[list[list[dict[str, str]]]] = []

    def generate(self, prompts: Sequence[list[dict[str, str]]], params: dict[str, Any]) -> list[GenerationResult]:
        self.calls.append([list(p) for p in prompts])
        return [GenerationResult(self.reply(list(p)), 5, 3) for p in prompts]
