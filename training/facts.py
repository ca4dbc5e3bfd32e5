"""Hidden facts as slot/value pairs. Pure: no Django.

A hidden fact is what the user knows but did not say. It has a **slot** (what it is about: "budget",
"audience", "deadline"…), a **value** ("$35,000") and a **text** (the fact as one sentence, "The budget is
$35,000."). The user simulator reveals a fact only when a question asks about its slot, and its answer states
the value; outline coverage checks that the value is conveyed.

Storage: `Task.hidden_facts` keeps the fact texts (a list of strings, as before) and `Task.fact_slots` the
parallel list of `{"slot": …, "value": …}`. Import files may give each fact as a plain string (its slot and
value are derived here) or as an object `{"text": …, "slot": …, "value": …}` (`text` optional)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Words that name a slot when they appear in a fact; the first found wins. Ordered from specific to general.
SLOT_KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("budget", ("budget", "cost", "price", "spend", "afford", "capped at", "fund")),
    ("deadline", ("deadline", "due", "by the end of", "no later than", "submit by")),
    ("date", ("date", "on monday", "on tuesday", "on wednesday", "on thursday", "on friday", "on saturday",
              "on sunday", "january", "february", "march", "april", "may ", "june", "july", "august",
              "september", "october", "november", "december")),
    ("duration", ("minute", "hour", "week", "month", "year", "duration", "long", "days")),
    ("length", ("word limit", "words", "pages", "page limit", "length", "slides")),
    ("audience", ("audience", "reader", "readers", "attendee", "listener", "viewer", "for students",
                  "reviewer", "customers", "users")),
    ("location", ("location", "venue", "city", " held in ", " based in ", " located ")),
    ("size", ("people", "guests", "participants", "employees", "members", "attendees", "team of")),
    ("tone", ("tone", "style", "formal", "casual", "voice")),
    ("format", ("format", "template", "structure", "sections", "pdf", "slide")),
    ("goal", ("goal", "aim", "objective", "target", "want to achieve", "so that")),
    ("constraint", ("must", "cannot", "can't", "only", "not allowed", "avoid", "never", "required")),
)
_LEAD = re.compile(r"^(?:the|our|my|their|a|an)\s+", re.IGNORECASE)
_COPULA = re.compile(r"^(?P<subject>.{2,60}?)\s+(?:is|are|was|were|will be|should be|must be|has to be)\s+"
                     r"(?P<value>.+?)[.!]?$", re.IGNORECASE)


@dataclass(frozen=True)
class Fact:
    text: str
    slot: str
    value: str

    def as_json(self) -> dict[str, str]:
        return {"text": self.text, "slot": self.slot, "value": self.value}


def derive_slot_value(text: str) -> tuple[str, str]:
    """A best-effort slot and value for a fact given as a sentence (old import files)."""
    clean = text.strip().rstrip(".!")
    match = _COPULA.match(clean)
    if match:
        subject = _LEAD.sub("", match.group("subject")).strip().lower()
        if len(subject.split()) <= 4:
            return subject, match.group("value").strip()
    lowered = f" {clean.lower()} "
    for slot, keywords in SLOT_KEYWORDS:
        if any(k in lowered for k in keywords):
            return slot, clean
    return "detail", clean


def fact_from_raw(raw: str | Mapping[str, Any]) -> Fact:
    """A Fact from an import line's item: a string, or an object with slot/value (and optional text)."""
    if isinstance(raw, str):
        slot, value = derive_slot_value(raw)
        return Fact(text=raw.strip(), slot=slot, value=value)
    slot = str(raw.get("slot", "")).strip()
    value = str(raw.get("value", "")).strip()
    text = str(raw.get("text") or "").strip() or f"The {slot} is {value}."
    if not slot or not value:
        derived_slot, derived_value = derive_slot_value(text)
        slot, value = slot or derived_slot, value or derived_value
    return Fact(text=text, slot=slot, value=value)


def facts_of(hidden_facts: Sequence[str], fact_slots: Sequence[Mapping[str, str]] | None = None) -> list[Fact]:
    """Facts from a task's stored fields; slots missing from `fact_slots` are derived from the text."""
    slots = list(fact_slots or [])
    facts = []
    for i, text in enumerate(hidden_facts):
        if i < len(slots) and slots[i].get("slot") and slots[i].get("value"):
            facts.append(Fact(text=text, slot=slots[i]["slot"], value=slots[i]["value"]))
        else:
            facts.append(fact_from_raw(text))
    return facts
