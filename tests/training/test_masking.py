from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from training.facts import Fact, fact_from_raw
from training.masking import EXTRACT_PROMPT, REWRITE_PROMPT, mask_llm, mask_rows, mask_rule, summarise
from training.masking_gate import GateFailure, gate
from training.masking_rules import find_spans, rewrite
from training.models import System

from .scripted import ScriptedBackend

DEMO = Path(__file__).resolve().parents[2] / "annotation" / "fixtures" / "demo" / "tasks.jsonl"
FULL = (
    "Write an outline for a grant proposal on urban beekeeping. The budget is $5,000 and the application is "
    "due March 3. The audience is the Lakeside City Council. It must be in Spanish. Keep it under two pages."
)
MONEY = re.compile(r"[$£€]\s?\d[\d,.]*(?:\s?(?:million|k|M))?")
DAY = re.compile(
    r"\b(?:January|February|March|April|May|June|July|August|September|October|November|December) \d{1,2}\b"
)


def _demo() -> list[dict]:
    return [json.loads(line) for line in DEMO.read_text(encoding="utf-8").splitlines()]


def _failures(problems) -> set[GateFailure]:
    return {p.failure for p in problems}


# --- the gate catches each kind of failure (hand-built bad outputs) ---------------------------------------

GOOD_MASKED = "Write an outline for a grant proposal on urban beekeeping. It must be in Spanish."
BUDGET = Fact("The budget is $5,000.", "budget", "$5,000")


def test_the_gate_passes_a_sound_masked_task():
    assert gate(full_task=FULL, masked_task=GOOD_MASKED, facts=[BUDGET]) == []


def test_the_gate_catches_a_fact_the_full_request_does_not_support():
    invented = Fact("The budget is $7,500.", "budget", "$7,500")
    wrong_number = Fact("The budget is $5,000 per year for 4 years.", "budget", "$5,000")
    assert _failures(gate(full_task=FULL, masked_task=GOOD_MASKED, facts=[invented])) == {GateFailure.UNSUPPORTED_FACT}
    assert GateFailure.UNSUPPORTED_FACT in _failures(
        gate(full_task=FULL, masked_task=GOOD_MASKED, facts=[wrong_number])
    )


def test_the_gate_catches_a_hidden_value_left_in_the_masked_text():
    leaky = "Write an outline for a grant proposal on urban beekeeping with a budget of 5,000 dollars."
    assert _failures(gate(full_task=FULL, masked_task=FULL, facts=[BUDGET])) == {GateFailure.VALUE_IN_MASKED}
    assert _failures(gate(full_task=FULL, masked_task=leaky, facts=[BUDGET])) == {GateFailure.VALUE_IN_MASKED}


def test_the_gate_catches_prompt_text_in_the_output():
    residue = "Here is the rewritten request: " + GOOD_MASKED
    echoed = GOOD_MASKED + " " + REWRITE_PROMPT
    assert GateFailure.PROMPT_LEAK in _failures(gate(full_task=FULL, masked_task=residue, facts=[BUDGET]))
    problems = gate(full_task=FULL, masked_task=echoed, facts=[BUDGET], prompts=[REWRITE_PROMPT])
    assert _failures(problems) == {GateFailure.PROMPT_LEAK}
    fact_with_residue = Fact("Details to remove: the budget is $5,000.", "budget", "$5,000")
    assert GateFailure.PROMPT_LEAK in _failures(
        gate(full_task=FULL, masked_task=GOOD_MASKED, facts=[fact_with_residue])
    )


def test_the_gate_catches_a_masked_request_that_no_longer_asks_for_the_deliverable():
    lost = "Urban beekeeping is growing in cities. It must be in Spanish."
    other = "Write a poem about urban beekeeping. It must be in Spanish."
    assert _failures(gate(full_task=FULL, masked_task=lost, facts=[BUDGET])) == {GateFailure.DELIVERABLE_LOST}
    assert _failures(gate(full_task=FULL, masked_task=other, facts=[BUDGET])) == {GateFailure.DELIVERABLE_LOST}


