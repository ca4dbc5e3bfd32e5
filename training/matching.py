"""Question ↔ fact matching. Pure: numpy only, no Django.

A matcher answers: for each question, which of these facts does it ask about? The user simulator and the
elicitation reward both use one, so "revealed" means the same thing at training time and at evaluation.
`LexicalMatcher` is deterministic and dependency-free (tests, quick rewards); the embedding matcher in
`training.simulator` uses all-MiniLM-L6-v2 sentence embeddings."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

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
    def match(self, questions: Sequence[str], facts: Sequence[str]) -> list[list[int]]:
        """For each question, the indices of the facts it asks about (possibly none)."""
        ...


class LexicalMatcher:
    """A question asks about a fact when enough of the smaller side's content words are shared."""

    def __init__(self, threshold: float = 0.5, min_shared: int = 1) -> None:
        self.threshold = threshold
        self.min_shared = min_shared

    def score(self, question: str, fact: str) -> float:
        q, f = content_tokens(question), content_tokens(fact)
        if not q or not f:
            return 0.0
        shared = len(q & f)
        if shared < self.min_shared:
            return 0.0
        return shared / min(len(q), len(f))

    def match(self, questions: Sequence[str], facts: Sequence[str]) -> list[list[int]]:
        return [[i for i, fact in enumerate(facts) if self.score(q, fact) >= self.threshold] for q in questions]


def split_sentences(text: str) -> list[str]:
    parts = re.split(r"(?<=[.!?;])\s+|\n+", text)
    return [p.strip() for p in parts if len(p.strip()) > 3]
