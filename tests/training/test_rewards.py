from __future__ import annotations

import json

import pytest

from training.facts import Fact
from training.rewards import (
    DEFAULT_SPEC,
    RewardSpec,
    RewardWeights,
    build_simulator,
    elicitation_reward,
    outline_covered,
    reward_config_problems,
    spec_for_run,
    trl_reward_functions,
)
from training.simulator import NOT_SPECIFIED

FACTS = [
    Fact("The budget is capped at $250,000 over two years.", "budget", "$250,000 over two years"),
    Fact("The audience is hospital administrators.", "audience", "hospital administrators"),
    Fact("The deadline is March 3.", "deadline", "March 3"),
    Fact("Reviewers favour mixed-methods evaluation.", "evaluation method", "mixed-methods evaluation"),
]
MASKED = "Write a grant proposal outline for our telehealth pilot. It targets rural clinics in Oregon."
LEXICAL = RewardSpec(matcher="lexical")
NO_FORMAT = LEXICAL.with_overrides({"weights": {"format": 0.0}})


def reward(questions, spec=NO_FORMAT, facts=FACTS, masked=MASKED):
    return elicitation_reward(questions, masked, facts, build_simulator(spec), spec)


def test_coverage_counts_each_hidden_fact_once():
    result = reward(["What is the budget?", "Who is the audience?", "What budget do you have?"])
    assert result.revealed == [[0], [1], [0]]
    assert result.coverage == pytest.approx(2 / 4)


def test_the_answer_states_the_value_in_a_sentence():
    result = reward(["What is the budget?", "What colour should the slides be?"])
    assert result.answers == ["The budget is capped at $250,000 over two years.", NOT_SPECIFIED]


def test_a_question_about_what_the_request_says_is_answered_from_it_and_penalised_as_redundant():
    result = reward(["What is the budget?", "Which rural clinics in Oregon are targeted?"])
    assert result.redundant == [False, True]
    assert result.answers[1].startswith("As I said: It targets rural clinics in Oregon")
    assert result.revealed[1] == []
    assert result.reward == pytest.approx(1 / 4 - 0.5 * 1 / 2)


def test_a_question_revealing_nothing_new_is_penalised_as_duplicate():
    result = reward(["What is the budget?", "How large is the budget cap?"])
    assert result.revealed == [[0], [0]]
    assert result.duplicate_share == pytest.approx(1 / 2)
    assert result.reward == pytest.approx(1 / 4 - 0.25 * 1 / 2)


def test_repeated_wording_is_a_duplicate_even_when_it_reveals_nothing():
    assert reward(["Any colour preference?", "Any colour preference?"]).duplicate_share == pytest.approx(1 / 2)


def test_questions_beyond_k_cost_per_extra_question():
    spec = NO_FORMAT.with_overrides({"k": 5})
    result = reward([f"Question number {i} about cats?" for i in range(7)], spec)
    assert result.excess_questions == 2
    assert result.reward == pytest.approx(-0.2)


def test_the_format_bonus_needs_an_on_topic_question_so_gibberish_earns_nothing():
    good = reward(["Who is the audience?"], LEXICAL)
    unpunctuated = reward(["Tell me the audience"], LEXICAL)
    gibberish = reward(["florp wibble snazz?", "qwe zzzv?"], LEXICAL)
    none = reward([], LEXICAL)
    assert good.well_formed
    assert good.on_topic
    assert not unpunctuated.well_formed
    assert good.reward - unpunctuated.reward == pytest.approx(0.1)
    assert not gibberish.on_topic
    assert not gibberish.well_formed
    assert gibberish.reward == 0.0
    assert none.reward == 0.0


def test_an_on_topic_question_about_an_absent_slot_still_earns_the_format_bonus():
    result = reward(["What tone and style should the proposal use for its reviewers?"], LEXICAL)
    assert result.revealed == [[]]
    assert result.on_topic
    assert result.reward == pytest.approx(0.1)


def test_a_catch_all_reveals_nothing_unless_the_spec_says_so():
    facts = [Fact("Other requirements: it must be printable.", "other requirements", "printable")]
    assert reward(["Any other requirements?"], LEXICAL, facts).revealed == [[]]
    revealing = LEXICAL.with_overrides({"catch_all_reveals": True})
    assert reward(["Any other requirements?"], revealing, facts).revealed == [[0]]


