"""The information-elicitation reward and the frozen reward spec (see shared PAPER.md). Pure: no Django.

For a question set Q on one task, with the simulator's answers:

    reward = coverage − λ_redundant·redundant_share − λ_duplicate·duplicate_share
             − λ_length·max(0, |Q| − K) + λ_format·well_formed

* coverage: share of hidden facts revealed by the simulator's answers, each fact counted once; a fact whose
  value the question itself states (an echo: "Is the budget $6,000?") is confirmed, not revealed;
* redundant: a question the simulator answered from the masked request (it asked what was already said);
* duplicate: a question that reveals facts, all of which earlier questions already revealed, or that
  repeats an earlier question's wording;
* well_formed: 1 ≤ |Q| ≤ K, every question ends with '?', and at least one question is on-topic for the
  task (reveals a fact, is answered from the request, or shares a content word with the request or a slot) —
  so gibberish earns nothing.
"Genuinely new" information is therefore revealed, hidden, and not already given.

A `RewardSpec` (`training.rewardspec`) freezes every choice that changes the number (matcher, thresholds, K,
weights, simulator) under a version; runs, generation jobs and auto-evaluations store the spec they used, and
`build_simulator` is the one factory that turns a spec into a simulator. `trl_reward_functions` adapts the
reward to TRL's signature.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from .facts import Fact, as_facts, facts_of, value_conveyed
from .matching import content_tokens
from .parsing import parse_questions
from .rewardspec import (
    DEFAULT_SPEC,
    MATCHER_DEFAULTS,
    MATCHERS,
    NO_LIMIT,
    REWARD_SPEC_VERSION,
    RewardSpec,
    RewardWeights,
    build_simulator,
    default_spec,
    make_matcher,
    spec_for_run,
    spec_overrides_from_config,
)
from .simulator import FactLike, SimulationItem, UserSimulator

__all__ = [  # the spec lives in training.rewardspec; re-exported for callers of this module
    "DEFAULT_SPEC", "MATCHERS", "MATCHER_DEFAULTS", "NO_LIMIT", "REWARD_SPEC_VERSION", "RewardSpec", "RewardWeights",
    "build_simulator", "default_spec", "make_matcher", "spec_for_run", "spec_overrides_from_config",
]  # fmt: skip

if TYPE_CHECKING:
    from .backends import Backend


@dataclass(frozen=True)
class RewardBreakdown:
    reward: float
    coverage: float
    redundant_share: float
    duplicate_share: float
    excess_questions: int
    well_formed: bool
    on_topic: bool
    n_questions: int
    revealed: list[list[int]]  # per question, hidden-fact indices its answer revealed
    redundant: list[bool]  # per question, answered from the masked request
    answers: list[str]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _normalise(question: str) -> str:
    return re.sub(r"\W+", " ", question.lower()).strip()


def _clean_questions(questions: Sequence[str]) -> list[str]:
    return [q.strip() for q in questions if q and q.strip()]


def elicitation_reward(
    questions: Sequence[str],
    masked_task: str,
    hidden_facts: Sequence[FactLike],
    simulator: UserSimulator | None = None,
    spec: RewardSpec | None = None,
) -> RewardBreakdown:
    spec = spec or DEFAULT_SPEC
    simulator = simulator or build_simulator(spec)
    facts = as_facts(hidden_facts)
    questions = _clean_questions(questions)
    answers = simulator.answer_many([SimulationItem(questions, facts, masked_task)])[0] if questions else []
    return score_answers(questions, answers, masked_task, facts, spec)


def elicitation_rewards(
    items: Sequence[SimulationItem], simulator: UserSimulator, spec: RewardSpec
) -> list[RewardBreakdown]:
    """Many question sets at once: one batched simulator call (one embedding pass for a whole TRL batch)."""
    cleaned = [SimulationItem(_clean_questions(i.questions), as_facts(i.hidden_facts), i.masked_task) for i in items]
    answers = simulator.answer_many(cleaned)
    return [
        score_answers(list(i.questions), a, i.masked_task, list(i.hidden_facts), spec)
        for i, a in zip(cleaned, answers, strict=True)
    ]


def on_topic(question: str, masked_task: str, facts: Sequence[Fact]) -> bool:
    """Shares a content word with the request or with a hidden fact's slot name."""
    vocabulary = content_tokens(masked_task).union(*(content_tokens(f.slot) for f in facts))
    return bool(content_tokens(question) & vocabulary)


