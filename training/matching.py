"""Question ↔ topic matching. Pure: numpy only, no Django.

A matcher answers: for each question, which of these targets does it ask about? The user simulator gives it
slot descriptions of the hidden facts (`facts.slot_description`) and the sentences of the masked request, so
"revealed" and "redundant" mean the same thing at training time and at evaluation. Every matcher scores
(question, target) pairs (`similarities`) and matches at its `threshold`:

* `LexicalMatcher` — shared content words; deterministic and dependency-free (tests, quick rewards);
* `EmbeddingMatcher` (`training.embedding`) — all-MiniLM-L6-v2 cosine similarity;
* `LLMJudgeMatcher` (`training.judge`) — a model asked yes/no per pair, verdicts cached by hash."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

STOPWORDS = frozenset(
    """a an the and or but if then than of to in on at by for with from as is are was were be been being
    do does did doing have has had having will would should could can may might must shall i you he she it
    we they me him her us them my your his its our their this that these those what which who whom whose
    when where why how any all each every some such no nor not only own same so too very just also there
    here about into over under again further once more most other please tell let know like want need
    yes okay ok sure thanks thank much many way would you're i'm it's what's there's do you does your
    specific specifically particular kind sort type thing things something anything""".split()
)
_TOKEN = re.compile(r"[a-z0-9$€£%][a-z0-9$€£%,.'-]*[a-z0-9%]|[a-z0-9]")


def content_tokens(text: str) -> set[str]:
    tokens = set()
    for raw in _TOKEN.findall(text.lower()):
        token = raw.strip(".,'-")
        if not token or token in STOPWORDS:
            continue
        for suffix in ("ing", "ed", "es", "s"):
            if len(token) > len(suffix) + 3 and token.endswith(suffix):
                token = token[: -len(suffix)]
                if suffix in ("ing", "ed") and len(token) > 3 and token[-1] == token[-2]:
                    token = token[:-1]  # capped -> cap, planning -> plan
                break
        tokens.add(token)
    return tokens


class Matcher(Protocol):
    name: str
    threshold: float

    def similarities(self, questions: Sequence[str], targets: Sequence[str]) -> Any:
        """A (questions × targets) array of scores; a pair matches when its score reaches `threshold`."""
        ...

    def match(self, questions: Sequence[str], targets: Sequence[str]) -> list[list[int]]:
        """For each question, the indices of the targets it asks about (possibly none)."""
        ...


def match_at_threshold(scores: Any, threshold: float) -> list[list[int]]:
    return [[int(j) for j in np.flatnonzero(row >= threshold)] for row in np.asarray(scores)]


class LexicalMatcher:
    """A question asks about a fact when enough of the smaller side's content words are shared."""

    name = "lexical"

    def __init__(self, threshold: float = 0.5, min_shared: int = 1) -> None:
        self.threshold = threshold
        self.min_shared = min_shared

    def similarities(self, questions: Sequence[str], targets: Sequence[str]) -> Any:
        scores = np.zeros((len(questions), len(targets)))
        for i, question in enumerate(questions):
            for j, target in enumerate(targets):
                scores[i, j] = self.score(question, target)
        return scores

    def score(self, question: str, fact: str) -> float:
        q, f = content_tokens(question), content_tokens(fact)
        if not q or not f:
            return 0.0
        shared = len(q & f)
        if shared < self.min_shared:
            return 0.0
        return shared / min(len(q), len(f))

    def match(self, questions: Sequence[str], targets: Sequence[str]) -> list[list[int]]:
        return match_at_threshold(self.similarities(questions, targets), self.threshold)


_CLAUSE = re.compile(
    r",\s*(?:and\s+|or\s+)?|\s+(?:and|or)\s+(?=(?:how|what|when|where|who|which|is|are|do|does|will|can|should)\b)"
)


def question_parts(question: str) -> list[str]:
    """The question and, for a compound one, its clauses ("How long…, how many…, and who…?")."""
    parts = [p.strip() for p in _CLAUSE.split(question) if len(p.strip().split()) >= 2]
    return [question, *parts] if len(parts) > 1 else [question]


def split_sentences(text: str) -> list[str]:
    parts = re.split(r"(?<=[.!?;])\s+|\n+", text)
    return [p.strip() for p in parts if len(p.strip()) > 3]


# A catch-all asks for nothing in particular: "Anything else I should know?", "Any other requirements?".
_CATCH_ALL = re.compile(r"\b(anything|any|other|else|additional|further|extra|more)\b", re.IGNORECASE)
_GENERIC = frozenset(
    "else other additional extra further anything info information detail details requirement requirements "
    "preference preferences constraint constraints consideration considerations context "
    "add mention aware keep mind note should cover include consider".split()
)


def is_catch_all(question: str) -> bool:
    """A generic question that names no topic of its own ("Anything else?", "Any other requirements?")."""
    return bool(_CATCH_ALL.search(question)) and not (content_tokens(question) - _GENERIC)
