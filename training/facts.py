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
    (
        "date",
        (
            "date",
            "on monday",
            "on tuesday",
            "on wednesday",
            "on thursday",
            "on friday",
            "on saturday",
            "on sunday",
            "january",
            "february",
            "march",
            "april",
            "may ",
            "june",
            "july",
            "august",
            "september",
            "october",
            "november",
            "december",
        ),
    ),
    ("duration", ("minute", "hour", "week", "month", "year", "duration", "long", "days")),
    ("length", ("word limit", "words", "pages", "page limit", "length", "slides")),
    (
        "audience",
        (
            "audience",
            "reader",
            "readers",
            "attendee",
            "listener",
            "viewer",
            "for students",
            "reviewer",
            "customers",
            "users",
        ),
    ),
    ("location", ("location", "venue", "city", " held in ", " based in ", " located ")),
    ("size", ("people", "guests", "participants", "employees", "members", "attendees", "team of")),
    ("tone", ("tone", "style", "formal", "casual", "voice")),
    ("format", ("format", "template", "structure", "sections", "pdf", "slide")),
    ("goal", ("goal", "aim", "objective", "target", "want to achieve", "so that")),
    ("constraint", ("must", "cannot", "can't", "only", "not allowed", "avoid", "never", "required")),
)
_LEAD = re.compile(r"^(?:the|our|my|their|a|an)\s+", re.IGNORECASE)
_COPULA = re.compile(
    r"^(?P<subject>.{2,60}?)\s+(?:is|are|was|were|will be|should be|must be|has to be)\s+"
    r"(?P<value>.+?)[.!]?$",
    re.IGNORECASE,
)


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


def as_facts(items: Sequence[str | Fact | Mapping[str, Any]]) -> list[Fact]:
    """Facts from whatever a caller holds: Fact objects, import-style items, or plain sentences."""
    return [item if isinstance(item, Fact) else fact_from_raw(item) for item in items]


# --- what a fact is about, without what it says -------------------------------------------------------

_WORD = re.compile(r"[a-z0-9$€£%]+(?:[.,'][a-z0-9]+)*")


def words(text: str) -> list[str]:
    """Lower-case word tokens; hyphens split ("5-page" → "5", "page") so values match across spellings."""
    return _WORD.findall(text.lower().replace("-", " "))


def without_value(fact: Fact) -> str:
    """The fact's text with its value blanked: what the fact is about, not what it says.

    A question cannot contain the hidden value, so comparing it with the value-free text keeps the value's
    words (and a question that merely echoes them) from deciding whether the question asks for the fact."""
    text = fact.text
    start = text.lower().find(fact.value.lower())
    if fact.value and start >= 0:
        return re.sub(r"\s+", " ", (text[:start] + "…" + text[start + len(fact.value) :])).strip()
    value_words = set(words(fact.value))
    kept = [w for w in text.split() if not (set(words(w)) & value_words)]
    return " ".join(kept) or fact.slot


def slot_description(fact: Fact) -> str:
    """What the simulator compares a question with: the slot's name and the value-free fact text."""
    about = without_value(fact)
    return f"{fact.slot}: {about}" if about and about != fact.slot else fact.slot


# --- does a text convey a fact's value? ----------------------------------------------------------------

_NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40,
    "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100, "dozen": 12,
    "single": 1, "twice": 2, "half": 0.5, "once": 1,
}  # fmt: skip
_MULTIPLIERS = {"k": 1e3, "thousand": 1e3, "m": 1e6, "mn": 1e6, "million": 1e6, "bn": 1e9, "billion": 1e9}
_NUMERAL = re.compile(r"(\d+(?:,\d{3})*(?:\.\d+)?)(?:\s*(k|m|mn|bn|thousand|million|billion)\b)?", re.IGNORECASE)
# Words that carry no value of their own in a fact's value ("roughly 40 people", "a strict limit").
VALUE_FILLER = frozenset(
    """a an the and or of to in on at by for with from as is are be was were it its this that their our my
    your about around roughly approximately approx nearly almost over under up least most mostly only just
    some any each per than no not more less also very strict total""".split()
)


def numbers(text: str) -> set[float]:
    """The numbers a text states, as values: "$250,000", "250k", "£1.1 million", "five", "2,500-word"."""
    found: set[float] = set()
    lowered = text.lower().replace("-", " ")
    for match in _NUMERAL.finditer(lowered):
        value = float(match.group(1).replace(",", ""))
        found.add(value * _MULTIPLIERS.get((match.group(2) or "").lower(), 1.0))
    # Spelled-out numbers, composed: "one hundred and fifty" → 150, "two million" → 2,000,000.
    total, current, inside = 0.0, 0.0, False
    for token in [*lowered.split(), ""]:
        word = token.strip(".,;:!?()\"'")
        if word in _NUMBER_WORDS and word != "hundred":
            current, inside = current + _NUMBER_WORDS[word], True
        elif word == "hundred" and inside:
            current *= 100
        elif word in ("thousand", "million", "billion") and inside:
            total, current = total + current * _MULTIPLIERS[word], 0.0
        elif word == "and" and inside:
            continue
        elif inside:
            found.add(total + current)
            total, current, inside = 0.0, 0.0, False
    return found


def _stem(word: str) -> str:
    for suffix in ("ies", "ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def key_words(text: str) -> set[str]:
    """Content words of a value (stemmed), without numbers and filler."""
    return {
        _stem(w) for w in words(text) if w not in VALUE_FILLER and w not in _NUMBER_WORDS and not _NUMERAL.fullmatch(w)
    }


DEFAULT_VALUE_RECALL = 0.5


def value_conveyed(
    value: str, text: str, *, known: str = "", slot: str = "", min_recall: float = DEFAULT_VALUE_RECALL
) -> bool:
    """Does `text` state this value: every number in it, and enough of its key words?

    Words the request (`known`) already contains, or that name the slot ("evaluation" in a value "mixed-methods
    evaluation" of the slot "evaluation method"), are not evidence: naming the topic conveys no value. A value
    with numbers needs all of them; its other words then need `min_recall`."""
    wanted_numbers = numbers(value)
    if wanted_numbers and not wanted_numbers <= numbers(text):
        return False
    wanted = key_words(value) - key_words(known) - key_words(slot) or key_words(value)
    if not wanted:
        return bool(wanted_numbers)
    have = {_stem(w) for w in words(text)}
    return len(wanted & have) / len(wanted) >= min_recall