def test_the_gate_catches_empty_output_nothing_hidden_and_facts_that_are_not_atomic():
    assert _failures(gate(full_task=FULL, masked_task="  ", facts=[BUDGET])) == {GateFailure.EMPTY}
    assert _failures(gate(full_task=FULL, masked_task=GOOD_MASKED, facts=[])) == {GateFailure.NOTHING_HIDDEN}
    twice = [BUDGET, Fact("The budget is capped.", "budget", "due March 3")]
    assert GateFailure.NOT_ATOMIC in _failures(gate(full_task=FULL, masked_task=GOOD_MASKED, facts=twice))
    two_values = [
        Fact("The budget is $5,000 and it is due March 3.", "budget", "$5,000 and the application is due March 3")
    ]
    problems = gate(full_task=FULL, masked_task=GOOD_MASKED, facts=two_values)
    assert GateFailure.NOT_ATOMIC in _failures(problems)
    no_slot = [Fact("Something.", "", "$5,000")]
    assert GateFailure.NOT_ATOMIC in _failures(gate(full_task=FULL, masked_task=GOOD_MASKED, facts=no_slot))


# --- rule masking -------------------------------------------------------------------------------------------


def test_rule_masking_is_deterministic_for_a_seed_and_the_seed_matters():
    assert mask_rule(FULL, seed=7, key="bees") == mask_rule(FULL, seed=7, key="bees")
    variants = {tuple(f.slot for f in mask_rule(FULL, seed=s, key="bees").facts) for s in range(8)}
    assert len(variants) > 1


def test_rule_masking_hides_atomic_slot_value_facts_and_rewrites_clauses():
    masked = mask_rule(FULL, seed=0, fraction=1.0, key="bees")
    assert masked.passed, masked.problems
    values = {f.value for f in masked.facts}
    assert {"$5,000", "March 3", "Lakeside City Council"} <= values
    for fact in masked.facts:
        assert fact.value in FULL
        assert fact.value.lower() not in masked.masked_task.lower()
        assert fact.slot
        assert len({f.slot for f in masked.facts}) == len(masked.facts)
    assert masked.masked_task.startswith("Write an outline for a grant proposal on urban beekeeping.")
    # Whole clauses go, not single words: nothing like "The budget is and the application is due."
    assert not re.search(r"\b(?:is|at|of|for|and)\s*[.,]", masked.masked_task)


REWRITES = [
    # (request, value to hide, the masked request as a person would write it)
    (
        "Please outline a 12-day trip to Portugal for my family.",
        "12-day",
        "Please outline a trip to Portugal for my family.",
    ),
    ("I need an outline for an 8-week course on pottery.", "8-week", "I need an outline for a course on pottery."),
    (
        "Write an outline for my talk. I fly to Boston on May 2 with my team.",
        "May 2",
        "Write an outline for my talk. I fly to Boston with my team.",
    ),
    (
        "Write a post-mortem outline on last Tuesday's outage.",
        "last Tuesday's",
        "Write a post-mortem outline on the outage.",
    ),
    ("Write an outline for my grant. The budget is capped at $5,000.", "$5,000", "Write an outline for my grant."),
    (
        "Write an outline for my grant. We're a small team in Leeds, and the report is due March 3.",
        "March 3",
        "Write an outline for my grant. We're a small team in Leeds.",
    ),
    (
        "Draft an outline for a memo. We shipped a hotfix, 6.2.1, through expedited review.",
        "6.2.1",
        "Draft an outline for a memo. We shipped a hotfix through expedited review.",
    ),
    (
        "Write a review outline. We'll search PubMed, Embase, CINAHL, and Scopus.",
        "Embase",
        "Write a review outline. We'll search PubMed, CINAHL, and Scopus.",
    ),
    (
        "Write an outline for the talk. Reviewers are clinicians, so keep it practical.",
        "keep it practical",
        "Write an outline for the talk. Reviewers are clinicians.",
    ),
    (
        "Plan an itinerary outline for us. We are two adults from Leeds who love trains.",
        "Leeds",
        "Plan an itinerary outline for us. We are two adults who love trains.",
    ),
]


