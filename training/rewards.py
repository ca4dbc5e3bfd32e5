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


def asks_on_topic(breakdown: RewardBreakdown) -> bool:
    """At least one question is about the task: it reveals a hidden fact or asks about what the request says."""
    return any(breakdown.revealed) or breakdown.redundant_share > 0


def completion_text(completion: Any) -> str:
    """TRL passes plain strings for standard datasets and message lists for conversational ones."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        return "\n".join(str(m.get("content", "")) for m in completion if isinstance(m, dict))
    if isinstance(completion, dict):
        return str(completion.get("content", ""))
    return str(completion)


REWARD_TERMS = ("elicitation", "coverage", "concise")
SIMULATORS = ("lexical", "embedding")
_CONFIG_KEYS = {"weights", "simulator", "terms", "concise_chars", "concise_requires_on_topic"}


def simulator_from_name(name: str = "lexical") -> UserSimulator:
    """The lexical matcher by default (cheap per rollout); "embedding" uses all-MiniLM-L6-v2, as generation and
    auto-eval do by default."""
    if name == "lexical":
        return MatcherSimulator()
    if name == "embedding":
        from .embedding import EmbeddingMatcher

        return MatcherSimulator(EmbeddingMatcher())
    raise ValueError(f"unknown simulator {name!r} (choose from {', '.join(SIMULATORS)})")


def reward_config_problems(config: dict[str, Any] | None) -> list[str]:
    """Everything wrong with a run's reward configuration, as messages a researcher can act on."""
    config = config or {}
    if not isinstance(config, dict):
        return ["reward configuration must be a JSON object"]
    problems = [f"unknown reward configuration key {k!r}" for k in sorted(set(config) - _CONFIG_KEYS)]
    try:
        weights = RewardWeights.from_dict(config.get("weights"))
    except (TypeError, ValueError) as exc:
        problems.append(f"reward weights: {exc}")
    else:
        for name, value in asdict(weights).items():
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                problems.append(f"reward weight {name!r} must be a non-negative number, not {value!r}")
        if isinstance(weights.max_questions, int | float) and weights.max_questions < 1:
            problems.append("reward weight 'max_questions' must be at least 1")
    if config.get("simulator", "lexical") not in SIMULATORS:
        problems.append(f"unknown simulator {config.get('simulator')!r} (choose from {', '.join(SIMULATORS)})")
    terms = config.get("terms", {"elicitation": 1.0})
    if not isinstance(terms, dict) or not terms:
        problems.append('reward terms must be an object like {"elicitation": 1.0}')
    else:
        for name, value in terms.items():
            if name not in REWARD_TERMS:
                problems.append(f"unknown reward term {name!r} (choose from {', '.join(REWARD_TERMS)})")
            elif not isinstance(value, int | float) or isinstance(value, bool):
                problems.append(f"reward term {name!r} needs a numeric weight, not {value!r}")
        if all(not isinstance(v, int | float) or v == 0 for v in terms.values()):
            problems.append("at least one reward term needs a non-zero weight")
    if not isinstance(config.get("concise_requires_on_topic", True), bool):
        problems.append("concise_requires_on_topic must be true or false")
    chars = config.get("concise_chars", 400)
    if not isinstance(chars, int) or chars < 1:
        problems.append("concise_chars must be a positive integer")
    return problems


def reward_setup(config: dict[str, Any] | None) -> tuple[list[Callable[..., list[float]]], list[float]]:
    """TRL reward functions and their weights (`GRPOConfig.reward_weights`) from a run's reward config.

    The coverage term is always computed (it is the number researchers read) but weighs 0 unless asked for."""
    problems = reward_config_problems(config)
    if problems:
        raise ValueError("; ".join(problems))
    config = config or {}
    terms = {"coverage": 0.0, **config.get("terms", {"elicitation": 1.0})}
    names = [name for name in REWARD_TERMS if name in terms]
    functions = trl_reward_functions(
        simulator_from_name(config.get("simulator", "lexical")),
        RewardWeights.from_dict(config.get("weights")),
        terms=names,
        concise_chars=config.get("concise_chars", 400),
        concise_requires_on_topic=config.get("concise_requires_on_topic", True),
    )
    return functions, [float(terms[name]) for name in names]


