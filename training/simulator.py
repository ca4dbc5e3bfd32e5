"""The simulated user: answers clarification questions only from the task's hidden facts.

Pure-ish: no Django. `MatcherSimulator` answers with the facts a matcher links to each question, else
"No preference / not specified." — it never volunteers a fact that no question asked about."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .matching import LexicalMatcher, Matcher

NOT_SPECIFIED = "No preference / not specified."


@dataclass(frozen=True)
class SimulatedAnswer:
    text: str
    revealed: list[int] = field(default_factory=list)  # indices into hidden_facts


class UserSimulator(Protocol):
    matcher: Matcher

    def answer(
        self, questions: Sequence[str], hidden_facts: Sequence[str], masked_task: str = ""
    ) -> list[SimulatedAnswer]: ...


class MatcherSimulator:
    """Reveals a hidden fact exactly when the matcher says a question asks about it."""

    def __init__(self, matcher: Matcher | None = None) -> None:
        self.matcher = matcher or LexicalMatcher()

    def answer(
        self, questions: Sequence[str], hidden_facts: Sequence[str], masked_task: str = ""
    ) -> list[SimulatedAnswer]:
        if not questions:
            return []
        matches = self.matcher.match(questions, hidden_facts) if hidden_facts else [[] for _ in questions]
        return [
            SimulatedAnswer(" ".join(hidden_facts[i] for i in idx) if idx else NOT_SPECIFIED, list(idx))
            for idx in matches
        ]
