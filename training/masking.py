"""Masking: from a fully specified task, make a partially specified one plus the facts it hides.

Two methods:
* `rule` — deterministic for a seed (and the task key): split into sentences and clauses, keep the core
  request (the first imperative unit, else the first), hide a seeded fraction of the rest. The hidden
  facts are exactly the removed units, and the masked task contains none of them verbatim.
* `llm` — a model extracts the key facts, a seeded draw chooses which to hide, and the model rewrites
  the request fluently without them (any verbatim leftover is cut out afterwards).
Pure: no Django; the llm method takes any backend."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .parsing import _clean

if TYPE_CHECKING:
    from .backends import Backend

RULE_VERSION = "mask-rule-v1"
LLM_VERSION = "mask-llm-v1"
IMPERATIVES = frozenset(
    """write draft create prepare plan outline design develop build make produce help compose give put
    organize organise suggest propose recommend structure summarize summarise describe explain list
    generate craft""".split()
)
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[\"'(A-Z0-9])|\n+")
_CLAUSE = re.compile(r";\s+")


@dataclass(frozen=True)
class MaskedTask:
    masked_task: str
    hidden_facts: list[str]


def segment(text: str) -> list[str]:
    """Sentences, and clauses of sentences joined by semicolons."""
    units: list[str] = []
    for sentence in _SENTENCE.split(text.strip()):
        parts = [p.strip() for p in _CLAUSE.split(sentence) if p.strip()]
        for i, part in enumerate(parts):
            if i < len(parts) - 1 and not part.endswith((".", "!", "?")):
                part += "."
            units.append(part[0].upper() + part[1:] if part else part)
    return [u for u in units if len(u) > 1]


def _is_core(unit: str) -> bool:
    words = re.findall(r"[a-zA-Z']+", unit.lower())
    if not words:
        return False
    if words[0] in IMPERATIVES or (words[0] == "please" and len(words) > 1 and words[1] in IMPERATIVES):
        return True
    return unit.lower().startswith(("i need", "i want", "i'd like", "i would like", "can you", "could you", "help me"))


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.lower()).strip().rstrip(".!?;:").strip()


def contains_verbatim(masked_task: str, fact: str) -> bool:
    return bool(_norm(fact)) and _norm(fact) in _norm(masked_task)


def mask_rule(full_task: str, *, seed: int = 0, fraction: float = 0.5, key: str = "") -> MaskedTask:
    if not 0 <= fraction <= 1:
        raise ValueError("fraction must be between 0 and 1")
    units = segment(full_task)
    if not units:
        raise ValueError("the task is empty")
    core = next((i for i, u in enumerate(units) if _is_core(u)), 0)
    rest = [i for i in range(len(units)) if i != core]
    n_hide = round(fraction * len(rest))
    if fraction > 0 and rest and n_hide == 0:
        n_hide = 1
    # Seeded by seed and key: reproducible per task, yet tasks don't all lose the same positions.
    rng = random.Random(f"{seed}:{key}")
    hidden = set(rng.sample(rest, n_hide))
    # A kept unit that repeats a hidden one would give it away: hide it too (the core stays, and a
    # fact the core states is not hidden at all).
    changed = True
    while changed:
        changed = False
        for i in range(len(units)):
            if i in hidden or i == core:
                continue
            if any(contains_verbatim(units[i], units[h]) for h in hidden):
                hidden.add(i)
                changed = True
    hidden = {h for h in hidden if not contains_verbatim(units[core], units[h])}
    masked = " ".join(u for i, u in enumerate(units) if i not in hidden)
    facts: list[str] = []
    for i in sorted(hidden):
        if _norm(units[i]) not in {_norm(f) for f in facts}:
            facts.append(units[i])
    return MaskedTask(masked, facts)


EXTRACT_PROMPT = (
    "List the key facts in the request below: concrete details, constraints and preferences of the user "
    "(not the main request itself). Write each as a short standalone sentence on its own line starting "
    "with '- '. Output only the list."
)
REWRITE_PROMPT = (
    "Rewrite the request below so that it no longer states the listed details, keeping everything else "
    "and keeping it natural, as the user would write it. Output only the rewritten request."
)


def _facts_from(text: str) -> list[str]:
    facts = []
    for line in text.splitlines():
        fact = _clean(line)
        if len(fact.split()) >= 2 and not fact.endswith(":") and _norm(fact) not in {_norm(f) for f in facts}:
            facts.append(fact)
    return facts


def mask_llm(
    full_tasks: Sequence[str],
    *,
    backend: Backend,
    params: dict[str, Any] | None = None,
    seed: int = 0,
    fraction: float = 0.5,
    keys: Sequence[str] | None = None,
) -> list[MaskedTask]:
    """Batched: one model call to extract the facts of every task, one to rewrite them all."""
    params = {"temperature": 0.0, "max_new_tokens": 256, **(params or {})}
    keys = list(keys) if keys is not None else [""] * len(full_tasks)
    extracted = backend.generate(
        [[{"role": "system", "content": EXTRACT_PROMPT}, {"role": "user", "content": t}] for t in full_tasks], params
    )
    chosen: list[list[str]] = []
    for task, result, key in zip(full_tasks, extracted, keys, strict=True):
        facts = _facts_from(result.text) or [u for u in segment(task) if not _is_core(u)]
        n_hide = max(1, round(fraction * len(facts))) if facts and fraction > 0 else 0
        rng = random.Random(f"{seed}:{key}")
        picked = sorted(rng.sample(range(len(facts)), n_hide))
        chosen.append([facts[i] for i in picked])
    prompts = []
    for task, hide in zip(full_tasks, chosen, strict=True):
        details = "\n".join(f"- {f}" for f in hide)
        prompts.append(
            [
                {"role": "system", "content": REWRITE_PROMPT},
                {"role": "user", "content": f"Request:\n{task}\n\nDetails to remove:\n{details}"},
            ]
        )
    rewritten = backend.generate(prompts, params)
    out = []
    for task, hide, result in zip(full_tasks, chosen, rewritten, strict=True):
        text = result.text.strip()
        for fact in hide:
            # The model may leave a fact in place; cut it rather than ship a leaking task.
            text = re.sub(re.escape(fact.rstrip(".")) + r"\.?", "", text, flags=re.IGNORECASE).strip()
        if not text or result.error:
            text = mask_rule(task, seed=seed, fraction=0.0).masked_task if not hide else _fallback(task, hide)
        out.append(MaskedTask(re.sub(r"\s{2,}", " ", text), hide))
    return out


def _fallback(task: str, hide: Sequence[str]) -> str:
    kept = [u for u in segment(task) if not any(contains_verbatim(u, f) or contains_verbatim(f, u) for f in hide)]
    return " ".join(kept) or segment(task)[0]


def mask_rows(
    rows: Sequence[dict[str, Any]],
    *,
    method: str = "rule",
    seed: int = 0,
    fraction: float = 0.5,
    backend: Backend | None = None,
    params: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Add `masked_task`, `hidden_facts` and a `masking` record to rows that carry `key` and `full_task`."""
    if method == "rule":
        masked = [mask_rule(r["full_task"], seed=seed, fraction=fraction, key=r["key"]) for r in rows]
        version = RULE_VERSION
    elif method == "llm":
        if backend is None:
            raise ValueError("the llm masking method needs a system to generate with (--system NAME)")
        masked = mask_llm(
            [r["full_task"] for r in rows],
            backend=backend,
            params=params,
            seed=seed,
            fraction=fraction,
            keys=[r["key"] for r in rows],
        )
        version = LLM_VERSION
    else:
        raise ValueError(f"unknown masking method '{method}' (choose rule or llm)")
    return [
        {
            **row,
            "masked_task": m.masked_task,
            "hidden_facts": m.hidden_facts,
            "masking": {"method": method, "version": version, "seed": seed, "fraction": fraction},
        }
        for row, m in zip(rows, masked, strict=True)
    ]
