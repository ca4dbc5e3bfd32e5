"""Masking audit: does rule masking find and hide the key information a person would mark?

Labels: benchmarks/data/masking_labels.jsonl — requests written for this audit (domains the demo does not
use), with the key-information spans (numbers, amounts, dates, durations, named people, places and
organisations, explicit constraints) marked by hand from what the text says, before the code was run on them.

Side by side with the baseline, the previous rule method (mask-rule-v1: hide a seeded share of whole
sentences/clauses other than the request), at fraction 0.5 and 1 on the labelled requests: the share of
labelled spans gone from the masked text, the share of removed characters that are labelled key information,
and the gate pass rate (v1's facts read as plain strings, as import derives their slot and value).

Prints, for the span finder (every candidate, as with --fraction 1):
  precision (candidates that overlap a labelled span), recall (labelled spans overlapped by a candidate), F1;
then, after masking at fraction 1: the share of labelled spans gone from the masked text, the share of tasks
whose deliverable word survives, and the gate pass rate; and the same gate figures on the demo's 36 requests
at fraction 0.5 and 1.

    PYTHONPATH=. python benchmarks/masking_audit.py [--show]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from training.facts import fact_from_raw  # noqa: E402
from training.masking import mask_rule  # noqa: E402
from training.masking_gate import gate  # noqa: E402
from training.masking_rules import find_spans, normalise  # noqa: E402

LABELS = ROOT / "benchmarks" / "data" / "masking_labels.jsonl"
DEMO = ROOT / "annotation" / "fixtures" / "demo" / "tasks.jsonl"


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    inter = min(a[1], b[1]) - max(a[0], b[0])
    return inter > 0 and inter >= 0.5 * min(a[1] - a[0], b[1] - b[0])


def mask_v1(text: str, *, seed: int, fraction: float, key: str) -> tuple[str, list[str]]:
    """The baseline: mask-rule-v1 as it was (sentences and ;-clauses; the first imperative unit stays)."""
    units = [u.strip() for s in re.split(r"(?<=[.!?])\s+(?=[\"'(A-Z0-9])", text.strip()) for u in s.split("; ")]
    core = next(
        (
            i
            for i, u in enumerate(units)
            if re.match(
                r"(?:please\s+)?(?:write|draft|outline|plan|help|"
                r"create|give|can you|could you|i need|i'd like)",
                u,
                re.I,
            )
        ),
        0,
    )
    rest = [i for i in range(len(units)) if i != core]
    n_hide = max(1, round(fraction * len(rest))) if rest and fraction > 0 else 0
    hidden = set(random.Random(f"{seed}:{key}").sample(rest, n_hide))
    return " ".join(u for i, u in enumerate(units) if i not in hidden), [units[i] for i in sorted(hidden)]


def _removal_figures(text: str, masked: str, gold_spans: list[str]) -> tuple[int, int, int]:
    """(labelled spans gone, labelled characters gone, characters gone)."""
    gone_spans = sum(normalise(s) not in normalise(masked) for s in gold_spans)
    gone_key = sum(len(s) for s in gold_spans if normalise(s) not in normalise(masked))
    return gone_spans, gone_key, max(len(text) - len(masked), 1)


def side_by_side(rows: list[dict]) -> dict[str, float]:
    figures: dict[str, float] = {}
    n_gold = sum(len(r["key_spans"]) for r in rows)
    for fraction in (0.5, 1.0):
        for name in ("v1-sentences", "v2-key-information"):
            spans_gone = key_chars = chars = passed = 0
            for row in rows:
                text = row["full_task"]
                if name == "v1-sentences":
                    masked, hidden = mask_v1(text, seed=0, fraction=fraction, key=row["key"])
                    facts = [fact_from_raw(h) for h in hidden]
                    ok = not gate(full_task=text, masked_task=masked, facts=facts)
                else:
                    result = mask_rule(text, seed=0, fraction=fraction, key=row["key"])
                    masked, ok = result.masked_task, result.passed
                a, b, c = _removal_figures(text, masked, row["key_spans"])
                spans_gone, key_chars, chars, passed = spans_gone + a, key_chars + b, chars + c, passed + ok
            figures[f"{name}@{fraction} labelled_spans_hidden"] = spans_gone / n_gold
            figures[f"{name}@{fraction} key_share_of_removed_text"] = key_chars / chars
            figures[f"{name}@{fraction} gate_pass"] = passed / len(rows)
    return figures


def audit(show: bool = False) -> dict[str, float]:
    rows = [json.loads(line) for line in LABELS.read_text(encoding="utf-8").splitlines() if line.strip()]
    tp_pred = n_pred = tp_gold = n_gold = hidden = 0
    kept_deliverable = passed = 0
    for row in rows:
        text = row["full_task"]
        gold = []
        for span in row["key_spans"]:
            start = text.find(span)
            if start < 0:
                raise SystemExit(f"{row['key']}: labelled span {span!r} is not in the text")
            gold.append((start, start + len(span)))
        _, spans = find_spans(text)
        pred = [(s.start, s.end) for s in spans]
        tp_pred += sum(any(_overlaps(p, g) for g in gold) for p in pred)
        tp_gold += sum(any(_overlaps(g, p) for p in pred) for g in gold)
        n_pred, n_gold = n_pred + len(pred), n_gold + len(gold)
        masked = mask_rule(text, seed=0, fraction=1.0, key=row["key"])
        hidden += sum(normalise(s) not in normalise(masked.masked_task) for s in row["key_spans"])
        kept_deliverable += row["deliverable"] in masked.masked_task.lower()
        passed += masked.passed
        if show:
            print(f"\n{row['key']}\n  masked: {masked.masked_task}")
            print("  missed: " + "; ".join(text[a:b] for a, b in gold if not any(_overlaps((a, b), p) for p in pred)))
            print("  extra:  " + "; ".join(text[a:b] for a, b in pred if not any(_overlaps((a, b), g) for g in gold)))
    precision, recall = tp_pred / max(n_pred, 1), tp_gold / max(n_gold, 1)
    figures = {
        "tasks": len(rows),
        "labelled_spans": n_gold,
        "candidates": n_pred,
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / max(precision + recall, 1e-9),
        "hidden_at_fraction_1": hidden / max(n_gold, 1),
        "deliverable_kept": kept_deliverable / len(rows),
        "gate_pass": passed / len(rows),
    }
    figures.update(side_by_side(rows))
    demo = [json.loads(line) for line in DEMO.read_text(encoding="utf-8").splitlines()]
    for fraction in (0.5, 1.0):
        results = [mask_rule(r["full_task"], seed=0, fraction=fraction, key=r["key"]) for r in demo]
        figures[f"demo_gate_pass@{fraction}"] = sum(m.passed for m in results) / len(results)
        figures[f"demo_facts_per_task@{fraction}"] = statistics.fmean(len(m.facts) for m in results)
        figures[f"demo_masked_share_of_length@{fraction}"] = statistics.fmean(
            len(m.masked_task) / len(r["full_task"]) for m, r in zip(results, demo, strict=True)
        )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show", action="store_true", help="print each masked request, missed and extra spans")
    figures = audit(parser.parse_args().show)
    print("\nmasking audit (rule method, labelled requests)")
    for name, value in figures.items():
        print(f"  {name:48s} {value:.3f}" if isinstance(value, float) else f"  {name:48s} {value}")


if __name__ == "__main__":
    main()
