from __future__ import annotations

import pytest

from training.matching import LexicalMatcher
from training.rewards import RewardWeights, elicitation_reward, trl_reward_functions
from training.simulator import NOT_SPECIFIED, MatcherSimulator

FACTS = [
    "The budget is capped at $250,000 over two years.",
    "The audience is hospital administrators.",
    "The deadline is March 3.",
    "Reviewers favour mixed-methods evaluation.",
]
MASKED = "Write a grant proposal outline for our telehealth pilot. It targets rural clinics in Oregon."
NO_FORMAT = RewardWeights(format=0.0)


def test_coverage_counts_each_hidden_fact_once():
    result = elicitation_reward(["What is the budget?", "Who is the audience?"], MASKED, FACTS, weights=NO_FORMAT)
    assert result.coverage == pytest.approx(2 / 4)
    assert result.reward == pytest.approx(0.5)
    assert result.revealed == [[0], [1]]


def test_asking_about_what_the_masked_task_states_is_penalised_as_redundant():
    questions = ["What is the budget?", "Which rural clinics in Oregon are targeted?"]
    result = elicitation_reward(questions, MASKED, FACTS, weights=NO_FORMAT)
    assert result.redundant_share == pytest.approx(1 / 2)
    assert result.reward == pytest.approx(1 / 4 - 0.5 * 1 / 2)


def test_a_question_revealing_nothing_new_is_penalised_as_duplicate():
    questions = ["What is the budget?", "How large is the budget cap?"]
    result = elicitation_reward(questions, MASKED, FACTS, weights=NO_FORMAT)
    assert result.revealed == [[0], [0]]
    assert result.duplicate_share == pytest.approx(1 / 2)
    assert result.reward == pytest.approx(1 / 4 - 0.25 * 1 / 2)


def test_repeated_wording_is_a_duplicate_even_when_it_reveals_nothing():
    result = elicitation_reward(["Any colour preference?", "Any colour preference?"], MASKED, FACTS, weights=NO_FORMAT)
    assert result.duplicate_share == pytest.approx(1 / 2)


def test_questions_beyond_k_cost_per_extra_question():
    questions = [f"Question number {i} about cats?" for i in range(7)]
    weights = RewardWeights(format=0.0, max_questions=5, length=0.1)
    result = elicitation_reward(questions, MASKED, FACTS, weights=weights)
    assert result.excess_questions == 2
    assert result.reward == pytest.approx(-0.2)


def test_the_format_term_rewards_one_to_k_well_formed_questions():
    good = elicitation_reward(["Who is the audience?"], MASKED, FACTS)
    bad = elicitation_reward(["Tell me the audience"], MASKED, FACTS)
    none = elicitation_reward([], MASKED, FACTS)
    assert good.well_formed
    assert not bad.well_formed
    assert not none.well_formed
    assert good.reward - bad.reward == pytest.approx(0.1)
    assert none.reward == 0.0


def test_the_simulator_never_volunteers_a_fact_nobody_asked_about():
    answers = MatcherSimulator().answer(["What colour should the slides be?"], FACTS)
    assert answers[0].text == NOT_SPECIFIED
    assert answers[0].revealed == []


def test_unknown_weights_are_refused():
    with pytest.raises(ValueError, match="unknown reward weight"):
        RewardWeights.from_dict({"coverage": 2})


def test_trl_adapters_accept_plain_and_chat_completions():
    elicitation, coverage = trl_reward_functions(MatcherSimulator(LexicalMatcher()))
    completions = ["1. What is the budget?\n2. Who is the audience?", [{"role": "assistant", "content": "Deadline?"}]]
    kwargs = {"masked_task": [MASKED, MASKED], "hidden_facts": [FACTS, FACTS]}
    assert coverage(prompts=["p", "p"], completions=completions, **kwargs) == pytest.approx([0.5, 0.25])
    rewards = elicitation(prompts=["p", "p"], completions=completions, **kwargs)
    assert rewards[0] == pytest.approx(0.5 + 0.1)


@pytest.mark.slow
def test_the_reward_can_use_the_embedding_simulator_for_paraphrases():
    from training.rewards import simulator_from_name

    simulator = simulator_from_name("embedding")
    result = elicitation_reward(["How much money can we spend in total?"], MASKED, FACTS, simulator, NO_FORMAT)
    assert result.revealed == [[0]]
    assert result.coverage == pytest.approx(1 / 4)
