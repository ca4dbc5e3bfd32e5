"""People's answers, in character, scored with the same simulator interface and matcher as the reward.

Pure: no Django. `score_transcript` is the one adapter between human answer sets and the reward: the same
frozen `RewardSpec`, its simulator (`build_simulator`) and `elicitation_reward` score the simulated answers, and
a person's answer reveals a fact when it states the fact's value (the reward's own value check, as for
outlines) or the spec's matcher links the answer to the fact. The simulator-fidelity report, the `answers`
export and auto-eval all call it, so one spec changes them together."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .facts import as_facts, value_conveyed
from .matching import Matcher
from .pipeline import OUTLINE_PROMPT_VERSION, PipelineOutput, clean_text, outline_prompt
from .rewards import RewardSpec, build_simulator, default_spec, elicitation_reward, make_matcher
from .simulator import NOT_SPECIFIED, FactLike, SimulatedAnswer, SimulationItem, UserSimulator

if TYPE_CHECKING:
    from .backends import Backend

# What a "the card doesn't say" answer reads as in a transcript (and to the outline writer): the same words
# the simulator uses, so an outline prompt cannot tell a person's refusal from the simulator's.
DOESNT_SAY_TEXT = NOT_SPECIFIED


@dataclass(frozen=True)
class HumanAnswer:
    text: str
    doesnt_say: bool = False

    @property
    def as_text(self) -> str:
        return DOESNT_SAY_TEXT if self.doesnt_say else self.text


def fidelity_matcher(spec: RewardSpec | None = None) -> Matcher:
    """The matcher that links a person's answer to the facts it states: the spec's own (the LLM judge falls
    back to the embedding matcher, which needs no model server)."""
    spec = spec or default_spec()
    if spec.matcher not in ("embedding", "lexical"):
        spec = spec.with_overrides({"matcher": "embedding"})
    return make_matcher(spec)


def matcher_named(name: str) -> Matcher:
    """The evaluation spec's matcher of that name ("embedding" or "lexical", with its tuned threshold)."""
    return fidelity_matcher(default_spec().with_overrides({"matcher": name}))


class HumanAnswerReplay:
    """A "simulator" that replays a person's answers; a fact counts as revealed when the answer states its
    value or the matcher links the answer text to the fact, and "doesn't say" reveals nothing."""

    def __init__(self, answers: Sequence[HumanAnswer], matcher: Matcher) -> None:
        self.answers = list(answers)
        self.matcher = matcher

    def answer(
        self, questions: Sequence[str], hidden_facts: Sequence[FactLike], masked_task: str = ""
    ) -> list[SimulatedAnswer]:
        if len(questions) != len(self.answers):
            raise ValueError(f"{len(self.answers)} human answers for {len(questions)} questions")
        facts = as_facts(hidden_facts)
        spoken = [(i, a.text) for i, a in enumerate(self.answers) if not a.doesnt_say and a.text.strip()]
        hits: dict[int, list[int]] = {}
        if spoken and facts:
            matched = self.matcher.match([t for _, t in spoken], [f.text for f in facts])
            for (i, text), found in zip(spoken, matched, strict=True):
                stated = [j for j, f in enumerate(facts) if value_conveyed(f.value, text, slot=f.slot)]
                hits[i] = sorted(set(found) | set(stated))
        return [SimulatedAnswer(a.as_text, hits.get(i, [])) for i, a in enumerate(self.answers)]

    def answer_many(self, items: Sequence[SimulationItem]) -> list[list[SimulatedAnswer]]:
        return [self.answer(item.questions, item.hidden_facts, item.masked_task) for item in items]


@dataclass(frozen=True)
class TranscriptScore:
    """Per question, the hidden-fact indices revealed by the person and by the simulator; and the
    elicitation reward (with its coverage) computed from each."""

    human_revealed: list[list[int]]
    simulated_revealed: list[list[int]]
    simulated_answers: list[str]
    human_reward: float
    simulated_reward: float
    human_coverage: float
    simulated_coverage: float


def score_transcript(
    *,
    questions: Sequence[str],
    masked_task: str,
    hidden_facts: Sequence[FactLike],
    answers: Sequence[HumanAnswer],
    matcher: Matcher | None = None,
    spec: RewardSpec | None = None,
    simulator: UserSimulator | None = None,
) -> TranscriptScore:
    """The adapter. Questions are scored as given (blank ones are not dropped: each has a human answer)."""
    spec = spec or default_spec()
    simulator = simulator or build_simulator(spec)
    matcher = matcher or fidelity_matcher(spec)
    questions = [q.strip() or "?" for q in questions]
    human = elicitation_reward(questions, masked_task, hidden_facts, HumanAnswerReplay(answers, matcher), spec)
    simulated = elicitation_reward(questions, masked_task, hidden_facts, simulator, spec)
    return TranscriptScore(
        human_revealed=human.revealed,
        simulated_revealed=simulated.revealed,
        simulated_answers=simulated.answers,
        human_reward=human.reward,
        simulated_reward=simulated.reward,
        human_coverage=human.coverage,
        simulated_coverage=simulated.coverage,
    )


@dataclass(frozen=True)
class AnsweredTask:
    """One task's questions with a person's answers, for the outline writer."""

    key: str
    masked_task: str
    questions: list[str]
    answers: list[HumanAnswer]


def write_outlines(items: Sequence[AnsweredTask], *, backend: Backend, params: dict[str, Any]) -> list[PipelineOutput]:
    """The pipeline's last stage with people's answers in place of the simulator's: one batched call."""
    gen_params = {k: v for k, v in params.items() if k not in {"max_questions", "chunk_size"}}
    started = time.perf_counter()
    results = (
        backend.generate(
            [outline_prompt(i.masked_task, i.questions, [a.as_text for a in i.answers]) for i in items], gen_params
        )
        if items
        else []
    )
    seconds = time.perf_counter() - started
    outputs = []
    for item, result in zip(items, results, strict=True):
        outputs.append(
            PipelineOutput(
                key=item.key,
                questions=list(item.questions),
                answers=[clean_text(a.as_text) for a in item.answers],
                outline=clean_text(result.text),
                error=result.error,
                metadata={
                    "backend": getattr(backend, "name", ""),
                    "model": getattr(backend, "model", ""),
                    "prompt_versions": {"outline": OUTLINE_PROMPT_VERSION},
                    "answers_by": "human",
                    "prompt_tokens": result.prompt_tokens,
                    "completion_tokens": result.completion_tokens,
                    "batch_size": len(items),
                    "latency_s": round(seconds / max(1, len(items)), 4),
                },
            )
        )
    return outputs