@pytest.mark.parametrize(("full", "value", "expected"), REWRITES)
def test_rule_masking_rewrites_the_smallest_unit_that_reads_well(full, value, expected):
    _, spans = find_spans(full)
    chosen = [i for i, span in enumerate(spans) if span.text == value]
    assert chosen, f"{value!r} is not found as key information"
    result = rewrite(full, choose=chosen, target=1)
    assert result.masked_task == expected
    assert value in {f.value for f in result.facts}


def test_rule_masking_keeps_the_request_when_it_is_not_the_first_sentence():
    text = "We are two adults from Leeds. Plan a 5-day trip to Japan for us. We fly on May 2."
    masked = mask_rule(text, seed=0, fraction=1.0)
    assert "Plan a trip" in masked.masked_task
    assert "May 2" not in masked.masked_task
    assert "5-day" not in masked.masked_task
    assert masked.passed


def test_rule_masking_rejects_a_bad_fraction_and_an_empty_task():
    with pytest.raises(ValueError, match="fraction"):
        mask_rule(FULL, fraction=1.5)
    with pytest.raises(ValueError, match="empty"):
        mask_rule("   ")


@pytest.mark.parametrize("fraction", [0.5, 1.0])
def test_rule_masking_of_every_demo_request_passes_the_gate_and_keeps_the_deliverable(fraction):
    for row in _demo():
        masked = mask_rule(row["full_task"], seed=0, fraction=fraction, key=row["key"])
        assert masked.passed, (row["key"], [str(p) for p in masked.problems])
        assert len(masked.facts) >= 1
        assert len(masked.masked_task) < len(row["full_task"])


def test_rule_masking_of_the_demo_hides_amounts_and_dates_outside_the_request_sentence():
    """At fraction 1 every money amount and calendar day outside the sentence that asks for the
    deliverable is gone from the masked text and is the value of a hidden fact."""
    missed: list[str] = []
    total = 0
    for row in _demo():
        full = row["full_task"]
        masked = mask_rule(full, seed=0, fraction=1.0, key=row["key"])
        request = next(s for s in re.split(r"(?<=[.?!])\s+", full) if "outlin" in s.lower())
        for match in [*MONEY.finditer(full), *DAY.finditer(full)]:
            if match.group() in request:
                continue
            total += 1
            hidden = any(match.group().rstrip(".,") in f.value for f in masked.facts)
            if match.group() in masked.masked_task or not hidden:
                missed.append(f"{row['key']}: {match.group()}")
    assert total > 25
    assert missed == []


def test_rule_masking_of_the_demo_hides_named_places_and_organisations():
    names = {
        "grant-proposal-01": "Salinas Valley",
        "grant-proposal-02": "Eugene",
        "grant-proposal-03": "UKHSA",
        "marketing-plan-02": "Berlin",
        "travel-itinerary-03": "Hanoi",
        "legal-memo-01": "San Diego",
        "product-requirements-01": "City of Tacoma",
    }
    rows = {r["key"]: r for r in _demo()}
    for key, name in names.items():
        masked = mask_rule(rows[key]["full_task"], seed=0, fraction=1.0, key=key)
        assert name not in masked.masked_task, key
        assert any(f.value == name for f in masked.facts), key


def test_rule_masked_facts_read_back_through_the_shared_fact_model():
    masked = mask_rule(FULL, seed=1, fraction=1.0, key="bees")
    for fact in masked.facts:
        assert fact_from_raw(fact.as_json()) == fact


# --- llm masking: seeded, greedy, gated ---------------------------------------------------------------------


