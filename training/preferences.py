"""Human preference pairs for DPO and for the `trl` export, built by one function. Pure: no Django.

A comparison's judgments become (prompt, chosen, rejected) pairs that the model could have produced itself:

* `questions` studies: the prompt is the questioner prompt of generation and GRPO (`training/prompts.py`) on the
  task's masked request; a response is the candidate's question list, one question per line — the format the
  questioner is asked to write, so the policy learns a format it can emit.
* `outline` studies: the two candidates reached their outlines through different question/answer transcripts,
  but DPO compares π(chosen | x) with π(rejected | x) under one prompt x and TRL's `DPOTrainer` takes one
  prompt per pair (no per-response prompts). The prompt is therefore the outline prompt on the masked request
  plus the union of the hidden facts that either candidate's questions revealed (docs/training.md says why).

Aggregation: `majority` gives one pair per comparison whose strict majority prefers a side (ties and splits
dropped); `per_judgment` gives one pair per decisive judgment. The held-out split is by task, seeded.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .pipeline import DEFAULT_MAX_QUESTIONS, OUTLINE_SYSTEM, outline_prompt
from .prompts import questions_prompt

Messages = list[dict[str, str]]

AGGREGATIONS = ("majority", "per_judgment")
TRAIN, HELDOUT = "train", "heldout"
DEFAULT_PREFERENCE_CONFIG: dict[str, Any] = {
    "aggregation": "majority",
    "exclude_flagged": True,
    "exclude_gold": True,
    "min_votes": 1,
    "heldout_share": 0.2,
    "seed": 42,
    "max_questions": DEFAULT_MAX_QUESTIONS,
}
# Why a comparison (or judgment) gave no pair; counted for the run page, the export report and the benchmark.
DROP_REASONS = (
    "gold",
    "flagged_judgments",
    "no_judgments",
    "too_few_votes",
    "tie",
    "split",
    "tie_judgments",
    "empty_response",
    "identical_responses",
)


@dataclass(frozen=True)
class CandidateText:
    system: str
    questions: list[str]
    revealed: list[list[int]]
    outline: str


@dataclass(frozen=True)
class ComparisonVotes:
    """One comparison with the votes that count (flagged annotators already left out by the reader)."""

    comparison: int
    kind: str
    task_key: str
    masked_task: str
    hidden_facts: list[str]
    a: CandidateText
    b: CandidateText
    choices: list[str]  # "a" | "b" | "tie", one per counted judgment, in judgment order


@dataclass
class PreferencePair:
    prompt: Messages
    chosen: str
    rejected: str
    system_chosen: str
    system_rejected: str
    votes: int
    judgments: int
    comparison: int
    task_key: str
    kind: str
    masked_task: str

    def as_trl(self, *, conversational: bool) -> dict[str, Any]:
        """A TRL preference record: conversational (messages) or standard (text) prompt and responses."""
        record: dict[str, Any]
        if conversational:
            record = {
                "prompt": self.prompt,
                "chosen": [{"role": "assistant", "content": self.chosen}],
                "rejected": [{"role": "assistant", "content": self.rejected}],
            }
        else:
            record = {"prompt": self.masked_task, "chosen": self.chosen, "rejected": self.rejected}
        return record | {
            "system_chosen": self.system_chosen,
            "system_rejected": self.system_rejected,
            "votes": self.votes,
            "judgments": self.judgments,
            "comparison": self.comparison,
            "task_key": self.task_key,
            "kind": self.kind,
        }


@dataclass
class PairReport:
    """What came out of the preference source: pairs used and everything dropped, by reason."""

    pairs: int = 0
    comparisons: int = 0
    dropped: Counter = field(default_factory=Counter)
    per_source: dict[str, int] = field(default_factory=dict)  # pairs per study slug (or file)

    def drop(self, reason: str, n: int = 1) -> None:
        if n:
            self.dropped[reason] += n

    def as_json(self) -> dict[str, Any]:
        return {
            "pairs": self.pairs,
            "comparisons": self.comparisons,
            "dropped": {r: self.dropped[r] for r in DROP_REASONS if self.dropped[r]},
            "per_source": dict(self.per_source),
        }

    def __str__(self) -> str:
        dropped = ", ".join(f"{n} {r.replace('_', ' ')}" for r, n in self.as_json()["dropped"].items())
        return f"{self.pairs} pairs" + (f" (dropped: {dropped})" if dropped else "")


def merged_preference_config(overrides: dict[str, Any] | None) -> dict[str, Any]:
    return {**DEFAULT_PREFERENCE_CONFIG, **(overrides or {})}


def preference_config_problems(overrides: Any) -> list[str]:
    if overrides is not None and not isinstance(overrides, dict):
        return ["preference options must be a JSON object"]
    problems = [
        f"unknown preference option {k!r}" for k in sorted(set(overrides or {}) - set(DEFAULT_PREFERENCE_CONFIG))
    ]
    cfg = merged_preference_config(overrides)
    if cfg["aggregation"] not in AGGREGATIONS:
        problems.append(f"aggregation must be one of {', '.join(AGGREGATIONS)}, not {cfg['aggregation']!r}")
    for key in ("exclude_flagged", "exclude_gold"):
        if not isinstance(cfg[key], bool):
            problems.append(f"{key} must be true or false, not {cfg[key]!r}")
    for key in ("min_votes", "max_questions"):
        if not _is_int(cfg[key]) or cfg[key] < 1:
            problems.append(f"{key} must be a positive integer, not {cfg[key]!r}")
    if not _is_int(cfg["seed"]):
        problems.append(f"seed must be an integer, not {cfg['seed']!r}")
    share = cfg["heldout_share"]
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share < 1:
        problems.append(f"heldout_share must be a number in [0, 1), not {share!r}")
    return problems


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# ---------------------------------------------------------------- prompts and responses


def questions_text(questions: Sequence[str]) -> str:
    # Exactly what the questioner prompt asks for: one question per line, nothing else.
    return "\n".join(str(q).strip() for q in questions if str(q).strip())


def revealed_facts(hidden_facts: Sequence[str], *candidates: CandidateText) -> list[str]:
    """The hidden facts that any of the candidates' questions drew out, in the task's order."""
    indices = {i for c in candidates for answer in c.revealed or [] for i in answer if isinstance(i, int)}
    return [hidden_facts[i] for i in sorted(indices) if 0 <= i < len(hidden_facts)]


def outline_prompt_with_facts(masked_task: str, facts: Sequence[str]) -> Messages:
    if not facts:
        return outline_prompt(masked_task, [], [])
    told = "\n".join(f"- {f}" for f in facts)
    user = f"{masked_task}\n\nWhat I can add when asked:\n{told}\n\nNow write the outline."
    return [{"role": "system", "content": OUTLINE_SYSTEM}, {"role": "user", "content": user}]


def _prompt_and_texts(cv: ComparisonVotes, max_questions: int) -> tuple[Messages, str, str]:
    if cv.kind == "questions":
        prompt = questions_prompt(cv.masked_task, max_questions)
        return prompt, questions_text(cv.a.questions), questions_text(cv.b.questions)
    prompt = outline_prompt_with_facts(cv.masked_task, revealed_facts(cv.hidden_facts, cv.a, cv.b))
    return prompt, (cv.a.outline or "").strip(), (cv.b.outline or "").strip()


# ---------------------------------------------------------------- the pair builder


def comparison_pairs(
    cv: ComparisonVotes, *, aggregation: str = "majority", min_votes: int = 1, max_questions: int = 5,
    report: PairReport | None = None,
) -> list[PreferencePair]:  # fmt: skip
    """The preference pairs of one comparison — the single builder behind the `trl` export and DPO."""
    report = report if report is not None else PairReport()
    report.comparisons += 1
    a, b, tie = (cv.choices.count(c) for c in ("a", "b", "tie"))
    n = a + b + tie
    if n == 0:
        report.drop("no_judgments")
        return []
    if n < min_votes:
        report.drop("too_few_votes")
        return []
    if aggregation == "majority":
        side = majority_side(a, b, tie)
        if side in ("tie", "split"):
            report.drop(side)
            return []
        winners = [side]
        votes = max(a, b)
    else:
        winners = [c for c in cv.choices if c in ("a", "b")]
        report.drop("tie_judgments", tie)
        votes = 1
        if not winners:
            return []
    prompt, text_a, text_b = _prompt_and_texts(cv, max_questions)
    if not text_a or not text_b:
        report.drop("empty_response", len(winners))
        return []
    if text_a == text_b:
        report.drop("identical_responses", len(winners))
        return []
    pairs = []
    for winner in winners:
        (chosen, sys_c), (rejected, sys_r) = (
            ((text_a, cv.a.system), (text_b, cv.b.system))
            if winner == "a"
            else ((text_b, cv.b.system), (text_a, cv.a.system))
        )
        pairs.append(
            PreferencePair(
                prompt=prompt,
                chosen=chosen,
                rejected=rejected,
                system_chosen=sys_c,
                system_rejected=sys_r,
                votes=votes,
                judgments=n,
                comparison=cv.comparison,
                task_key=cv.task_key,
                kind=cv.kind,
                masked_task=cv.masked_task,
            )
        )
    report.pairs += len(pairs)
    return pairs


def build_pairs(
    comparisons: Iterable[ComparisonVotes], *, config: dict[str, Any], report: PairReport | None = None
) -> Iterator[PreferencePair]:
    cfg = merged_preference_config(config)
    for cv in comparisons:
        yield from comparison_pairs(
            cv,
            aggregation=cfg["aggregation"],
            min_votes=cfg["min_votes"],
            max_questions=cfg["max_questions"],
            report=report,
        )


def majority_side(a: int, b: int, tie: int) -> str:
    """A comparison's verdict by strict majority: "a", "b", "tie" (ties outnumber both sides) or "split".
    One rule for DPO pairs, the `trl` export and warm-start examples from a study."""
    if tie > max(a, b):
        return "tie"
    if tie == max(a, b) or a == b:
        return "split"
    return "a" if a > b else "b"


# ---------------------------------------------------------------- held-out split by task


def heldout_task_keys(task_keys: Iterable[str], *, share: float, seed: int) -> set[str]:
    """round(share × tasks) tasks (at least one when share > 0 and there are two or more), chosen by a seeded
    shuffle of the sorted keys: the same keys, share and seed always give the same split."""
    keys = sorted(set(task_keys))
    if share <= 0 or len(keys) < 2:
        return set()
    k = min(len(keys) - 1, max(1, round(share * len(keys))))
    random.Random(seed).shuffle(keys)
    return set(keys[:k])


def split_of(task_key: str, heldout: set[str]) -> str:
    return HELDOUT if task_key in heldout else TRAIN


# ---------------------------------------------------------------- a trl export file as the source


def pairs_from_trl_file(path: Path | str) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows {prompt (messages), chosen, rejected, task_key, split?} of a `trl` export in conversational form,
    and the problems found, line by line. A text-prompt export is refused: DPO must train on the chat prompt
    the model is later asked with (export with `--prompt chat`)."""
    from annotation.jsonl import parse_jsonl  # pure, like this module: the platform's one JSON Lines reader

    path = Path(path)
    if not path.is_file():
        return [], [f"preferences file {path} does not exist"]
    records, errors = parse_jsonl(path.read_bytes().splitlines())
    found = [(e.line, e.message) for e in errors]
    rows = []
    for number, record in records:
        row, problem = _trl_row(record)
        if problem:
            found.append((number, problem))
        else:
            rows.append(row)
    problems = [f"preferences file line {n}: {message}" for n, message in sorted(found)[:20]]
    if not rows and not problems:
        problems.append(f"preferences file {path} holds no pairs")
    return rows, problems


