"""Masking: from a fully specified task, make a partially specified one plus the facts it hides.

Two methods, both checked by the same gate (`masking_gate.gate`) before anything is written:
* `rule` — deterministic for (seed, key): find the key information (numbers, amounts, dates, durations,
  names, explicit constraints; `masking_rules`), hide a seeded share of it, and rewrite the clauses that
  held it. Each hidden fact is atomic: one slot, one value that is a span of the full request.
* `llm` — a model lists the key facts as slot/value pairs, a seeded draw chooses which to hide, and the
  model rewrites the request without them. Temperature 0 and the seed by default. Its output is never
  patched up: what fails the gate is reported, then written by the rule method (`fallback="rule"`) or left out.
Pure: no Django; the llm method takes any backend."""

from __future__ import annotations

import random
import re
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .facts import Fact
from .masking_gate import GateFailure, GateProblem, gate
from .masking_rules import find_spans, normalise, rewrite
from .parsing import _clean

if TYPE_CHECKING:
    from .backends import Backend

RULE_VERSION = "mask-rule-v2"
LLM_VERSION = "mask-llm-v2"
METHODS = ("rule", "llm")
FALLBACKS = ("rule", "none")


@dataclass(frozen=True)
class MaskedTask:
    masked_task: str
    facts: list[Fact]
    method: str = "rule"
    problems: list[GateProblem] = field(default_factory=list)

    @property
    def hidden_facts(self) -> list[str]:
        return [f.text for f in self.facts]

    @property
    def passed(self) -> bool:
        return not self.problems


def contains_verbatim(masked_task: str, value: str) -> bool:
    return bool(normalise(value)) and normalise(value) in normalise(masked_task)


def mask_rule(full_task: str, *, seed: int = 0, fraction: float = 0.5, key: str = "") -> MaskedTask:
    """Hide a seeded `fraction` of the key-information spans (at least one when there is any)."""
    if not 0 <= fraction <= 1:
        raise ValueError("fraction must be between 0 and 1")
    if not full_task.strip():
        raise ValueError("the task is empty")
    _, spans = find_spans(full_task)
    target = max(1, round(fraction * len(spans))) if spans and fraction > 0 else 0
    # Seeded by seed and key: reproducible per task, yet tasks don't all lose the same kinds of fact.
    order = list(range(len(spans)))
    random.Random(f"{seed}:{key}").shuffle(order)
    result = rewrite(full_task, choose=order, target=target)
    problems = gate(full_task=full_task, masked_task=result.masked_task, facts=result.facts)
    return MaskedTask(result.masked_task, result.facts, "rule", problems)


EXTRACT_PROMPT = (
    "List the key details in the request below that a writer could not guess: numbers, amounts, dates, "
    "durations, names of people, places and organisations, and explicit constraints. Not the main request "
    "itself. One detail per line, as: slot | value | fact. The slot says what the detail is about (budget, "
    "deadline, audience...); the value is copied word for word from the request; the fact is one short "
    "sentence. Output only these lines."
)
REWRITE_PROMPT = (
    "Rewrite the request below so that it no longer states the listed details, keeping everything else and "
    "keeping it natural, as the user would write it. Keep asking for the same deliverable. Output only the "
    "rewritten request."
)


def _facts_from(text: str) -> list[Fact]:
    """Lines 'slot | value | fact'; anything else is ignored (the gate then sees what is missing)."""
    facts: list[Fact] = []
    for line in text.splitlines():
        parts = [p.strip() for p in _clean(line).split("|")]
        if len(parts) < 2 or not parts[0] or not parts[1]:
            continue
        slot, value = parts[0].lower(), parts[1].strip().strip('"')
        fact_text = parts[2] if len(parts) > 2 and parts[2] else f"{slot[:1].upper()}{slot[1:]}: {value}."
        if normalise(slot) not in {normalise(f.slot) for f in facts}:
            facts.append(Fact(text=fact_text, slot=slot, value=value))
    return facts


def llm_params(params: dict[str, Any] | None, *, seed: int, temperature: float) -> dict[str, Any]:
    """The system's own parameters, except that masking is seeded and greedy unless asked otherwise."""
    return {"max_new_tokens": 384, **(params or {}), "temperature": temperature, "seed": seed}


