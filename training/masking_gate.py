"""The masking gate: a masked task is written only when it can be trusted. Pure: no Django.

A masked task fails when
* a fact is not supported by the full request (its value is not a span of it, or its text states a number
  or a name the request does not),
* a fact's value (or a number in it) is still in the masked text,
* prompt text leaked into the masked text or a fact ("Details to remove:", "Here is the rewritten…"),
* the masked request no longer asks for the deliverable of the full request,
* it hides nothing, a fact is not atomic (no slot, no value, a value holding two numbers/dates/amounts, two
  facts on one slot), or the text is empty."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from .facts import Fact
from .masking_rules import deliverable_terms, find_spans, is_request, normalise


class GateFailure(StrEnum):
    UNSUPPORTED_FACT = "unsupported_fact"
    VALUE_IN_MASKED = "value_in_masked"
    PROMPT_LEAK = "prompt_leak"
    DELIVERABLE_LOST = "deliverable_lost"
    NOT_ATOMIC = "not_atomic"
    NOTHING_HIDDEN = "nothing_hidden"
    EMPTY = "empty"


@dataclass(frozen=True)
class GateProblem:
    failure: GateFailure
    detail: str

    def __str__(self) -> str:
        return f"{self.failure}: {self.detail}"


# Phrases a model echoes from its instructions or adds around its answer; none belongs in a user's request.
_RESIDUE = re.compile(
    r"(?:^|\b)(?:here(?:'s| is| are) (?:the|your|a) (?:rewritten|revised|masked|updated|list)|rewritten request|"
    r"details to remove|the listed details|key facts|hidden facts?|as an ai\b|output only|"
    r"^\s*(?:sure|certainly|of course)[,!.]|^\s*request\s*:|<\|im_(?:start|end)\|>|\bslot\s*\|)",
    re.I | re.M,
)
_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")
_MAX_VALUE_WORDS = 25


def gate(*, full_task: str, masked_task: str, facts: Sequence[Fact], prompts: Iterable[str] = ()) -> list[GateProblem]:
    """Every problem with a masked task (empty when it passes). `prompts`: the instruction texts the model
    saw, so that any run of eight of their words in the output counts as leaked."""
    problems: list[GateProblem] = []
    if not masked_task.strip():
        return [GateProblem(GateFailure.EMPTY, "the masked request is empty")]
    if not facts:
        problems.append(GateProblem(GateFailure.NOTHING_HIDDEN, "no fact is hidden"))
    full_norm, masked_norm = normalise(full_task), normalise(masked_task)
    full_numbers = {_digits(n) for n in _NUMBER.findall(full_task)}
    masked_numbers = {_digits(n) for n in _NUMBER.findall(masked_task)}
    slots: set[str] = set()
    for fact in facts:
        value = normalise(fact.value).rstrip(".")
        if not fact.slot.strip() or not value or len(value.split()) > _MAX_VALUE_WORDS:
            problems.append(GateProblem(GateFailure.NOT_ATOMIC, f"fact {fact.text!r} has no slot or a long value"))
            continue
        values_inside = [
            sp.text for sp in find_spans(fact.value)[1] if sp.category not in ("name", "constraint", "requirement")
        ]
        if len(values_inside) > 1:
            problems.append(
                GateProblem(
                    GateFailure.NOT_ATOMIC, f"{fact.value!r} holds {len(values_inside)} values: {values_inside}"
                )
            )
        if normalise(fact.slot) in slots:
            problems.append(GateProblem(GateFailure.NOT_ATOMIC, f"two facts on the slot {fact.slot!r}"))
        slots.add(normalise(fact.slot))
        unsupported = _unsupported(fact, value, full_norm, full_numbers, full_task)
        if unsupported:
            problems.append(GateProblem(GateFailure.UNSUPPORTED_FACT, f"{fact.text!r}: {unsupported}"))
        if re.search(rf"(?<!\w){re.escape(value)}(?!\w)", masked_norm):
            problems.append(GateProblem(GateFailure.VALUE_IN_MASKED, f"{fact.value!r} is still in the masked text"))
        elif leaked := {_digits(n) for n in _NUMBER.findall(fact.value)} & masked_numbers - {""}:
            problems.append(
                GateProblem(
                    GateFailure.VALUE_IN_MASKED, f"the number {sorted(leaked)[0]} of {fact.value!r} is still there"
                )
            )
    for where, text in [("masked text", masked_task), *((f"fact {f.text!r}", f.text) for f in facts)]:
        residue = _residue(text, full_task, prompts)
        if residue:
            problems.append(GateProblem(GateFailure.PROMPT_LEAK, f"{where} contains {residue!r}"))
    wanted = deliverable_terms(full_task)
    kept = (
        deliverable_terms(masked_task) if any(is_request(s) for s in re.split(r"(?<=[.?!])\s+", masked_task)) else set()
    )
    if wanted and not wanted & kept:
        problems.append(
            GateProblem(
                GateFailure.DELIVERABLE_LOST, f"the masked request no longer asks for: {', '.join(sorted(wanted))}"
            )
        )
    return problems


def _digits(number: str) -> str:
    return re.sub(r"[,]", "", number)


def _unsupported(fact: Fact, value: str, full_norm: str, full_numbers: set[str], full_task: str) -> str:
    if value not in full_norm:
        return f"the value {fact.value!r} is not in the full request"
    extra = {_digits(n) for n in _NUMBER.findall(fact.text)} - full_numbers
    if extra:
        return f"the number {sorted(extra)[0]} is not in the full request"
    names = re.findall(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z]+(?:\s[A-Z][a-z]+)*", fact.text)
    missing = [n for n in names if n.lower() not in full_norm and n.lower() not in normalise(fact.slot)]
    if missing:
        return f"the name {missing[0]!r} is not in the full request"
    return ""


def _residue(text: str, full_task: str, prompts: Iterable[str]) -> str:
    match = _RESIDUE.search(text)
    if match and match.group().strip().lower() not in full_task.lower():
        return match.group().strip()
    words = re.findall(r"[\w']+", text.lower())
    full = " ".join(re.findall(r"[\w']+", full_task.lower()))
    for prompt in prompts:
        prompt_words = re.findall(r"[\w']+", prompt.lower())
        grams = {" ".join(prompt_words[i : i + 8]) for i in range(len(prompt_words) - 7)}
        for i in range(len(words) - 7):
            gram = " ".join(words[i : i + 8])
            if gram in grams and gram not in full:
                return gram
    return ""
