"""`manage.py reward_audit [--matcher …] [--threshold …] [--split dev|test]`: the reward measured against the
hand-labelled elicitation benchmark (training/benchmarks/elicitation)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from training.audit import TARGET_PRECISION, TARGET_RECALL, AuditReport, audit_split, tune
from training.rewards import MATCHERS, RewardSpec, default_spec


class Command(BaseCommand):
    help = (
        "Audit the elicitation reward on the labelled benchmark: question→fact and outline→fact precision, "
        "recall and F1, every violated family ordering, and the mean reward per family (under the matcher and "
        "under the labels). --tune searches the matcher's parameters on DEV (never on TEST)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--matcher", choices=MATCHERS, help="default: the evaluation spec's matcher")
        parser.add_argument("--threshold", type=float, help="the matcher's threshold (default: its tuned one)")
        parser.add_argument("--split", choices=["dev", "test", "all"], default="all")
        parser.add_argument("--judge-system", default="", help="the System that judges (matcher llm)")
        parser.add_argument("--tune", action="store_true", help="search parameters on DEV and audit with them")
        parser.add_argument("--json", dest="json_path", help="also write the report(s) to this JSON file")

    def handle(self, *args: object, **options: Any) -> None:
        overrides: dict[str, Any] = {}
        if options["matcher"]:
            overrides["matcher"] = options["matcher"]
        if options["judge_system"]:
            overrides["judge_system"] = options["judge_system"]
        try:
            spec = default_spec().with_overrides(overrides)
            if options["threshold"] is not None:
                spec = spec.with_overrides({"threshold": options["threshold"]})
            if options["tune"]:
                spec, _ = tune(spec)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        simulator = _simulator(spec)
        splits = ["dev", "test"] if options["split"] == "all" else [options["split"]]
        self.stdout.write(f"reward spec: {spec.label()}")
        self.stdout.write(json.dumps(spec.as_dict(), sort_keys=True))
        reports = [audit_split(split, spec, simulator) for split in splits]
        for report in reports:
            self._print(report)
        if options["json_path"]:
            with open(options["json_path"], "w", encoding="utf-8") as handle:
                json.dump([r.as_dict() for r in reports], handle, indent=2)

    def _print(self, report: AuditReport) -> None:
        w = self.stdout.write
        w(f"\n== {report.split.upper()} ({report.n_tasks} tasks) ==")
        for name, prf in (("question→fact", report.questions), ("redundant (given)", report.redundant),
                          ("outline→fact", report.outlines)):  # fmt: skip
            w(f"{name:18} precision {prf.precision:.3f}  recall {prf.recall:.3f}  F1 {prf.f1:.3f}  "
              f"(tp {prf.tp}, fp {prf.fp}, fn {prf.fn})")  # fmt: skip
        w("mean reward per family (matcher | labels):")
        for family, value in report.family_reward.items():
            w(f"  {family:10} {value:+.3f} | {report.family_reward_labelled.get(family, float('nan')):+.3f}")
        targeted = len(report.targeted_violations)
        w(f"ordering violations: {len(report.violations)} ({targeted} among GOOD, PARTIAL, DUPLICATE, REDUNDANT, "
          f"GIBBERISH); with the labels as matcher: {len(report.label_violations)}")  # fmt: skip
        for v in report.violations:
            mark = "*" if v.targeted else " "
            w(f" {mark} {v.task}: {v.ordering} violated ({v.higher:+.3f} vs {v.lower:+.3f})")
        verdict = "meets" if report.meets_targets() else "MISSES"
        w(f"targets (precision ≥ {TARGET_PRECISION}, recall ≥ {TARGET_RECALL}, no * violation): {verdict}")


def _simulator(spec: RewardSpec):
    from training.generation import spec_simulator

    return spec_simulator(spec)