def _messages_ok(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in value
        )
    )


def _response(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if _messages_ok(value) and len(value) == 1 and value[0]["role"] == "assistant":
        return value[0]["content"]
    return None


def _trl_row(record: Any) -> tuple[dict[str, Any], str]:
    prompt = record.get("prompt")
    if isinstance(prompt, str):
        return {}, "prompt is plain text; DPO needs the chat prompt (export with `--prompt chat`)"
    if not _messages_ok(prompt):
        return {}, "prompt must be a list of chat messages ({role, content})"
    chosen, rejected = _response(record.get("chosen")), _response(record.get("rejected"))
    if chosen is None or rejected is None:
        return {}, "chosen and rejected must be text or one assistant message each"
    if not chosen.strip() or not rejected.strip():
        return {}, "chosen and rejected must not be empty"
    split = record.get("split")
    if split is not None and split not in (TRAIN, HELDOUT):
        return {}, f"split must be {TRAIN!r} or {HELDOUT!r}, not {split!r}"
    key = record.get("task_key")
    # Without a task key the prompt itself identifies the task, so a task never straddles the split.
    task_key = key if isinstance(key, str) and key else hashlib.sha256(json.dumps(prompt).encode()).hexdigest()[:16]
    row = {"prompt": prompt, "chosen": chosen, "rejected": rejected, "task_key": task_key}
    if split is not None:
        row["split"] = split
    return row, ""


# ---------------------------------------------------------------- held-out accuracy with a task bootstrap


def task_bootstrap_accuracy(
    outcomes: Sequence[tuple[str, float]], *, n_boot: int = 2000, seed: int = 0
) -> dict[str, float | int]:
    """Share of pairs ranked right (1, 0.5 for a tie, 0) with a 95% percentile interval from resampling
    held-out *tasks* with replacement: pairs of one task are not independent, tasks are."""
    import numpy as np

    if not outcomes:
        return {"accuracy": math.nan, "lo": math.nan, "hi": math.nan, "n_pairs": 0, "n_tasks": 0}
    keys = sorted({k for k, _ in outcomes})
    index = {k: i for i, k in enumerate(keys)}
    correct = np.zeros(len(keys))
    total = np.zeros(len(keys))
    for key, value in outcomes:
        correct[index[key]] += value
        total[index[key]] += 1
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(keys), size=(n_boot, len(keys)))
    boot = correct[draws].sum(axis=1) / total[draws].sum(axis=1)
    return {
        "accuracy": float(correct.sum() / total.sum()),
        "lo": float(np.quantile(boot, 0.025)),
        "hi": float(np.quantile(boot, 0.975)),
        "n_pairs": len(outcomes),
        "n_tasks": len(keys),
    }


def ranked(margin: float) -> float:
    return 1.0 if margin > 0 else 0.5 if margin == 0 else 0.0
