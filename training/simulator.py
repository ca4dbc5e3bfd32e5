"""The simulated user: answers clarification questions only from the task's hidden facts.

Pure-ish: no Django. `MatcherSimulator` answers with the facts a matcher links to each question, else
"No preference / not specified." — it never volunteers a fact that no question asked about."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from .matching import LexicalMatcher, Matcher

if TYPE_CHECKING:
    from .backends import Backend

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

    def answer_many(self, items: Sequence[SimulationItem]) -> list[list[SimulatedAnswer]]:
        return [self.answer(item.questions, item.hidden_facts, item.masked_task) for item in items]


@dataclass(frozen=True)
class SimulationItem:
    """One task's questions for a batched simulator call."""

    questions: Sequence[str]
    hidden_facts: Sequence[str]
    masked_task: str = ""


SIMULATOR_SYSTEM_PROMPT = (
    "You are role-playing the user who wrote the request below. You know some private facts about what "
    "you want. Answer the assistant's clarification question using ONLY these facts. Answer only what is "
    "asked: never mention a fact the question does not ask about. If none of the facts answers the "
    f"question, reply exactly: {NOT_SPECIFIED}\n"
    "Reply in one or two short sentences, in the first person, with no preamble."
)


def simulator_prompt(question: str, hidden_facts: Sequence[str], masked_task: str) -> list[dict[str, str]]:
    facts = "\n".join(f"- {fact}" for fact in hidden_facts) or "- (none)"
    user = f"Your request:\n{masked_task}\n\nYour private facts:\n{facts}\n\nThe assistant asks: {question}"
    return [{"role": "system", "content": SIMULATOR_SYSTEM_PROMPT}, {"role": "user", "content": user}]


_REFUSAL = re.compile(r"^\W*(no preference|not specified|i don't know|no particular)", re.IGNORECASE)


def _is_refusal(text: str) -> bool:
    # Short refusals only: "No preference on tone, but the budget is $5,000." still reveals the budget.
    return bool(_REFUSAL.match(text)) and len(text.split()) <= 6


class LLMSimulator:
    """A language model plays the user, prompted with the hidden facts (any backend).

    `revealed` is not taken on the model's word: the answer text is matched against the hidden facts
    with `matcher`, so an answer that leaks a fact counts as revealing it, and a refusal reveals none."""

    def __init__(self, backend: Backend, params: dict[str, Any] | None = None, matcher: Matcher | None = None) -> None:
        self.backend = backend
        self.params = {"temperature": 0.0, "max_new_tokens": 64, **(params or {})}
        self.matcher = matcher or LexicalMatcher()
        self.prompt_tokens = 0
        self.completion_tokens = 0

    def answer(
        self, questions: Sequence[str], hidden_facts: Sequence[str], masked_task: str = ""
    ) -> list[SimulatedAnswer]:
        return self.answer_many([SimulationItem(questions, hidden_facts, masked_task)])[0]

    def answer_many(self, items: Sequence[SimulationItem]) -> list[list[SimulatedAnswer]]:
        prompts = [simulator_prompt(q, item.hidden_facts, item.masked_task) for item in items for q in item.questions]
        results = iter(self.backend.generate(prompts, self.params)) if prompts else iter(())
        answers: list[list[SimulatedAnswer]] = []
        for item in items:
            per_task = []
            for _ in item.questions:
                result = next(results)
                self.prompt_tokens += result.prompt_tokens
                self.completion_tokens += result.completion_tokens
                text = result.text.strip() or NOT_SPECIFIED
                revealed: list[int] = []
                if item.hidden_facts and not _is_refusal(text):
                    revealed = sorted(set(self.matcher.match([text], item.hidden_facts)[0]))
                per_task.append(SimulatedAnswer(text, revealed))
            answers.append(per_task)
        return answers