def trl_reward_functions(
    simulator: UserSimulator | None = None,
    weights: RewardWeights | None = None,
    *,
    terms: Sequence[str] = ("elicitation", "coverage"),
    concise_chars: int = 400,
    concise_requires_on_topic: bool = True,
) -> list[Callable[..., list[float]]]:
    """Reward functions for `GRPOTrainer(reward_funcs=...)`, one per term, in the order asked:

    * elicitation — the full elicitation reward; it also logs its parts through TRL's `log_metric`;
    * coverage — its coverage part alone (give it weight 0 in `reward_weights` to only log it);
    * concise — 1 − characters / `concise_chars` (floored at 0) for completions that ask at least one on-topic
      question (`asks_on_topic`), else 0: a shaping term that must not reward silence or gibberish. Only tests of
      the training machinery on a random-weight model (which never asks anything) turn the gate off.

    The dataset must carry `masked_task` and `hidden_facts` columns; TRL forwards them as kwargs."""
    simulator = simulator or MatcherSimulator()
    weights = weights or RewardWeights()
    # TRL calls every reward function with the same completions list: score each batch once.
    cache: dict[str, Any] = {"completions": None, "breakdowns": None}

    def _breakdowns(completions: list[Any], masked_task: list[str], hidden_facts: list[list[str]]):
        if cache["completions"] is not completions:
            cache["breakdowns"] = [
                elicitation_reward(parse_questions(completion_text(c)), task, list(facts), simulator, weights)
                for c, task, facts in zip(completions, masked_task, hidden_facts, strict=True)
            ]
            cache["completions"] = completions
        return cache["breakdowns"]

    def elicitation(
        prompts: list[Any], completions: list[Any], masked_task: list[str], hidden_facts: list[list[str]], **kwargs: Any
    ) -> list[float]:
        breakdowns = _breakdowns(completions, masked_task, hidden_facts)
        log_metric = kwargs.get("log_metric")
        if log_metric and breakdowns:
            n = len(breakdowns)
            log_metric("elicitation/redundant_share", sum(b.redundant_share for b in breakdowns) / n)
            log_metric("elicitation/duplicate_share", sum(b.duplicate_share for b in breakdowns) / n)
            log_metric("elicitation/well_formed", sum(b.well_formed for b in breakdowns) / n)
            log_metric("elicitation/questions", sum(b.n_questions for b in breakdowns) / n)
        return [b.reward for b in breakdowns]

    def coverage(
        prompts: list[Any], completions: list[Any], masked_task: list[str], hidden_facts: list[list[str]], **kwargs: Any
    ) -> list[float]:
        return [b.coverage for b in _breakdowns(completions, masked_task, hidden_facts)]

    def concise(
        prompts: list[Any], completions: list[Any], masked_task: list[str], hidden_facts: list[list[str]], **kwargs: Any
    ) -> list[float]:
        # Only for completions that ask something on-topic: otherwise brevity would reward saying nothing.
        breakdowns = _breakdowns(completions, masked_task, hidden_facts)
        return [
            max(0.0, 1.0 - len(completion_text(c)) / concise_chars)
            if asks_on_topic(b) or not concise_requires_on_topic
            else 0.0
            for c, b in zip(completions, breakdowns, strict=True)
        ]

    elicitation.__name__ = "elicitation_reward"
    coverage.__name__ = "coverage"
    concise.__name__ = "concise"
    available = {"elicitation": elicitation, "coverage": coverage, "concise": concise}
    unknown = [t for t in terms if t not in available]
    if unknown:
        raise ValueError(f"unknown reward term(s): {', '.join(unknown)}")
    return [available[t] for t in terms]
