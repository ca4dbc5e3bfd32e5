from __future__ import annotations

import numpy as np
import pytest

from training.embedding import EmbeddingMatcher
from training.facts import Fact
from training.judge import JUDGE_PROMPT_VERSION, LLMJudgeMatcher
from training.rewards import DEFAULT_SPEC, build_simulator
from training.simulator import NOT_SPECIFIED, LLMSimulator, SimulationItem, SlotSimulator

from .scripted import ScriptedBackend

FACTS = [
    Fact("The budget is $5,000.", "budget", "$5,000"),
    Fact("The deadline is March 3.", "deadline", "March 3"),
    Fact("It must be written in Spanish.", "language", "Spanish"),
    Fact("The trip is for two adults and a toddler.", "travellers", "two adults and a toddler"),
]
MASKED = "Plan a one-week family trip to Japan. We want to see Kyoto and Tokyo."


@pytest.fixture(scope="module")
def simulator() -> SlotSimulator:
    sim = build_simulator(DEFAULT_SPEC)
    assert isinstance(sim, SlotSimulator)
    return sim


def test_a_paraphrased_question_reveals_its_slot_and_the_answer_states_the_value(simulator):
    answers = simulator.answer(["How much money can we spend?", "When is it due?"], FACTS, MASKED)
    assert [a.revealed for a in answers] == [[0], [1]]
    assert answers[0].text == "The budget is $5,000."
    assert "March 3" in answers[1].text


def test_a_question_about_an_absent_slot_gets_not_specified(simulator):
    questions = ["What tone do you want?", "Which airline do you prefer?"]
    answers = simulator.answer(questions, FACTS, MASKED)
    assert [a.revealed for a in answers] == [[], []]
    assert all(a.text == NOT_SPECIFIED and not a.redundant for a in answers)


def test_a_catch_all_reveals_nothing(simulator):
    [answer] = simulator.answer(["Is there anything else I should know?"], FACTS, MASKED)
    assert answer.revealed == []
    assert answer.text == NOT_SPECIFIED


def test_a_question_about_what_the_request_says_is_redundant_and_answered_from_it(simulator):
    [answer] = simulator.answer(["Which cities do you want to visit?"], FACTS, MASKED)
    assert answer.redundant
    assert answer.revealed == []
    assert "Kyoto and Tokyo" in answer.text


class FixedScorer:
    """Every question scores 0.9 for the budget and the deadline: the simulator's rules decide the rest."""

    threshold = 0.5

    def fact_scores(self, questions, facts, masked_task):
        return np.array([[0.9, 0.8, 0.1, 0.1] for _ in questions])

    def given_scores(self, questions, sentences):
        return np.zeros((len(questions), len(sentences)))


def test_a_one_clause_question_reveals_one_fact_and_a_compound_one_one_per_clause():
    simulator = SlotSimulator(FixedScorer())
    single, compound = simulator.answer(
        ["What budget and deadline do you have?", "How much can you spend, and when is it due?"], FACTS, MASKED
    )
    assert single.revealed == [0]  # its best slot only
    assert compound.revealed == [0, 1]
    assert compound.text == "The budget is $5,000. The deadline is March 3."


def test_the_embedding_matcher_threshold_is_configurable():
    assert EmbeddingMatcher(threshold=0.99).match(["How much money can we spend?"], ["budget"]) == [[]]
    assert EmbeddingMatcher(threshold=-1.0).match(["How much money can we spend?"], ["budget", "deadline"]) == [[0, 1]]


def judge_reply(messages):
    topic, question = (line.split(": ", 1)[1] for line in messages[-1]["content"].splitlines()[:2])
    return "Yes." if topic.split(":")[0] in question.lower() else "no"


def test_the_llm_judge_asks_per_question_and_slot_greedily_and_caches_its_verdicts():
    backend = ScriptedBackend(judge_reply)
    cache: dict[str, bool] = {}
    judge = LLMJudgeMatcher(backend, cache=cache)
    simulator = SlotSimulator(judge)
    [first] = simulator.answer_many([SimulationItem(["What is the budget?", "What tone?"], FACTS, "")])
    assert [a.revealed for a in first] == [[0], []]
    assert len(backend.calls) == 1
    assert len(backend.calls[0]) == 2 * len(FACTS)
    assert "budget" in backend.calls[0][0][-1]["content"]
    assert backend.calls[0][0][0]["content"].endswith("Reply with exactly one word: yes or no.")
    assert len(cache) == 2 * len(FACTS)
    again = SlotSimulator(LLMJudgeMatcher(backend, cache=cache)).answer(["What is the budget?"], FACTS)
    assert again[0].revealed == [0]
    assert len(backend.calls) == 1  # every verdict came from the cache
    assert JUDGE_PROMPT_VERSION == "judge-v1"


def test_the_llm_judge_is_asked_with_temperature_zero():
    seen = []

    class Recording(ScriptedBackend):
        def generate(self, prompts, params):
            seen.append(params)
            return super().generate(prompts, params)

    LLMJudgeMatcher(Recording(judge_reply)).match(["What is the budget?"], ["budget"])
    assert seen[0]["temperature"] == 0.0


def test_llm_simulator_prompts_with_the_hidden_facts_and_checks_the_value_in_the_answer():
    def user(messages):
        question = messages[-1]["content"].rsplit("The assistant asks: ", 1)[1]
        return "Our budget is $5,000." if "budget" in question else NOT_SPECIFIED

    backend = ScriptedBackend(user)
    simulator = LLMSimulator(backend)
    [answers] = simulator.answer_many([SimulationItem(["What is your budget?", "What tone?"], FACTS, "Plan a trip.")])
    assert [a.revealed for a in answers] == [[0], []]
    assert answers[1].text == NOT_SPECIFIED
    [call] = backend.calls  # both questions in one batched model call
    assert len(call) == 2
    prompt = call[0][0]["content"] + call[0][1]["content"]
    assert all(fact.text in prompt for fact in FACTS)
    assert "Answer only what is asked" in prompt


def test_llm_simulator_counts_a_leaked_value_as_revealed_even_if_unasked():
    simulator = LLMSimulator(ScriptedBackend(lambda m: "No idea about tone, but it must be written in Spanish."))
    [answer] = simulator.answer(["What tone?"], FACTS)
    assert answer.revealed == [2]
