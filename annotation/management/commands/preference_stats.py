"""Preference statistics of a study, or of any judgments CSV (no database needed for that)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.stats import DEFAULT_BOOT, Table, TableError, preference_report
from annotation.stats.io import read_judgments_csv


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _p(x: float) -> str:
    return f"{x:.2g}" if x >= 1e-4 else f"{x:.1e}"


def format_report(report: dict[str, list[dict[str, Any]]]) -> str:
    lines: list[str] = []
    kinds = sorted({row["kind"] for row in report["pairs"]})
    for kind in kinds:
        lines.append(f"== {kind or 'all'} ==")
        lines.append("Fixed-sample figures (valid if you fixed n in advance):")
        for r in (row for row in report["pairs"] if row["kind"] == kind):
            # margin_a = 2·win_rate_a − 1, so the win-rate bootstrap interval maps onto the margin.
            lo, hi = 2 * r["bootstrap_low"] - 1, 2 * r["bootstrap_high"] - 1
            lines.append(
                f"{r['system_a']} vs {r['system_b']}: win {_pct(r['win_share'])} · tie {_pct(r['tie_share'])} · "
                f"loss {_pct(r['loss_share'])} · margin {100 * r['margin_a']:+.1f}% [{100 * lo:+.1f}, {100 * hi:+.1f}]"
                f" · p={_p(r['p_value'])} (Holm {_p(r['p_holm'])}) · n={r['n']} on {r['items']} items"
            )
        ratings = [row for row in report["ratings"] if row["kind"] == kind]
        if ratings:
            lines.append("Bradley–Terry (Elo scale, 95% bootstrap):")
            lines += [
                f"  {r['rank']}. {r['system']}: {r['rating']:.0f} [{r['rating_low']:.0f}, {r['rating_high']:.0f}]"
                f" · rank {r['rank_low']}–{r['rank_high']}"
                for r in ratings
            ]
        for a in (row for row in report["agreement"] if row["kind"] == kind):
            fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
            lines.append(
                f"Agreement: Krippendorff α {fmt(a['krippendorff_alpha'])} · Fleiss κ {fmt(a['fleiss_kappa'])} · "
                f"mean Cohen κ {fmt(a['cohen_kappa_mean'])} ({a['cohen_pairs']} pairs) · "
                f"raw {_pct(a['percent_agreement'])}"
            )
        bias = [row for row in report["position_bias"] if row["kind"] == kind]
        for b in (row for row in bias if row["annotator"] is None):
            lines.append(
                f"Position bias: chose left {_pct(b['left_share'])} of {b['n']} · p={_p(b['p_value'])}"
                f" · ties {_pct(b['tie_share'])} of {b['judgments']}"
            )
        annotators = [row for row in bias if row["annotator"] is not None]
        if annotators:
            lines.append("Per annotator (position habit; tie share far above everyone's can mean habitual ties):")
            lines += [
                f"  {b['annotator']}: chose left {_pct(b['left_share'])} of {b['n']} decisive · p={_p(b['p_value'])}"
                f" · ties {_pct(b['tie_share'])} of {b['judgments']}"
                for b in annotators
            ]
        sequential = [row for row in report.get("sequential", []) if row["kind"] == kind]
        if sequential:
            first = sequential[0]
            lines.append(
                f"Anytime-valid (valid however often you look; {100 * (1 - first['alpha']):.0f}% over all "
                f"{first['family_size']} pairs together, Bonferroni: decided once e-value ≥ "
                f"{first['family_size'] / first['alpha']:.0f} on one side):"
            )
            for r in sequential:
                verdict = {"a": f"{r['system_a']} preferred", "b": f"{r['system_b']} preferred"}.get(
                    r["decided"], "open"
                )
                lines.append(
                    f"  {r['system_a']} vs {r['system_b']}: win rate {_pct(r['win_rate_a'])} "
                    f"[{_pct(r['cs_low'])}, {_pct(r['cs_high'])}] · e-value {r['e_value']:.3g} · {verdict} · n={r['n']}"
                )
        lines.append("")
    return "\n".join(lines)


def _interval(m: dict[str, Any] | None) -> str:
    if not m or m.get("mean") is None:
        return "n/a"
    if m.get("lo") is None:
        return f"{m['mean']:.3f}"
    return f"{m['mean']:.3f} [{m['lo']:.3f}, {m['hi']:.3f}]"


def format_fidelity(report: dict[str, Any]) -> str:
    if not report["overall"]:
        return "No answer sets yet."
    lines = [f"== simulator fidelity ({report['n_transcripts']} answer sets, matcher {report.get('matcher', '?')}) =="]
    for label, g in [("all systems", report["overall"])] + [(s["system"], s) for s in report["systems"]]:
        lines.append(
            f"{label}: κ {_interval(g['kappa'])} · agree {_interval(g['agreement'])} · "
            f"coverage human {_interval(g['human_coverage'])} sim {_interval(g['simulated_coverage'])} · "
            f"optimism {_interval(g['optimism'])} · reward human {_interval(g['human_reward'])} "
            f"sim {_interval(g['simulated_reward'])} · false reveals {g['false_reveals']} · misses {g['misses']} "
            f"· {g['n_transcripts']} sets on {g['n_tasks']} tasks"
        )
    if report["ranking"]:
        lines.append(
            f"Kendall τ (system rankings, human vs simulated reward): {_interval(report['ranking']['kendall_tau'])}"
        )
        lines += [
            f"  {r['system']}: rank {r['human_rank']} by people, {r['simulated_rank']} by the simulator"
            for r in report["ranking"]["systems"]
        ]
    return "\n".join(lines)


class Command(BaseCommand):
    help = "Win/tie/loss, margins with intervals, Bradley–Terry ratings, agreement and position bias."

    def add_arguments(self, parser: CommandParser) -> None:
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--study", help="study slug")
        source.add_argument("--from-csv", help="a judgments CSV (e.g. from export_judgments)")
        parser.add_argument("--reference", help="system always reported as system_b (e.g. the baseline)")
        parser.add_argument("--exclude-flagged", action="store_true", help="drop flagged annotators")
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        parser.add_argument("--rounds", type=int, default=DEFAULT_BOOT, help="bootstrap resamples (≥ 1000)")
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args: Any, **opts: Any) -> None:
        if opts["rounds"] < DEFAULT_BOOT:
            raise CommandError(f"--rounds must be at least {DEFAULT_BOOT}")
        try:
            table = self._table(opts)
            if opts["reference"] and len(table) and opts["reference"] not in table.systems:
                raise CommandError(f"reference system {opts['reference']!r} has no judgments here")
            report = preference_report(
                table,
                reference=opts["reference"],
                rounds=opts["rounds"],
                seed=opts["seed"],
                family_size=self._family_size(opts),
            )
        except (TableError, ValueError, OSError) as exc:
            raise CommandError(str(exc)) from exc
        simulator = self._simulator(opts)
        if simulator is not None:
            report["simulator"] = simulator
        if opts["json"]:
            self.stdout.write(json.dumps(report, indent=1))
        elif simulator is not None:
            self.stdout.write(format_fidelity(simulator))
        elif not report["pairs"]:
            self.stdout.write("No judgments.")
        else:
            self.stdout.write(format_report(report))

    def _family_size(self, opts: dict[str, Any]) -> int | None:
        """The study's designed pairs; from a CSV only the pairs that have judgments are known."""
        if opts["from_csv"]:
            return None
        from annotation.models import Study
        from annotation.selectors_stats import study_design_pair_count

        return study_design_pair_count(study=Study.objects.get(slug=opts["study"])) or None

    def _simulator(self, opts: dict[str, Any]) -> dict[str, Any] | None:
        """An answer study's simulator-fidelity report (people's answers vs the simulator's)."""
        if not opts["study"]:
            return None
        from annotation.answers_report import study_fidelity
        from annotation.models import Study, StudyKind

        study = Study.objects.filter(slug=opts["study"], kind=StudyKind.ANSWER).first()
        if study is None:
            return None
        return study_fidelity(
            study=study, exclude_flagged=opts["exclude_flagged"], rounds=opts["rounds"], seed=opts["seed"]
        )

    def _table(self, opts: dict[str, Any]) -> Table:
        if opts["from_csv"]:
            return read_judgments_csv(opts["from_csv"], exclude_flagged=opts["exclude_flagged"])
        from annotation.models import Study
        from annotation.selectors_stats import study_judgments_table

        study = Study.objects.filter(slug=opts["study"]).first()
        if study is None:
            raise CommandError(f"no study with slug {opts['study']!r}")
        return study_judgments_table(study=study, exclude_flagged=opts["exclude_flagged"])
