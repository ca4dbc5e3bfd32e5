from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from training.generation import METRICS, auto_eval_run
from training.models import System


class Command(BaseCommand):
    help = (
        "Automatic evaluation: per system, mean elicitation reward, share of hidden facts elicited, "
        "redundancy and duplication rates, outline coverage of hidden facts, with 95% bootstrap intervals and "
        "relative improvement over --baseline. Results are stored (admin: /generation/auto-eval/)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--systems", nargs="+", required=True)
        parser.add_argument("--split", default="")
        parser.add_argument("--baseline")
        parser.add_argument("--matcher", choices=["embedding", "lexical"], default="embedding")
        parser.add_argument("--json", dest="json_path", help="also write the results to this JSON file")

    def _system(self, name: str) -> System:
        system = System.objects.filter(name=name).first()
        if system is None:
            raise CommandError(f"unknown system '{name}'")
        return system

    def handle(self, *args: object, **options: Any) -> None:
        systems = [self._system(n) for n in options["systems"]]
        baseline = self._system(options["baseline"]) if options["baseline"] else None
        results = auto_eval_run(systems=systems, split=options["split"], baseline=baseline, matcher=options["matcher"])
        header = f"{'system':24} {'n':>5} " + " ".join(f"{m:>24}" for m in METRICS)
        self.stdout.write(header)
        for result in results:
            cells = []
            for name in METRICS:
                m = result.metrics.get(name) or {}
                cells.append(f"{_f(m.get('mean'))} [{_f(m.get('lo'))},{_f(m.get('hi'))}]".rjust(24))
            self.stdout.write(f"{result.system.name:24} {result.n_tasks:>5} " + " ".join(cells))
            human = result.metrics.get("human_answers")
            if human:
                h, sim = human["reward_human"], human["reward_simulated"]
                self.stdout.write(
                    f"{'':24}   with people's answers ({human['n_answer_sets']} sets): reward "
                    f"{_f(h.get('mean'))} [{_f(h.get('lo'))},{_f(h.get('hi'))}] vs simulated "
                    f"{_f(sim.get('mean'))} [{_f(sim.get('lo'))},{_f(sim.get('hi'))}]"
                )
            vs = result.metrics.get("vs_baseline")
            if vs:
                rel = ", ".join(f"{k} {_pct(vs[k].get('mean'))}" for k in ("reward", "coverage", "outline_coverage"))
                self.stdout.write(f"{'':24}   vs {vs['baseline']} on {vs['n_paired']} tasks: {rel}")
        if options["json_path"]:
            payload: list[dict[str, Any]] = [
                {"system": r.system.name, "split": r.split, "n_tasks": r.n_tasks, "metrics": r.metrics} for r in results
            ]
            with open(options["json_path"], "w", encoding="utf-8") as handle:
                json.dump(payload, handle, indent=2)


def _f(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:+.0%}"
