"""Does a question ask for a hidden fact's slot? The offline scorer: sentence embeddings plus lexical and
structural features, combined by a logistic model whose weights were fitted on the elicitation benchmark's DEV
split only (`benchmarks/tune_matcher.py`). Pure: numpy, no Django.

Why not embedding similarity at a threshold alone: on DEV its best question→fact F1 was 0.73 (TEST 0.71).
Questions share the task's topic words with every fact ("volunteers" in all of a recruitment task's slots),
paraphrase the slot ("How long will you have at the microphone?" for a toast length) or bundle several slots in
one sentence. The features below address each: similarity to the slot's name and to a canonical question about
it, the contrast with the question's best fact and with the request's own sentences, words the question shares
with the slot name but not with the request, whether the question's form fits the value's type ("how long" — a
duration), and the best clause of a compound question."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .facts import Fact, numbers, slot_description, words
from .matching import content_tokens, question_parts, split_sentences

FEATURES = (
    "sim_description",  # cosine(question, slot name + value-free fact text)
    "sim_slot_question",  # cosine(question, "What is the <slot>?")
    "sim_fact",  # cosine(question, fact text)
    "sim_best_part",  # best of the above over the question's clauses (compound questions)
    "gap_to_best",  # this fact's score minus the question's best fact score (≤ 0)
    "sim_given",  # best cosine(question, a sentence of the request)
    "slot_words",  # the question shares a slot-name word that the request does not use
    "type_fit",  # +1 the question's form fits the value's type, −1 it clashes, 0 unknown
    "value_words",  # share of the value's words in the question (echoes)
)

_DURATION = re.compile(r"\b(minutes?|hours?|days?|weeks?|months?|years?|seconds?)\b")
_MONEY = re.compile(r"[$€£]|\b(dollars?|euros?|pounds?|budget|fee|cost)\b")
_MONTHS = re.compile(
    r"\b(january|february|march|april|may|june|july|august|september|october|november|december|"
    r"monday|tuesday|wednesday|thursday|friday|saturday|sunday|spring|summer|autumn|fall|winter)\b"
)
_QUESTION_TYPES = (
    ("duration", re.compile(r"\bhow long\b|\bhow many (minutes|hours|days|weeks|months)\b|\btime limit\b")),
    ("money", re.compile(r"\bhow much\b.*\b(money|spend|cost|budget|invest|charge|pay|price)|\bbudget\b|\bspend\b|"
                         r"\bprice\b|\bcost\b|\bdollar|\bfee\b")),
    ("date", re.compile(r"\bwhen\b|\bwhat date\b|\bwhich date\b|\bdeadline\b|\bby what\b|\bwhat day\b")),
    ("count", re.compile(r"\bhow many\b|\bhow big\b|\bhow large\b|\bwhat number\b|\bnumber of\b|\bsize\b")),
    ("entity", re.compile(r"^\s*(who|which|where)\b|\bwho\b|\bwhich\b|\bwhere\b")),
)  # fmt: skip


def value_type(value: str) -> str:
    lowered = value.lower()
    if _MONEY.search(lowered):
        return "money"
    if _MONTHS.search(lowered):
        return "date"
    if numbers(value) and _DURATION.search(lowered):
        return "duration"
    if numbers(value):
        return "count"
    if re.search(r"\b[A-Z][a-z]+", value):
        return "entity"
    return "text"


def question_type(question: str) -> str:
    lowered = question.lower()
    for name, pattern in _QUESTION_TYPES:
        if pattern.search(lowered):
            return name
    return "open"


def type_fit(question: str, value: str) -> float:
    asked, given = question_type(question), value_type(value)
    if asked == "open" or given == "text":
        return 0.0
    compatible = {("count", "duration"), ("count", "money"), ("entity", "text"), ("date", "duration")}
    return 1.0 if asked == given or (asked, given) in compatible else -1.0


def slot_question(fact: Fact) -> str:
    return f"What is the {fact.slot}?"


@dataclass(frozen=True)
class SlotModel:
    """Logistic weights over FEATURES; `score` is the probability that a question asks for a fact."""

    weights: tuple[float, ...]
    bias: float

    def score(self, features: np.ndarray) -> np.ndarray:
        z = features @ np.asarray(self.weights) + self.bias
        return 1.0 / (1.0 + np.exp(-z))


def pair_features(
    questions: Sequence[str], facts: Sequence[Fact], masked_task: str, embed
) -> tuple[np.ndarray, np.ndarray]:
    """(features [questions × facts × FEATURES], best request-sentence similarity per question)."""
    n_q, n_f = len(questions), len(facts)
    feats = np.zeros((n_q, n_f, len(FEATURES)))
    given = split_sentences(masked_task)
    if not n_q:
        return feats, np.zeros(0)
    q_vec = embed(list(questions))
    sim_given = (q_vec @ embed(given).T).max(axis=1) if given else np.full(n_q, -1.0)
    if not n_f:
        return feats, sim_given
    desc = q_vec @ embed([slot_description(f) for f in facts]).T
    slotq = q_vec @ embed([slot_question(f) for f in facts]).T
    text = q_vec @ embed([f.text for f in facts]).T
    parts = [question_parts(q) for q in questions]
    flat = [p for ps in parts for p in ps[1:]]
    part_best = np.maximum(desc, slotq)
    if flat:
        p_vec = embed(flat)
        p_scores = np.maximum(
            p_vec @ embed([slot_description(f) for f in facts]).T, p_vec @ embed([slot_question(f) for f in facts]).T
        )
        row = 0
        for i, ps in enumerate(parts):
            for _ in ps[1:]:
                part_best[i] = np.maximum(part_best[i], p_scores[row])
                row += 1
    base = np.maximum(desc, slotq)
    best = base.max(axis=1, keepdims=True)
    known = content_tokens(masked_task)
    slot_only = [content_tokens(f.slot) - known for f in facts]
    value_sets = [set(words(f.value)) for f in facts]
    for i, question in enumerate(questions):
        q_tokens = content_tokens(question)
        q_words = set(words(question))
        for j, fact in enumerate(facts):
            feats[i, j] = (
                desc[i, j],
                slotq[i, j],
                text[i, j],
                part_best[i, j],
                base[i, j] - best[i, 0],
                sim_given[i],
                1.0 if q_tokens & slot_only[j] else 0.0,
                type_fit(question, fact.value),
                len(q_words & value_sets[j]) / len(value_sets[j]) if value_sets[j] else 0.0,
            )
    return feats, sim_given


# Fitted by benchmarks/tune_matcher.py on DEV (C=30, leave-one-task-out threshold 0.25); order of FEATURES.
DEFAULT_MODEL = SlotModel(
    weights=(-4.7313, 5.2591, 7.1073, 5.1494, 2.7967, -2.6597, 2.4199, 0.3954, 3.9405),
    bias=-5.2130,
)


class EmbeddingSlotScorer:
    """Scores (question, fact) pairs with `model` over the features above; request sentences by cosine."""

    name = "embedding"

    def __init__(self, threshold: float, model: SlotModel = DEFAULT_MODEL) -> None:
        from .embedding import embed

        self.threshold = threshold
        self.model = model
        self._embed = embed

    def prefetch(self, texts: Sequence[str]) -> None:
        self._embed(list(texts))

    def fact_scores(self, questions: Sequence[str], facts: Sequence[Fact], masked_task: str) -> np.ndarray:
        feats, _ = pair_features(questions, facts, masked_task, self._embed)
        return self.model.score(feats) if feats.size else np.zeros((len(questions), len(facts)))

    def given_scores(self, questions: Sequence[str], sentences: Sequence[str]) -> np.ndarray:
        if not questions or not sentences:
            return np.zeros((len(questions), len(sentences)))
        return self._embed(list(questions)) @ self._embed(list(sentences)).T

    def texts_for(self, questions: Sequence[str], facts: Sequence[Fact], masked_task: str) -> list[str]:
        parts = [p for q in questions for p in question_parts(q)[1:]]
        views = [v for f in facts for v in (slot_description(f), slot_question(f), f.text)]
        return [*questions, *parts, *views, *split_sentences(masked_task)]
