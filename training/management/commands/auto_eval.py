from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from training.autoeval import COMPARED, auto_eval_run
from training.models import System
from training.rewards import MATCHERS, METRICS, RewardSpec, default_spec


class Command(BaseCommand):
    help = (
        "Automatic evaluation: per system, mean elicitation reward, share of hidden facts elicited, "
        "redundancy and duplication rates, outline coverage of hidden values, with 95% bootstrap intervals, and "
        "the paired difference from --baseline. Every system is scored under one reward spec: --spec, else "
        "the baseline's, else the evaluation default. Results are stored (admin: /generation/auto-eval/)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--systems", nargs="+", required=True)
        parser.add_argument("--split", default="")
        parser.add_argument("--baseline")
        parser.add_argument("--spec", help="a JSON file with reward-spec fields (others take the evaluation default)")
        parser.add_argument("--matcher", choices=MATCHERS, help="the evaluation spec with this matcher instead")
        parser.add_argument("--json", dest="json_path", help="also write the results to this JSON file")

    def _system(self, name: str) -> System:
        system = System.objects.filter(name=name).first()
        if system is None:
            raise CommandError(f"unknown system '{name}'")
        return system

    def _spec(self, options: dict[str, Any]) -> RewardSpec | None:
        try:
            if options["spec"]:
                fields = json.loads(Path(options["spec"]).read_text(encoding="utf-8"))
                spec = default_spec().with_overrides(fields)
            else:
                spec = None
            if options["matcher"]:
                spec = (spec or default_spec()).with_overrides({"matcher": options["matcher"]})
        except (OSError, ValueError, TypeError) as exc:
            raise CommandError(f"bad reward spec: {exc}") from exc
        return spec

    def handle(self, *args: object, **options: Any) -> None:
        systems = [self._system(n) for n in options["systems"]]
        baseline = self._system(options["baseline"]) if options["baseline"] else None
        results = auto_eval_run(systems=systems, split=options["split"], baseline=baseline, spec=self._spec(options))
        if results:
            self.stdout.write(f"reward spec: {results[0].metrics.get('spec_label')}")
        header = f"{'system':24} {'n':>5} " + " ".join(f"{m:>24}" for m in METRICS)
        self.stdout.write(header)
        for result in results:
            cells = []
            for name in METRICS:
                m = result.metrics.get(name) or {}
                cells.append(f"{_f(m.get('mean'))} [{_f(m.get('lo'))},{_f(m.get('hi'))}]".rjust(24))
            self.stdout.write(f"{result.system.name:24} {result.n_tasks:>5} " + " ".join(cells))
            vs = result.metrics.get("vs_baseline")
            if vs:
                self.stdout.write(f"{'':24}   vs {vs['baseline']} on {vs['n_paired']} paired tasks:")
                for name in COMPARED:
                    self.stdout.write(f"{'':24}     {name}: {_difference(vs[name])}")
        if options["json_path"]:
            payload: list[dict[str, Any]] = [
                {
                    "system": r.system.name,
                    "split": r.split,
                    "n_tasks": r.n_tasks,
                    "metrics": r.metrics,
                    "reward_spec": r.reward_spec,
                }
                for r in results
            ]
            with open(options["json_path"], "w", encoding="utf-8") as handle:
                json.dump(payload, handle, indent=2)


def _difference(entry: dict[str, Any]) -> str:
    d = entry.get("difference") or {}
    text = (
        f"difference {_f(d.get('mean'), signed=True)} [{_f(d.get('lo'), signed=True)}, {_f(d.get('hi'), signed=True)}]"
    )
    relative = entry.get("relative")
    if relative:
        return (
            text + f"; relative {_pct(relative.get('mean'))} [{_pct(relative.get('lo'))}, {_pct(relative.get('hi'))}]"
        )
    return text + f"; {entry.get('relative_note') or 'no relative change'}"


def _f(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:+.0%}"