def mask_llm(
    full_tasks: Sequence[str],
    *,
    backend: Backend,
    params: dict[str, Any] | None = None,
    seed: int = 0,
    fraction: float = 0.5,
    keys: Sequence[str] | None = None,
    temperature: float = 0.0,
) -> list[MaskedTask]:
    """Batched: one model call extracts the facts of every task, one rewrites them all. Every result
    carries the gate's verdict; nothing is repaired here."""
    params = llm_params(params, seed=seed, temperature=temperature)
    keys = list(keys) if keys is not None else [""] * len(full_tasks)
    extracted = backend.generate(
        [[{"role": "system", "content": EXTRACT_PROMPT}, {"role": "user", "content": t}] for t in full_tasks], params
    )
    chosen: list[list[Fact]] = []
    for result, key in zip(extracted, keys, strict=True):
        facts = [] if result.error else _facts_from(result.text)
        n_hide = max(1, round(fraction * len(facts))) if facts and fraction > 0 else 0
        picked = sorted(random.Random(f"{seed}:{key}").sample(range(len(facts)), n_hide))
        chosen.append([facts[i] for i in picked])
    prompts = []
    for task, hide in zip(full_tasks, chosen, strict=True):
        details = "\n".join(f"- {f.text}" for f in hide)
        prompts.append(
            [
                {"role": "system", "content": REWRITE_PROMPT},
                {"role": "user", "content": f"Request:\n{task}\n\nDetails to remove:\n{details}"},
            ]
        )
    rewritten = backend.generate(prompts, params)
    out = []
    for task, hide, result in zip(full_tasks, chosen, rewritten, strict=True):
        text = "" if result.error else re.sub(r"\s+", " ", result.text).strip()
        problems = gate(full_task=task, masked_task=text, facts=hide, prompts=(EXTRACT_PROMPT, REWRITE_PROMPT))
        out.append(MaskedTask(text, hide, "llm", problems))
    return out


@dataclass
class MaskOutcome:
    """One input row's result: the row to write (None when left out) and what the gate said."""

    row: dict[str, Any] | None
    method: str  # the method that wrote the row (or last tried)
    tried: str  # the method asked for
    problems: list[GateProblem]  # what the gate said about the method asked for; empty when it passed
    fallback_problems: list[GateProblem] = field(default_factory=list)


def mask_rows(
    rows: Sequence[dict[str, Any]],
    *,
    method: str = "rule",
    seed: int = 0,
    fraction: float = 0.5,
    backend: Backend | None = None,
    params: dict[str, Any] | None = None,
    fallback: str = "none",
    temperature: float = 0.0,
) -> list[MaskOutcome]:
    """Mask rows that carry `key` and `full_task`. A row is written only when its masked task passes the
    gate; a failed llm row is masked by the rule method when `fallback="rule"`, else left out."""
    if method not in METHODS:
        raise ValueError(f"unknown masking method '{method}' (choose rule or llm)")
    if fallback not in FALLBACKS:
        raise ValueError(f"unknown fallback '{fallback}' (choose rule or none)")
    if method == "llm":
        if backend is None:
            raise ValueError("the llm masking method needs a system to generate with (--system NAME)")
        masked = mask_llm(
            [r["full_task"] for r in rows],
            backend=backend,
            params=params,
            seed=seed,
            fraction=fraction,
            keys=[r["key"] for r in rows],
            temperature=temperature,
        )
    else:
        masked = [mask_rule(r["full_task"], seed=seed, fraction=fraction, key=r["key"]) for r in rows]
    record = {"seed": seed, "fraction": fraction}
    if method == "llm":
        record["temperature"] = temperature
    outcomes = []
    for row, first in zip(rows, masked, strict=True):
        if first.passed:
            outcomes.append(MaskOutcome(_row(row, first, record), first.method, method, []))
            continue
        if method == "llm" and fallback == "rule":
            second = mask_rule(row["full_task"], seed=seed, fraction=fraction, key=row["key"])
            written = _row(row, second, {**record, "fallback_from": "llm"}) if second.passed else None
            outcomes.append(MaskOutcome(written, "rule", method, first.problems, second.problems))
        else:
            outcomes.append(MaskOutcome(None, first.method, method, first.problems))
    return outcomes


def _row(row: dict[str, Any], masked: MaskedTask, record: dict[str, Any]) -> dict[str, Any]:
    version = RULE_VERSION if masked.method == "rule" else LLM_VERSION
    return {
        **row,
        "masked_task": masked.masked_task,
        "hidden_facts": [f.as_json() for f in masked.facts],
        "masking": {"method": masked.method, "version": version, **record},
    }


def summarise(outcomes: Sequence[MaskOutcome]) -> dict[str, Any]:
    """Tasks masked (by method), facts per task, and gate failures by reason, for the command to print."""
    written = [o for o in outcomes if o.row is not None]
    per_task = [len(o.row["hidden_facts"]) for o in written if o.row is not None]
    failures: Counter[str] = Counter()
    for o in outcomes:
        for reason in {p.failure for p in o.problems}:
            failures[f"{o.tried} {GateFailure(reason).value}"] += 1
        for reason in {p.failure for p in o.fallback_problems}:
            failures[f"rule {GateFailure(reason).value}"] += 1
    return {
        "tasks": len(outcomes),
        "masked": len(written),
        "left_out": len(outcomes) - len(written),
        "by_method": dict(Counter(o.method for o in written)),
        "facts_total": sum(per_task),
        "facts_per_task": {
            "mean": round(statistics.fmean(per_task), 2) if per_task else 0.0,
            "min": min(per_task, default=0),
            "max": max(per_task, default=0),
        },
        "gate_failures": dict(sorted(failures.items())),
    }
