"""The information-elicitation reward (see shared PAPER.md). Pure: no Django.

For a question set Q on one task:

    reward = coverage − λ_redundant·redundant_share − λ_duplicate·duplicate_share
             − λ_length·max(0, |Q| − K) + λ_format·well_formed

* coverage: share of hidden facts revealed by the simulator's answers, each fact counted once;
* redundant: a question that reveals no hidden fact but asks about what the masked task already states;
* duplicate: a question that reveals facts, all of which earlier questions already revealed, or that
  repeats an earlier question's wording;
* well_formed: 1 ≤ |Q| ≤ K and every question ends with '?'.
"Genuinely new" information is therefore revealed, hidden, and not already given.

`trl_reward_functions` adapts this to TRL's reward-function signature `(prompts, completions, **kw)`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from .matching import split_sentences
from .parsing import parse_questions
from .simulator import MatcherSimulator, UserSimulator


@dataclass(frozen=True)
class RewardWeights:
    redundant: float = 0.5
    duplicate: float = 0.25
    length: float = 0.1
    format: float = 0.1
    max_questions: int = 5

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> RewardWeights:
        data = dict(data or {})
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown reward weight(s): {', '.join(sorted(unknown))}")
        return cls(**data)


@dataclass(frozen=True)
class RewardBreakdown:
    reward: float
    coverage: float
    redundant_share: float
    duplicate_share: float
    excess_questions: int
    well_formed: bool
    n_questions: int
    revealed: list[list[int]]  # per question, hidden-fact indices its answer revealed
    answers: list[str]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _normalise(question: str) -> str:
    return re.sub(r"\W+", " ", question.lower()).strip()


def elicitation_reward(
    questions: Sequence[str],
    masked_task: str,
    hidden_facts: Sequence[str],
    simulator: UserSimulator | None = None,
    weights: RewardWeights | None = None,
) -> RewardBreakdown:
    simulator = simulator or MatcherSimulator()
    weights = weights or RewardWeights()
    questions = [q.strip() for q in questions if q and q.strip()]
    n = len(questions)
    answers = simulator.answer(questions, hidden_facts, masked_task)
    revealed = [sorted(set(a.revealed)) for a in answers]

    given = split_sentences(masked_task)
    asks_given = simulator.matcher.match(questions, given) if given and n else [[] for _ in questions]

    seen_facts: set[int] = set()
    seen_wording: set[str] = set()
    redundant = duplicate = 0
    for question, facts, given_hits in zip(questions, revealed, asks_given, strict=True):
        wording = _normalise(question)
        if wording in seen_wording or (facts and set(facts) <= seen_facts):
            duplicate += 1
        elif not facts and given_hits:
            redundant += 1
        seen_facts.update(facts)
        seen_wording.add(wording)

    coverage = len(seen_facts) / len(hidden_facts) if hidden_facts else 0.0
    excess = max(0, n - weights.max_questions)
    well_formed = 1 <= n <= weights.max_questions and all(q.endswith("?") for q in questions)
    reward = (
        coverage
        - weights.redundant * (redundant / n if n else 0.0)
        - weights.duplicate * (duplicate / n if n else 0.0)
        - weights.length * excess
        + weights.format * float(well_formed)
    )
    return RewardBreakdown(
        reward=reward,
        coverage=coverage,
        redundant_share=redundant / n if n else 0.0,
        duplicate_share=duplicate / n if n else 0.0,
        excess_questions=excess,
        well_formed=well_formed,
        n_questions=n,
        revealed=revealed,
        answers=[a.text for a in answers],
    )


def completion_text(completion: Any) -> str:
    """TRL passes plain strings for standard datasets and message lists for conversational ones."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        return "\n".join(str(m.get("content", "")) for m in completion if isinstance(m, dict))
    if isinstance(completion, dict):
        return str(completion.get("content", ""))
    return str(completion)


def trl_reward_functions(
    simulator: UserSimulator | None = None, weights: RewardWeights | None = None
) -> list[Callable[..., list[float]]]:
    """Reward functions for `GRPOTrainer(reward_funcs=...)`: the elicitation reward, plus its coverage
    and format parts as separate functions with weight 0 in `reward_weights` if you only want them logged.

    The dataset must carry `masked_task` and `hidden_facts` columns; TRL forwards them as kwargs."""
    simulator = simulator or MatcherSimulator()
    weights = weights or RewardWeights()

    def _breakdowns(completions: list[Any], masked_task: list[str], hidden_facts: list[list[str]]):
        return [
            elicitation_reward(parse_questions(completion_text(c)), task, list(facts), simulator, weights)
            for c, task, facts in zip(completions, masked_task, hidden_facts, strict=True)
        ]

    def elicitation(
        prompts: list[Any], completions: list[Any], masked_task: list[str], hidden_facts: list[list[str]], **kwargs: Any
    ) -> list[float]:
        return [b.reward for b in _breakdowns(completions, masked_task, hidden_facts)]

    def coverage(
        prompts: list[Any], completions: list[Any], masked_task: list[str], hidden_facts: list[list[str]], **kwargs: Any
    ) -> list[float]:
        return [b.coverage for b in _breakdowns(completions, masked_task, hidden_facts)]

    elicitation.__name__ = "elicitation_reward"
    coverage.__name__ = "coverage"
    return [elicitation, coverage]