class RecordingBackend(ScriptedBackend):
    """The scripted model, also noting the decoding parameters each call asked for."""

    def __init__(self, reply) -> None:
        super().__init__(reply)
        self.param_log: list[dict] = []

    def generate(self, prompts, params):
        self.param_log.append({"temperature": params.get("temperature"), "seed": params.get("seed")})
        return super().generate(prompts, params)


def _extract_and_rewrite(extract: str, rewrite: str):
    def model(messages):
        return extract if messages[0]["content"] == EXTRACT_PROMPT else rewrite

    return model


def test_llm_masking_asks_for_temperature_0_and_the_seed_over_the_systems_own_params():
    backend = RecordingBackend(_extract_and_rewrite("budget | $5,000 | The budget is $5,000.", GOOD_MASKED))
    [result] = mask_llm([FULL], backend=backend, params={"temperature": 0.9, "seed": 99}, seed=4, keys=["bees"])
    assert result.passed, result.problems
    assert [f.value for f in result.facts] == ["$5,000"]
    assert backend.param_log == [{"temperature": 0.0, "seed": 4}] * 2


def test_llm_masking_gives_the_same_output_for_the_same_seed():
    extract = (
        "budget | $5,000 | The budget is $5,000.\ndeadline | March 3 | Due March 3.\n"
        "language | in Spanish | In Spanish."
    )

    def runs(seed: int):
        backend = ScriptedBackend(_extract_and_rewrite(extract, GOOD_MASKED))
        return mask_llm([FULL, FULL], backend=backend, seed=seed, fraction=0.34, keys=["a", "b"])

    assert runs(3) == runs(3)
    assert {tuple(f.slot for m in runs(s) for f in m.facts) for s in range(6)} != {()}


CORRUPT = [
    # (extraction, rewrite, the failure the gate must name)
    ("budget | $7,500 | The budget is $7,500.", GOOD_MASKED, GateFailure.UNSUPPORTED_FACT),
    ("budget | $5,000 | The budget is $5,000.", FULL, GateFailure.VALUE_IN_MASKED),
    (
        "budget | $5,000 | The budget is $5,000.",
        "Sure! Here is the rewritten request: " + GOOD_MASKED,
        GateFailure.PROMPT_LEAK,
    ),
    (
        "budget | $5,000 | The budget is $5,000.",
        "Urban beekeeping matters. It must be in Spanish.",
        GateFailure.DELIVERABLE_LOST,
    ),
    ("The budget is five thousand dollars.", GOOD_MASKED, GateFailure.NOTHING_HIDDEN),
]


@pytest.mark.parametrize(("extract", "rewrite", "failure"), CORRUPT)
def test_corrupt_llm_output_is_gated_and_falls_back_to_the_rule_method(extract, rewrite, failure):
    rows = [{"key": "bees", "domain": "grant", "full_task": FULL}]
    backend = ScriptedBackend(_extract_and_rewrite(extract, rewrite))
    [left_out] = mask_rows(rows, method="llm", backend=backend, seed=2)
    assert left_out.row is None
    assert failure in _failures(left_out.problems)

    [fell_back] = mask_rows(
        rows, method="llm", backend=ScriptedBackend(_extract_and_rewrite(extract, rewrite)), seed=2, fallback="rule"
    )
    assert failure in _failures(fell_back.problems)
    assert fell_back.method == "rule"
    assert fell_back.fallback_problems == []
    assert fell_back.row["masked_task"] == mask_rule(FULL, seed=2, key="bees").masked_task
    assert fell_back.row["masking"] == {
        "method": "rule",
        "version": "mask-rule-v2",
        "seed": 2,
        "fraction": 0.5,
        "temperature": 0.0,
        "fallback_from": "llm",
    }


