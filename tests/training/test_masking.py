from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from training.masking import contains_verbatim, mask_llm, mask_rule, segment

from .scripted import ScriptedBackend

FULL = (
    "Write an outline for a grant proposal on urban beekeeping. The budget is $5,000; the deadline is March 3. "
    "The audience is a city council. It must be in Spanish. Keep it under two pages."
)


def test_rule_masking_is_deterministic_for_a_seed():
    assert mask_rule(FULL, seed=7, key="bees") == mask_rule(FULL, seed=7, key="bees")
    variants = {tuple(mask_rule(FULL, seed=s, key="bees").hidden_facts) for s in range(8)}
    assert len(variants) > 1  # the seed matters


def test_rule_masking_hides_facts_exactly():
    for seed in range(10):
        masked = mask_rule(FULL, seed=seed, fraction=0.5, key="bees")
        units = segment(FULL)
        kept = [u for u in units if u not in masked.hidden_facts]
        assert masked.masked_task == " ".join(kept)
        assert sorted(masked.hidden_facts + kept) == sorted(units)
        assert len(masked.hidden_facts) == 2
        assert not any(contains_verbatim(masked.masked_task, fact) for fact in masked.hidden_facts)
        assert masked.masked_task.startswith("Write an outline for a grant proposal")


def test_rule_masking_keeps_the_imperative_even_when_it_is_not_first():
    masked = mask_rule("We are two adults. Plan a trip to Japan. We like trains.", seed=0, fraction=1.0)
    assert masked.masked_task == "Plan a trip to Japan."
    assert masked.hidden_facts == ["We are two adults.", "We like trains."]


def test_rule_masking_hides_a_repeated_sentence_everywhere():
    text = "Draft a memo. The client is Acme. Note: the client is Acme. Use a formal tone."
    for seed in range(10):
        masked = mask_rule(text, seed=seed, fraction=0.34)
        assert not any(contains_verbatim(masked.masked_task, fact) for fact in masked.hidden_facts)


def test_rule_masking_rejects_a_bad_fraction():
    with pytest.raises(ValueError, match="fraction"):
        mask_rule(FULL, fraction=1.5)


def test_llm_masking_extracts_chooses_and_rewrites_in_two_batched_calls():
    def model(messages):
        if "List the key facts" in messages[0]["content"]:
            return "- The budget is $5,000.\n- The deadline is March 3.\n- It must be in Spanish."
        return "Please write an outline for an urban beekeeping grant proposal. The budget is $5,000."

    backend = ScriptedBackend(model)
    [result] = mask_llm([FULL], backend=backend, seed=1, fraction=0.34, keys=["bees"])
    assert len(backend.calls) == 2
    assert len(result.hidden_facts) == 1
    assert not any(contains_verbatim(result.masked_task, f) for f in result.hidden_facts)
    assert "urban beekeeping" in result.masked_task


def test_mask_tasks_command_writes_masked_rows(tmp_path):
    src = tmp_path / "full.jsonl"
    src.write_text(
        json.dumps({"key": "bees", "domain": "grant proposal", "full_task": FULL})
        + "\n"
        + json.dumps({"key": "trip", "domain": "travel", "full_task": "Plan a trip. We like trains. We have $900."})
        + "\n"
    )
    out = tmp_path / "masked.jsonl"
    call_command("mask_tasks", str(src), "-o", str(out), "--seed", "3", "--fraction", "0.5")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["key"] for r in rows] == ["bees", "trip"]
    assert rows[0] == {**rows[0], **json.loads(json.dumps(mask_rule(FULL, seed=3, key="bees").__dict__))}
    assert rows[0]["masking"]["method"] == "rule"


def test_mask_tasks_command_reports_bad_lines_and_writes_nothing(tmp_path):
    src = tmp_path / "full.jsonl"
    src.write_text(
        json.dumps({"key": "bees", "domain": "d", "full_task": FULL}) + "\n{oops\n" + json.dumps({"key": "x"}) + "\n"
    )
    out = tmp_path / "masked.jsonl"
    with pytest.raises(CommandError) as err:
        call_command("mask_tasks", str(src), "-o", str(out))
    assert "line 2" in str(err.value)
    assert "line 3" in str(err.value)
    assert not out.exists()
