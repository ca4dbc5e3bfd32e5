"""The labelled elicitation benchmark: hand-written tasks, question sets and outlines. Pure: no Django.

Each question carries the hidden facts it *asks for* and each outline the facts whose *value* it states,
labelled by reading the text (see README.md next to this file). The reward audit measures a matcher and the
outline coverage check against these labels, so the loader is strict: a mislabelled or malformed line fails
with its line number instead of quietly skewing the figures."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from annotation.jsonl import parse_jsonl, require_text
from training.facts import Fact

DATA_PATH = Path(__file__).with_name("tasks.jsonl")
SPLITS = ("dev", "test")
FAMILIES = (
    "GOOD", "PARTIAL", "REDUNDANT", "DUPLICATE", "SHOTGUN", "TEMPLATE", "COMPOUND", "ECHO", "GIBBERISH", "EMPTY",
)
MIN_FACTS, MAX_FACTS = 4, 6
MIN_OUTLINES, MAX_OUTLINES = 3, 4
_TASK_FIELDS = frozenset({"key", "domain", "split", "full_task", "masked_task", "facts", "question_sets", "outlines"})


@dataclass(frozen=True)
class BenchQuestion:
    text: str
    asks: tuple[int, ...]  # indices into the task's facts
    given: bool = False  # asks about something the masked request already states


@dataclass(frozen=True)
class BenchOutline:
    text: str
    conveys: tuple[int, ...]  # facts whose value the outline states


@dataclass(frozen=True)
class BenchTask:
    key: str
    domain: str
    split: str
    full_task: str
    masked_task: str
    facts: tuple[Fact, ...]
    question_sets: Mapping[str, tuple[BenchQuestion, ...]] = field(hash=False)
    outlines: tuple[BenchOutline, ...]
    line: int = field(default=0, compare=False)

    @property
    def fact_texts(self) -> list[str]:
        return [f.text for f in self.facts]

    def questions(self, family: str) -> list[str]:
        return [q.text for q in self.question_sets[family]]


def load_tasks(split: str | None = None, path: Path | str | None = None) -> list[BenchTask]:
    """The benchmark's tasks in file order, optionally one split; ValueError names the first bad line."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    source = Path(path) if path is not None else DATA_PATH
    with source.open("rb") as handle:
        rows, errors = parse_jsonl(handle)
    if errors:
        raise ValueError(f"{source.name} {errors[0]}")
    tasks: list[BenchTask] = []
    seen: dict[str, int] = {}
    for number, obj in rows:
        try:
            task = _task(obj, number)
        except ValueError as exc:
            raise ValueError(f"{source.name} line {number}: {exc}") from exc
        if task.key in seen:
            first = seen[task.key]
            raise ValueError(f"{source.name} line {number}: duplicate key {task.key!r} (first on line {first})")
        seen[task.key] = number
        tasks.append(task)
    if not tasks:
        raise ValueError(f"{source.name}: no tasks")
    return [t for t in tasks if split is None or t.split == split]


def _task(obj: dict[str, Any], line: int) -> BenchTask:
    unknown = set(obj) - _TASK_FIELDS
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))}")
    key, domain, split = (_text(obj, name) for name in ("key", "domain", "split"))
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    full_task, masked_task = _text(obj, "full_task"), _text(obj, "masked_task")
    facts = _facts(obj.get("facts"), full_task, masked_task)
    question_sets = _question_sets(obj.get("question_sets"), facts)
    outlines = _outlines(obj.get("outlines"), facts)
    return BenchTask(key=key, domain=domain, split=split, full_task=full_task, masked_task=masked_task,
                     facts=facts, question_sets=question_sets, outlines=outlines, line=line)


def _text(obj: dict[str, Any], name: str) -> str:
    value = require_text(obj, name)
    assert value is not None  # require_text raises for a missing required field
    return value


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"{what} must be a list")
    return value


