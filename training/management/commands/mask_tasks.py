from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.jsonl import ValidationFailed, parse_jsonl, require_text, validate_rows
from training.generation import system_backend
from training.masking import FALLBACKS, METHODS, MaskOutcome, mask_rows, summarise
from training.models import System


def _clean(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        **obj,
        "key": require_text(obj, "key"),
        "domain": require_text(obj, "domain"),
        "full_task": require_text(obj, "full_task"),
    }


class Command(BaseCommand):
    help = (
        "Make partially specified tasks: read fully specified tasks (key, domain, full_task) from a JSON "
        "Lines file and write them with masked_task and hidden_facts (objects with text, slot and value), "
        "ready for import_tasks. Methods: rule (deterministic for --seed) or llm (needs --system; seeded, "
        "temperature 0 unless --temperature). Every task passes the masking gate or is reported by line and "
        "left out (or, with --fallback rule, masked by the rule method). Bad input lines are reported with "
        "their numbers and nothing is written."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file")
        parser.add_argument("-o", "--output", required=True)
        parser.add_argument("--method", choices=METHODS, default="rule")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--fraction", type=float, default=0.5, help="share of the key information to hide")
        parser.add_argument("--system", help="system that extracts and rewrites (llm method)")
        parser.add_argument("--temperature", type=float, default=0.0, help="llm method (default 0: greedy)")
        parser.add_argument(
            "--fallback",
            choices=FALLBACKS,
            default="none",
            help="what to do with a task whose llm masking fails the gate: mask it by rule, or leave it out",
        )

    def handle(self, *args: object, **options: Any) -> None:
        src = Path(options["file"])
        if not src.is_file():
            raise CommandError(f"{src}: no such file")
        if not 0 <= options["fraction"] <= 1:
            raise CommandError("--fraction must be between 0 and 1")
        with src.open("rb") as handle:
            rows, errors = parse_jsonl(handle)
        cleaned = validate_rows(rows, errors, _clean)
        if errors:
            listing = "\n".join(f"  {src}: {e}" for e in sorted(errors, key=lambda e: e.line))
            raise CommandError(f"{len(errors)} bad line(s); nothing was written:\n{listing}")
        backend, params = None, None
        if options["method"] == "llm":
            if not options["system"]:
                raise CommandError("--method llm needs --system NAME")
            system = System.objects.filter(name=options["system"]).first()
            if system is None:
                raise CommandError(f"unknown system '{options['system']}'")
            backend, params = system_backend(system), system.generation_params
        try:
            outcomes = mask_rows(
                [row for _, row in cleaned],
                method=options["method"],
                seed=options["seed"],
                fraction=options["fraction"],
                backend=backend,
                params=params,
                fallback=options["fallback"],
                temperature=options["temperature"],
            )
        except (ValueError, ValidationFailed) as exc:
            raise CommandError(str(exc)) from None
        for (line, row), outcome in zip(cleaned, outcomes, strict=True):
            self._report(src, line, row["key"], outcome)
        written = [o.row for o in outcomes if o.row is not None]
        out = Path(options["output"])
        tmp = out.with_name(out.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as handle:
            for row in written:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        tmp.replace(out)
        summary = summarise(outcomes)
        facts = summary["facts_per_task"]
        methods = ", ".join(f"{n} by {m}" for m, n in sorted(summary["by_method"].items())) or "none"
        self.stdout.write(
            f"{summary['masked']} of {summary['tasks']} tasks masked ({methods}), "
            f"{summary['left_out']} left out → {out}\n"
            f"facts per task: mean {facts['mean']}, min {facts['min']}, max {facts['max']} "
            f"({summary['facts_total']} hidden facts)"
        )
        failures = summary["gate_failures"]
        self.stdout.write(
            "gate failures by reason (tasks): "
            + (", ".join(f"{reason} {n}" for reason, n in failures.items()) if failures else "none")
        )

    def _report(self, src: Path, line: int, key: str, outcome: MaskOutcome) -> None:
        if not outcome.problems and not outcome.fallback_problems:
            return
        for problem in outcome.problems:
            self.stderr.write(f"  {src}: line {line} ({key}): {outcome.tried} masking failed the gate: {problem}")
        for problem in outcome.fallback_problems:
            self.stderr.write(f"  {src}: line {line} ({key}): rule fallback failed the gate: {problem}")
        if outcome.row is not None:
            self.stderr.write(f"  {src}: line {line} ({key}): written by the {outcome.method} method instead")
        else:
            self.stderr.write(f"  {src}: line {line} ({key}): left out")
