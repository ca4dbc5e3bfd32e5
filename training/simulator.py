"""The simulated user: answers clarification questions only from the task's hidden facts.

Pure-ish: no Django. Each hidden fact has a slot (what it is about) and a value (what the user knows).
`SlotSimulator` reveals a fact only when the question asks about its slot, and answers with the value in a
sentence; a question about an absent slot gets "not specified"; a generic catch-all ("Anything else?")
reveals nothing unless configured to; a question about what the masked request already says is answered
from the request and marked redundant — it elicits nothing. `LLMSimulator` lets a model play the user.
`build_simulator` (in `training.rewards`) is the one factory that generation, training and evaluation use."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .facts import Fact, as_facts, slot_description, value_conveyed
from .matching import LexicalMatcher, Matcher, is_catch_all, question_parts, split_sentences

if TYPE_CHECKING:
    from .backends import Backend

NOT_SPECIFIED = "No preference / not specified."
FactLike = str | Fact | Mapping[str, Any]


@dataclass(frozen=True)
class SimulatedAnswer:
    text: str
    revealed: list[int] = field(default_factory=list)  # indices into hidden_facts
    redundant: bool = False  # answered from what the masked request already says


class UserSimulator(Protocol):
    def answer(
        self, questions: Sequence[str], hidden_facts: Sequence[FactLike], masked_task: str = ""
    ) -> list[SimulatedAnswer]: ...

    def answer_many(self, items: Sequence[SimulationItem]) -> list[list[SimulatedAnswer]]: ...


@dataclass(frozen=True)
class SimulationItem:
    """One task's questions for a batched simulator call."""

    questions: Sequence[str]
    hidden_facts: Sequence[FactLike]
    masked_task: str = ""


def value_sentence(fact: Fact) -> str:
    """The fact stated as a sentence that contains its value."""
    if fact.value.lower() in fact.text.lower():
        return fact.text
    return f"The {fact.slot} is {fact.value}."


class SlotScorer(Protocol):
    """Scores how much each question asks for each fact's slot, and for each sentence of the request."""

    threshold: float

    def fact_scores(self, questions: Sequence[str], facts: Sequence[Fact], masked_task: str) -> Any: ...

    def given_scores(self, questions: Sequence[str], sentences: Sequence[str]) -> Any: ...


class MatcherScorer:
    """Any matcher as a scorer: questions against the facts' slot descriptions and the request's sentences."""

    def __init__(self, matcher: Matcher) -> None:
        self.matcher = matcher
        self.threshold = matcher.threshold

    def fact_scores(self, questions: Sequence[str], facts: Sequence[Fact], masked_task: str) -> Any:
        return self.given_scores(questions, [slot_description(f) for f in facts])

    def given_scores(self, questions: Sequence[str], sentences: Sequence[str]) -> Any:
        if not questions or not sentences:
            return np.zeros((len(questions), len(sentences)))
        return np.asarray(self.matcher.similarities(list(questions), list(sentences)), dtype=float)

    def prefetch(self, texts: Sequence[str]) -> None:
        prefetch = getattr(self.matcher, "prefetch", None)
        if prefetch is not None:
            prefetch(texts)

    def texts_for(self, questions: Sequence[str], facts: Sequence[Fact], masked_task: str) -> list[str]:
        return [*questions, *map(slot_description, facts), *split_sentences(masked_task)]


class SlotSimulator:
    """Answers from slot/value facts with one scorer over the facts' slots and the request's sentences.

    A fact is revealed when the question's score for its slot reaches the scorer's threshold, is within
    `spread` of the question's best fact score, is not beaten by more than `given_margin` by a sentence of the
    request (then the request answers it), and is among the question's best facts, one per clause: a question
    about one slot does not drag in its neighbours, a compound one ("How long, and for whom?") may reveal two.
    A question that reveals nothing but whose best request sentence scores `redundant_threshold` or more is
    answered from the request and marked redundant."""

    def __init__(
        self,
        matcher: Matcher | SlotScorer | None = None,
        *,
        redundant_threshold: float | None = None,
        spread: float = math.inf,
        given_margin: float = math.inf,
        catch_all_reveals: bool = False,
    ) -> None:
        matcher = matcher or LexicalMatcher()
        self.scorer: SlotScorer = matcher if hasattr(matcher, "fact_scores") else MatcherScorer(matcher)  # type: ignore[assignment]
        self.redundant_threshold = self.scorer.threshold if redundant_threshold is None else redundant_threshold
        self.spread = spread
        self.given_margin = given_margin
        self.catch_all_reveals = catch_all_reveals

    def answer(
        self, questions: Sequence[str], hidden_facts: Sequence[FactLike], masked_task: str = ""
    ) -> list[SimulatedAnswer]:
        return self.answer_many([SimulationItem(questions, hidden_facts, masked_task)])[0]

    def answer_many(self, items: Sequence[SimulationItem]) -> list[list[SimulatedAnswer]]:
        tasks = [(list(i.questions), as_facts(i.hidden_facts), i.masked_task) for i in items]
        prefetch = getattr(self.scorer, "prefetch", None)
        if prefetch is not None:
            # One model pass for the whole batch (a TRL step, an evaluation); the per-task scoring then hits a cache.
            prefetch([t for q, facts, masked in tasks if q for t in self.scorer.texts_for(q, facts, masked)])  # type: ignore[attr-defined]
        return [self._answer(questions, facts, masked) for questions, facts, masked in tasks]

    def _answer(self, questions: list[str], facts: list[Fact], masked_task: str) -> list[SimulatedAnswer]:
        if not questions:
            return []
        given = split_sentences(masked_task)
        if facts:
            fact_scores = np.asarray(self.scorer.fact_scores(questions, facts, masked_task), dtype=float)
        else:
            fact_scores = np.zeros((len(questions), 0))
        given_scores = np.asarray(self.scorer.given_scores(questions, given), dtype=float)
        threshold = self.scorer.threshold
        answers = []
        for i, question in enumerate(questions):
            if not self.catch_all_reveals and is_catch_all(question):
                answers.append(SimulatedAnswer(NOT_SPECIFIED))
                continue
            best_given = float(given_scores[i].max()) if given else -math.inf
            row = fact_scores[i]
            hits = [j for j in range(len(facts)) if row[j] >= threshold]
            if hits:
                best = max(row[j] for j in hits)
                hits = [j for j in hits if row[j] >= best - self.spread and row[j] >= best_given - self.given_margin]
                # One clause asks for one slot: a question reveals at most one fact per clause, its best ones.
                clauses = max(1, len(question_parts(question)) - 1)
                hits = sorted(sorted(hits, key=lambda j: -row[j])[:clauses])
            if hits:
                answers.append(SimulatedAnswer(" ".join(value_sentence(facts[j]) for j in hits), hits))
            elif given and best_given >= self.redundant_threshold:
                sentence = given[int(given_scores[i].argmax())]
                answers.append(SimulatedAnswer(f"As I said: {sentence}", [], redundant=True))
            else:
                answers.append(SimulatedAnswer(NOT_SPECIFIED))
        return answers