def score_answers(
    questions: Sequence[str], answers: Sequence[Any], masked_task: str, facts: Sequence[Fact], spec: RewardSpec
) -> RewardBreakdown:
    n = len(questions)
    weights = spec.weights
    revealed = [sorted(set(a.revealed)) for a in answers]
    # A question that already states a hidden value ("Is the budget $6,000?") elicits nothing the asker did not
    # know: the fact is confirmed, not revealed, and does not count towards coverage.
    revealed = [
        [j for j in hits if not value_conveyed(facts[j].value, question, slot=facts[j].slot)]
        for question, hits in zip(questions, revealed, strict=True)
    ]
    redundant_flags = [bool(getattr(a, "redundant", False)) for a in answers]
    seen_facts: set[int] = set()
    seen_wording: set[str] = set()
    redundant = duplicate = 0
    for question, hits, is_redundant in zip(questions, revealed, redundant_flags, strict=True):
        wording = _normalise(question)
        if wording in seen_wording or (hits and set(hits) <= seen_facts):
            duplicate += 1
        elif not hits and is_redundant:
            redundant += 1
        seen_facts.update(hits)
        seen_wording.add(wording)
    topical = any(revealed) or any(redundant_flags) or any(on_topic(q, masked_task, facts) for q in questions)
    coverage = len(seen_facts) / len(facts) if facts else 0.0
    excess = max(0, n - spec.k)
    well_formed = 1 <= n <= spec.k and all(q.endswith("?") for q in questions) and topical
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
        on_topic=topical,
        n_questions=n,
        revealed=revealed,
        redundant=redundant_flags,
        answers=[a.text for a in answers],
    )


def outline_covered(outline: str, hidden_facts: Sequence[FactLike], masked_task: str, spec: RewardSpec) -> list[int]:
    """Indices of the hidden facts whose values the outline conveys (not merely their topics)."""
    if not outline.strip():
        return []
    return [
        j
        for j, fact in enumerate(as_facts(hidden_facts))
        if value_conveyed(fact.value, outline, known=masked_task, slot=fact.slot, min_recall=spec.value_recall)
    ]


METRICS = ("reward", "coverage", "redundant_share", "duplicate_share", "outline_coverage")


@dataclass(frozen=True)
class CandidateInput:
    questions: Sequence[str]
    outline: str
    masked_task: str
    hidden_facts: Sequence[FactLike]


def candidates_scores(
    candidates: Sequence[CandidateInput], *, spec: RewardSpec, simulator: UserSimulator
) -> list[dict[str, float]]:
    """The automatic metrics of many candidates under one spec, with one batched simulator call (auto-eval,
    the demo check, benchmarks)."""
    items = [SimulationItem(c.questions, as_facts(c.hidden_facts), c.masked_task) for c in candidates]
    scores = []
    for cand, breakdown in zip(candidates, elicitation_rewards(items, simulator, spec), strict=True):
        facts = as_facts(cand.hidden_facts)
        covered = outline_covered(cand.outline, facts, cand.masked_task, spec)
        scores.append(
            {
                "reward": breakdown.reward,
                "coverage": breakdown.coverage,
                "redundant_share": breakdown.redundant_share,
                "duplicate_share": breakdown.duplicate_share,
                "outline_coverage": len(covered) / len(facts) if facts else 0.0,
            }
        )
    return scores


def candidate_scores(
    *,
    questions: Sequence[str],
    outline: str,
    masked_task: str,
    hidden_facts: Sequence[FactLike],
    spec: RewardSpec,
    simulator: UserSimulator,
) -> dict[str, float]:
    """The automatic metrics of one candidate under one spec."""
    [scores] = candidates_scores(
        [CandidateInput(questions, outline, masked_task, hidden_facts)], spec=spec, simulator=simulator
    )
    return scores


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
_CONFIG_KEYS = {"spec", "weights", "simulator", "terms", "concise_chars", "concise_requires_on_topic"}


def reward_config_problems(config: dict[str, Any] | None) -> list[str]:
    """Everything wrong with a run's reward configuration, as messages a researcher can act on."""
    config = config or {}
    if not isinstance(config, dict):
        return ["reward configuration must be a JSON object"]
    problems = [f"unknown reward configuration key {k!r}" for k in sorted(set(config) - _CONFIG_KEYS)]
    if not isinstance(config.get("spec", {}), dict) or not isinstance(config.get("weights", {}), dict):
        return [*problems, "reward spec and weights must be JSON objects"]
    try:
        spec = spec_for_run(config)
    except (TypeError, ValueError) as exc:
        problems.append(f"reward spec: {exc}")
    else:
        for name, value in asdict(spec.weights).items():
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                problems.append(f"reward weight {name!r} must be a non-negative number, not {value!r}")
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