def test_a_question_that_states_the_hidden_value_confirms_it_but_elicits_nothing():
    echo = reward(["Is the budget capped at $250,000 over two years?"])
    asked = reward(["What is the budget?"])
    assert echo.revealed == [[]]
    assert echo.coverage == 0.0
    assert asked.coverage == pytest.approx(1 / 4)


def test_plain_string_facts_still_work_with_a_derived_slot():
    result = reward(["What is the budget?"], NO_FORMAT, ["The budget is $5,000.", "The deadline is March 3."])
    assert result.revealed == [[0]]
    assert result.answers == ["The budget is $5,000."]


def test_outline_coverage_needs_the_value_not_the_topic():
    topics_only = "- Budget: to be confirmed\n- Audience: TBD\n- Deadline: check\n- Evaluation approach: open"
    values = "- $250K over 2 years\n- For hospital administrators\n- Due 3 March\n- Mixed-methods evaluation"
    assert outline_covered(topics_only, FACTS, MASKED, DEFAULT_SPEC) == []
    assert outline_covered(values, FACTS, MASKED, DEFAULT_SPEC) == [0, 1, 2, 3]
    assert outline_covered("- Budget: $300,000 over two years", FACTS, MASKED, DEFAULT_SPEC) == []


def test_the_spec_is_frozen_versioned_and_fills_in_its_matchers_defaults():
    spec = RewardSpec()
    assert spec.matcher == "embedding"
    assert spec.threshold is not None
    assert spec.version == "reward-v2"
    with pytest.raises(AttributeError):
        spec.k = 3  # type: ignore[misc]
    stored = json.loads(json.dumps(spec.as_dict()))
    assert RewardSpec.from_dict(stored) == spec
    assert RewardSpec.from_dict(stored).digest == spec.digest
    lexical = spec.with_overrides({"matcher": "lexical"})
    assert lexical.threshold == RewardSpec(matcher="lexical").threshold != spec.threshold
    assert ("matcher", "lexical", "embedding") in lexical.differences(spec)
    assert spec.with_overrides({"weights": {"format": 0.0}}).weights == RewardWeights(format=0.0)


def test_bad_specs_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="unknown reward spec field"):
        RewardSpec.from_dict({"colour": "red"})
    with pytest.raises(ValueError, match="unknown reward weight"):
        RewardWeights.from_dict({"coverage": 2})
    with pytest.raises(ValueError, match="unknown matcher"):
        RewardSpec(matcher="psychic")
    with pytest.raises(ValueError, match="judge_system"):
        RewardSpec(matcher="llm")
    assert reward_config_problems({"spec": {"k": 0}}) == [
        "reward spec: k (max questions) must be a positive integer, not 0"
    ]


def test_a_run_uses_the_evaluation_spec_unless_its_config_overrides_it():
    assert spec_for_run({"terms": {"elicitation": 1.0}}) == DEFAULT_SPEC
    legacy = spec_for_run({"simulator": "lexical", "weights": {"max_questions": 4, "redundant": 1.0}})
    assert (legacy.matcher, legacy.k, legacy.weights.redundant) == ("lexical", 4, 1.0)
    assert spec_for_run({"spec": {"k": 3}}).k == 3


def test_trl_adapters_accept_plain_and_chat_completions_and_slot_columns():
    elicitation, coverage = trl_reward_functions(LEXICAL)
    completions = ["1. What is the budget?\n2. Who is the audience?", [{"role": "assistant", "content": "Deadline?"}]]
    texts = [f.text for f in FACTS]
    slots = [{"slot": f.slot, "value": f.value} for f in FACTS]
    kwargs = {"masked_task": [MASKED, MASKED], "hidden_facts": [texts, texts], "fact_slots": [slots, slots]}
    assert coverage(prompts=["p", "p"], completions=completions, **kwargs) == pytest.approx([0.5, 0.25])
    rewards = elicitation(prompts=["p", "p"], completions=completions, **kwargs)
    assert rewards[0] == pytest.approx(0.5 + 0.1)


@pytest.mark.slow
def test_the_default_spec_matches_paraphrases_with_embeddings():
    result = elicitation_reward(["How much money can we spend in total?"], MASKED, FACTS)
    assert result.revealed == [[0]]