SIMULATOR_PROMPT_VERSION = "sim-v1"
SIMULATOR_SYSTEM_PROMPT = (
    "You are role-playing the user who wrote the request below. You know some private facts about what "
    "you want. Answer the assistant's clarification question using ONLY these facts. Answer only what is "
    "asked: never mention a fact the question does not ask about. If none of the facts answers the "
    f"question, reply exactly: {NOT_SPECIFIED}\n"
    "Reply in one or two short sentences, in the first person, with no preamble."
)


def simulator_prompt(question: str, hidden_facts: Sequence[FactLike], masked_task: str) -> list[dict[str, str]]:
    facts = "\n".join(f"- {value_sentence(fact)}" for fact in as_facts(hidden_facts)) or "- (none)"
    user = f"Your request:\n{masked_task}\n\nYour private facts:\n{facts}\n\nThe assistant asks: {question}"
    return [{"role": "system", "content": SIMULATOR_SYSTEM_PROMPT}, {"role": "user", "content": user}]


_REFUSAL = re.compile(r"^\W*(no preference|not specified|i don't know|no particular)", re.IGNORECASE)


def _is_refusal(text: str) -> bool:
    # Short refusals only: "No preference on tone, but the budget is $5,000." still reveals the budget.
    return bool(_REFUSAL.match(text)) and len(text.split()) <= 6


class LLMSimulator:
    """A language model plays the user, prompted with the hidden facts (any backend).

    `revealed` is not taken on the model's word: a fact counts as revealed when the answer states its value,
    so an answer that leaks a fact counts, and a refusal reveals none. A question that reveals nothing and
    that `matcher` links to a sentence of the request is redundant."""

    def __init__(self, backend: Backend, params: dict[str, Any] | None = None, matcher: Matcher | None = None) -> None:
        self.backend = backend
        self.params = {"temperature": 0.0, "max_new_tokens": 64, **(params or {})}
        self.matcher = matcher or LexicalMatcher()
        self.prompt_tokens = 0
        self.completion_tokens = 0

    def answer(
        self, questions: Sequence[str], hidden_facts: Sequence[FactLike], masked_task: str = ""
    ) -> list[SimulatedAnswer]:
        return self.answer_many([SimulationItem(questions, hidden_facts, masked_task)])[0]

    def answer_many(self, items: Sequence[SimulationItem]) -> list[list[SimulatedAnswer]]:
        prompts = [simulator_prompt(q, item.hidden_facts, item.masked_task) for item in items for q in item.questions]
        results = iter(self.backend.generate(prompts, self.params)) if prompts else iter(())
        answers: list[list[SimulatedAnswer]] = []
        for item in items:
            facts = as_facts(item.hidden_facts)
            given = split_sentences(item.masked_task)
            per_task = []
            for question in item.questions:
                result = next(results)
                self.prompt_tokens += result.prompt_tokens
                self.completion_tokens += result.completion_tokens
                text = result.text.strip() or NOT_SPECIFIED
                revealed: list[int] = []
                if not _is_refusal(text):
                    revealed = [
                        j
                        for j, f in enumerate(facts)
                        if value_conveyed(f.value, text, known=item.masked_task, slot=f.slot)
                    ]
                redundant = not revealed and bool(given) and bool(self.matcher.match([question], given)[0])
                per_task.append(SimulatedAnswer(text, revealed, redundant=redundant))
            answers.append(per_task)
        return answers