def _object(value: Any, what: str, allowed: frozenset[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be an object")
    unknown = set(value) - allowed
    if unknown:
        raise ValueError(f"{what} has unknown field(s) {', '.join(sorted(unknown))}")
    return value


def _facts(raw: Any, full_task: str, masked_task: str) -> tuple[Fact, ...]:
    items = _list(raw, "facts")
    if not MIN_FACTS <= len(items) <= MAX_FACTS:
        raise ValueError(f"facts must hold {MIN_FACTS}–{MAX_FACTS} items, got {len(items)}")
    facts = []
    for i, item in enumerate(items):
        obj = _object(item, f"facts[{i}]", frozenset({"slot", "value", "text"}))
        slot, value, text = (_text(obj, name) for name in ("slot", "value", "text"))
        if value.lower() not in full_task.lower():
            raise ValueError(f"facts[{i}] value {value!r} is not in full_task")
        if value.lower() in masked_task.lower():
            raise ValueError(f"facts[{i}] value {value!r} is still in masked_task")
        facts.append(Fact(text=text, slot=slot, value=value))
    slots = [f.slot for f in facts]
    if len(set(slots)) != len(slots):
        raise ValueError("facts repeat a slot; each hidden fact must be about its own slot")
    return tuple(facts)


def _indices(raw: Any, what: str, n_facts: int) -> tuple[int, ...]:
    items = _list(raw, what)
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in items):
        raise ValueError(f"{what} must be a list of integers")
    if any(not 0 <= i < n_facts for i in items):
        raise ValueError(f"{what} {items} has an index outside 0–{n_facts - 1}")
    if len(set(items)) != len(items):
        raise ValueError(f"{what} {items} repeats an index")
    return tuple(sorted(items))


def _values_in(text: str, facts: tuple[Fact, ...]) -> list[int]:
    lowered = text.lower()
    return [i for i, f in enumerate(facts) if f.value.lower() in lowered]


def _question_sets(raw: Any, facts: tuple[Fact, ...]) -> Mapping[str, tuple[BenchQuestion, ...]]:
    sets = _object(raw, "question_sets", frozenset(FAMILIES))
    missing = [f for f in FAMILIES if f not in sets]
    if missing:
        raise ValueError(f"question_sets lacks famil{'y' if len(missing) == 1 else 'ies'} {', '.join(missing)}")
    parsed: dict[str, tuple[BenchQuestion, ...]] = {}
    for family in FAMILIES:
        questions = []
        for j, item in enumerate(_list(sets[family], f"{family}")):
            where = f"{family}[{j}]"
            obj = _object(item, where, frozenset({"q", "asks", "given"}))
            text = _text(obj, "q")
            asks = _indices(obj.get("asks"), f"{where}.asks", len(facts))
            given = obj.get("given", False)
            if not isinstance(given, bool):
                raise ValueError(f"{where}.given must be true or false")
            if given and asks:
                raise ValueError(f"{where} is marked given (already in the masked request) but asks {list(asks)}")
            quoted = _values_in(text, facts)
            # Only ECHO questions may know a hidden value: anywhere else it would leak the answer into the ask.
            if family == "ECHO" and not quoted:
                raise ValueError(f"{where} quotes no hidden value; ECHO questions quote one")
            if family != "ECHO" and quoted:
                raise ValueError(f"{where} contains hidden value {facts[quoted[0]].value!r}")
            questions.append(BenchQuestion(text=text, asks=asks, given=given))
        parsed[family] = tuple(questions)
    _check_families(parsed, len(facts))
    return MappingProxyType(parsed)


def _check_families(sets: Mapping[str, tuple[BenchQuestion, ...]], n_facts: int) -> None:
    """What the families mean by definition; the labels themselves are the annotator's reading."""
    for family in FAMILIES:
        if family != "EMPTY" and not sets[family]:
            raise ValueError(f"{family} is empty")
    if sets["EMPTY"]:
        raise ValueError("EMPTY must hold no questions")
    if any(q.asks for q in sets["GIBBERISH"]):
        raise ValueError("a GIBBERISH question asks for a fact")
    good_asks = {i for q in sets["GOOD"] for i in q.asks}
    if good_asks != set(range(n_facts)):
        missing = sorted(set(range(n_facts)) - good_asks)
        raise ValueError(f"GOOD must ask for every fact; none asks for {missing}")
    if len({q.asks for q in sets["DUPLICATE"]}) != 1:
        raise ValueError("DUPLICATE questions must all ask for the same facts (rewordings of one question)")


def _outlines(raw: Any, facts: tuple[Fact, ...]) -> tuple[BenchOutline, ...]:
    items = _list(raw, "outlines")
    if not MIN_OUTLINES <= len(items) <= MAX_OUTLINES:
        raise ValueError(f"outlines must hold {MIN_OUTLINES}–{MAX_OUTLINES} items, got {len(items)}")
    outlines = []
    for k, item in enumerate(items):
        obj = _object(item, f"outlines[{k}]", frozenset({"text", "conveys"}))
        text = _text(obj, "text")
        conveys = _indices(obj.get("conveys"), f"outlines[{k}].conveys", len(facts))
        # A value written out verbatim is conveyed; a label saying otherwise is a labelling slip.
        unlabelled = [i for i in _values_in(text, facts) if i not in conveys]
        if unlabelled:
            i = unlabelled[0]
            raise ValueError(f"outlines[{k}] states value {facts[i].value!r} but conveys omits {i}")
        outlines.append(BenchOutline(text=text, conveys=conveys))
    counts = {len(o.conveys) for o in outlines}
    if len(facts) not in counts or 0 not in counts:
        raise ValueError("outlines need one conveying every hidden value and one conveying none")
    return tuple(outlines)