def test_llm_masking_with_the_tiny_model_is_gated_and_deterministic(tiny_model_dir):
    from training.backends.transformers import TransformersBackend

    backend = TransformersBackend(str(tiny_model_dir), device="cpu")
    params = {"max_new_tokens": 24, "temperature": 1.0}
    first = mask_llm([FULL], backend=backend, params=params, seed=5, keys=["bees"])
    second = mask_llm([FULL], backend=backend, params=params, seed=5, keys=["bees"])
    assert first == second  # greedy and seeded although the system samples at temperature 1
    assert not first[0].passed  # random weights cannot produce a sound masked task …
    [outcome] = mask_rows(
        [{"key": "bees", "domain": "g", "full_task": FULL}],
        method="llm",
        backend=backend,
        params=params,
        seed=5,
        fallback="rule",
    )
    assert outcome.row is not None
    assert outcome.method == "rule"


def test_summary_counts_tasks_facts_and_failures_by_reason():
    rows = [{"key": f"t{i}", "domain": "grant", "full_task": FULL} for i in range(3)]
    backend = ScriptedBackend(_extract_and_rewrite("budget | $5,000 | The budget is $5,000.", FULL))
    summary = summarise(mask_rows(rows, method="llm", backend=backend, fallback="rule"))
    assert summary["tasks"] == 3
    assert summary["masked"] == 3
    assert summary["by_method"] == {"rule": 3}
    assert summary["gate_failures"] == {"llm value_in_masked": 3}
    assert summary["facts_per_task"]["min"] >= 1


# --- the command ----------------------------------------------------------------------------------------------


def _full_file(tmp_path: Path) -> Path:
    src = tmp_path / "full.jsonl"
    rows = [
        {"key": "bees", "domain": "grant proposal", "full_task": FULL},
        {
            "key": "trip",
            "domain": "travel",
            "full_task": "Plan a trip to Lisbon for us. We have $900 and fly on May 2.",
        },
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return src


def test_mask_tasks_writes_facts_as_slot_value_objects_and_prints_a_summary(tmp_path, capsys):
    out = tmp_path / "masked.jsonl"
    call_command("mask_tasks", str(_full_file(tmp_path)), "-o", str(out), "--seed", "3")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["key"] for r in rows] == ["bees", "trip"]
    expected = mask_rule(FULL, seed=3, key="bees")
    assert rows[0]["masked_task"] == expected.masked_task
    assert rows[0]["hidden_facts"] == [f.as_json() for f in expected.facts]
    assert all(set(f) == {"text", "slot", "value"} for r in rows for f in r["hidden_facts"])
    assert rows[0]["masking"]["method"] == "rule"
    printed = capsys.readouterr().out
    assert "2 of 2 tasks masked (2 by rule), 0 left out" in printed
    assert "facts per task: mean" in printed
    assert "gate failures by reason (tasks): none" in printed


@pytest.mark.django_db
def test_mask_tasks_reports_llm_failures_line_by_line_and_leaves_them_out(tmp_path, capsys, tiny_model_dir):
    System.objects.create(
        name="tiny",
        backend="transformers",
        model_path=str(tiny_model_dir),
        generation_params={"max_new_tokens": 16, "device": "cpu"},
    )
    out = tmp_path / "masked.jsonl"
    call_command("mask_tasks", str(_full_file(tmp_path)), "-o", str(out), "--method", "llm", "--system", "tiny")
    captured = capsys.readouterr()
    assert "line 1 (bees): llm masking failed the gate" in captured.err
    assert "line 2 (trip): llm masking failed the gate" in captured.err
    assert "line 1 (bees): left out" in captured.err
    assert "0 of 2 tasks masked" in captured.out
    assert "2 left out" in captured.out
    assert out.read_text() == ""

    call_command(
        "mask_tasks",
        str(_full_file(tmp_path)),
        "-o",
        str(out),
        "--method",
        "llm",
        "--system",
        "tiny",
        "--fallback",
        "rule",
    )
    captured = capsys.readouterr()
    assert "line 2 (trip): written by the rule method instead" in captured.err
    assert "2 of 2 tasks masked (2 by rule)" in captured.out
    assert [json.loads(x)["masking"]["fallback_from"] for x in out.read_text().splitlines()] == ["llm", "llm"]


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