def reward_setup(
    config: dict[str, Any] | None, spec: RewardSpec | None = None, *, judge_backend: Backend | None = None
) -> tuple[list[Callable[..., list[float]]], list[float]]:
    """TRL reward functions and their weights (`GRPOConfig.reward_weights`) from a run's reward config.

    `spec` is the run's frozen spec (stored on the run); without it, the config's overrides of the evaluation
    spec. The coverage term is always computed (it is the number researchers read) but weighs 0 unless asked."""
    problems = reward_config_problems(config)
    if problems:
        raise ValueError("; ".join(problems))
    config = config or {}
    spec = spec or spec_for_run(config)
    terms = {"coverage": 0.0, **config.get("terms", {"elicitation": 1.0})}
    names = [name for name in REWARD_TERMS if name in terms]
    functions = trl_reward_functions(
        spec,
        build_simulator(spec, judge_backend=judge_backend),
        terms=names,
        concise_chars=config.get("concise_chars", 400),
        concise_requires_on_topic=config.get("concise_requires_on_topic", True),
    )
    return functions, [float(terms[name]) for name in names]


def trl_reward_functions(
    spec: RewardSpec | None = None,
    simulator: UserSimulator | None = None,
    *,
    terms: Sequence[str] = ("elicitation", "coverage"),
    concise_chars: int = 400,
    concise_requires_on_topic: bool = True,
) -> list[Callable[..., list[float]]]:
    """Reward functions for `GRPOTrainer(reward_funcs=...)`, one per term, in the order asked:

    * elicitation — the full elicitation reward; it also logs its parts through TRL's `log_metric`;
    * coverage — its coverage part alone (give it weight 0 in `reward_weights` to only log it);
    * concise — 1 − characters / `concise_chars` (floored at 0) for completions that ask at least one on-topic
      question (`RewardBreakdown.on_topic`, the format bonus's condition), else 0: a shaping term must not
      reward silence or gibberish. Only tests of the training machinery on a random-weight model (which never
      asks anything) turn the gate off.

    The dataset must carry `masked_task` and `hidden_facts` columns (and may carry `fact_slots`, the
    parallel slot/value list); TRL forwards them as kwargs."""
    spec = spec or DEFAULT_SPEC
    simulator = simulator or build_simulator(spec)
    # TRL calls every reward function with the same completions list: score each batch once.
    cache: dict[str, Any] = {"completions": None, "breakdowns": None}

    def _breakdowns(completions: list[Any], masked_task: list[str], hidden_facts: list[list[str]], kwargs: dict):
        if cache["completions"] is not completions:
            slots = kwargs.get("fact_slots") or [None] * len(completions)
            items = [
                SimulationItem(parse_questions(completion_text(c)), facts_of(list(facts), fs), task)
                for c, task, facts, fs in zip(completions, masked_task, hidden_facts, slots, strict=True)
            ]
            cache["breakdowns"] = elicitation_rewards(items, simulator, spec)
            cache["completions"] = completions
        return cache["breakdowns"]

    def elicitation(
        prompts: list[Any], completions: list[Any], masked_task: list[str], hidden_facts: list[list[str]], **kwargs: Any
    ) -> list[float]:
        breakdowns = _breakdowns(completions, masked_task, hidden_facts, kwargs)
        log_metric = kwargs.get("log_metric")
        if log_metric and breakdowns:
            n = len(breakdowns)
            log_metric("elicitation/redundant_share", sum(b.redundant_share for b in breakdowns) / n)
            log_metric("elicitation/duplicate_share", sum(b.duplicate_share for b in breakdowns) / n)
            log_metric("elicitation/well_formed", sum(b.well_formed for b in breakdowns) / n)
            log_metric("elicitation/on_topic", sum(b.on_topic for b in breakdowns) / n)
            log_metric("elicitation/questions", sum(b.n_questions for b in breakdowns) / n)
        return [b.reward for b in breakdowns]

    def coverage(
        prompts: list[Any], completions: list[Any], masked_task: list[str], hidden_facts: list[list[str]], **kwargs: Any
    ) -> list[float]:
        return [b.coverage for b in _breakdowns(completions, masked_task, hidden_facts, kwargs)]

    def concise(
        prompts: list[Any], completions: list[Any], masked_task: list[str], hidden_facts: list[list[str]], **kwargs: Any
    ) -> list[float]:
        breakdowns = _breakdowns(completions, masked_task, hidden_facts, kwargs)
        return [
            max(0.0, 1.0 - len(completion_text(c)) / concise_chars)
            if b.on_topic or not concise_requires_on_topic
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
