from __future__ import annotations

import pytest

from training.embedding import EmbeddingMatcher
from training.simulator import NOT_SPECIFIED, LLMSimulator, MatcherSimulator, SimulationItem

from .scripted import ScriptedBackend

FACTS = [
    "The budget is $5,000.",
    "The deadline is March 3.",
    "It must be written in Spanish.",
    "The trip is for two adults and a toddler.",
]


@pytest.fixture(scope="module")
def embedding() -> EmbeddingMatcher:
    return EmbeddingMatcher()


def test_embedding_simulator_reveals_the_matching_fact_for_a_paraphrased_question(embedding):
    simulator = MatcherSimulator(embedding)
    answers = simulator.answer(["How much money can we spend?", "When is it due?"], FACTS)
    assert answers[0].revealed == [0]
    assert answers[0].text == "The budget is $5,000."
    assert answers[1].revealed == [1]


def test_embedding_simulator_never_reveals_a_fact_nobody_asked_about(embedding):
    simulator = MatcherSimulator(embedding)
    questions = ["What tone do you want?", "Do you have any preferences?", "What format should the outline use?"]
    answers = simulator.answer(questions, FACTS)
    assert [a.revealed for a in answers] == [[], [], []]
    assert all(a.text == NOT_SPECIFIED for a in answers)
    assert not any(fact in a.text for a in answers for fact in FACTS)


def test_embedding_matcher_threshold_is_configurable(embedding):
    assert EmbeddingMatcher(threshold=0.99).match(["How much money can we spend?"], FACTS) == [[]]
    assert EmbeddingMatcher(threshold=-1.0).match(["How much money can we spend?"], FACTS) == [[0, 1, 2, 3]]


def test_llm_simulator_prompts_with_the_hidden_facts_and_matches_the_answer_text():
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
    assert all(fact in prompt for fact in FACTS)
    assert "Answer only what is asked" in prompt
    assert NOT_SPECIFIED in prompt


def test_llm_simulator_counts_a_leaked_fact_as_revealed_even_if_unasked():
    simulator = LLMSimulator(ScriptedBackend(lambda m: "No idea about tone, but it must be written in Spanish."))
    [answer] = simulator.answer(["What tone?"], FACTS)
    assert answer.revealed == [2]
