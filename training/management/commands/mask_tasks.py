from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.jsonl import ValidationFailed, parse_jsonl, require_text, validate_rows
from training.generation import system_backend
from training.masking import mask_rows
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
        "Lines file and write them with masked_task and hidden_facts, ready for import_tasks. Methods: "
        "rule (deterministic for --seed) or llm (needs --system). Bad input lines are reported with their "
        "numbers and nothing is written."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file")
        parser.add_argument("-o", "--output", required=True)
        parser.add_argument("--method", choices=["rule", "llm"], default="rule")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--fraction", type=float, default=0.5, help="share of the non-core units to hide")
        parser.add_argument("--system", help="system that rewrites tasks (llm method)")

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
            masked = mask_rows(
                [row for _, row in cleaned],
                method=options["method"],
                seed=options["seed"],
                fraction=options["fraction"],
                backend=backend,
                params=params,
            )
        except (ValueError, ValidationFailed) as exc:
            raise CommandError(str(exc)) from None
        out = Path(options["output"])
        tmp = out.with_name(out.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as handle:
            for row in masked:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        tmp.replace(out)
        hidden = sum(len(r["hidden_facts"]) for r in masked)
        self.stdout.write(self.style.SUCCESS(f"{len(masked)} tasks masked ({hidden} hidden facts) → {out}"))
