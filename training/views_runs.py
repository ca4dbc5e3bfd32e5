"""Training-run pages for staff: the curve as server-rendered SVG, and a small JSON progress endpoint the
admin run page polls while the run is running. Model output is untrusted: everything is escaped."""

from __future__ import annotations

import math
from collections.abc import Sequence

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.utils.html import escape
from django.views.decorators.http import require_GET

from .models import Algorithm, JobStatus, Phase, TrainingRun
from .runs import (
    training_run_curve,
    training_run_is_dead,
    training_run_reward_spec,
    training_run_signal_warning,
    training_run_spec_differences,
)

# Panels of (title, series): a series is (legend, metric key, phase or None for any phase).
PANELS = (
    (
        "Reward (mean over the generation batch)",
        (
            ("reward", "reward", Phase.GRPO),
            ("elicitation", "rewards/elicitation_reward/mean", Phase.GRPO),
            ("coverage", "rewards/coverage/mean", Phase.GRPO),
        ),
    ),
    ("Loss", (("warm-start loss (SFT)", "loss", Phase.SFT), ("GRPO loss", "loss", Phase.GRPO))),
    (
        "Groups without learning signal (share with zero reward variance)",
        (
            ("elicitation", "frac_reward_zero_std/elicitation_reward", Phase.GRPO),
            ("total reward", "frac_reward_zero_std", Phase.GRPO),
        ),
    ),
)
DPO_PANELS = (
    (
        "Implicit reward β·log(π/π_ref) (training batch)",
        tuple((key, key, None) for key in ("rewards/chosen", "rewards/rejected", "rewards/margins")),
    ),
    (
        "Share of the batch's pairs ranked right (rewards/accuracies)",
        (("rewards/accuracies", "rewards/accuracies", None),),
    ),
    ("Loss", (("loss", "loss", None),)),
)
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")


def _ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    return [lo + (hi - lo) * i / n for i in range(n + 1)]


LEGEND_ROW = 15


def line_chart_svg(
    title: str,
    series: dict[str, Sequence[tuple[int, float]]],
    *,
    width: int = 560,
    height: int = 220,
    markers: Sequence[tuple[float, str]] = (),
) -> str:
    """One panel: value against step, a line per series, axes with ticks, vertical markers (step, label) such as
    the end of the warm start, and a legend below the axis with one row per series (names such as
    "rewards/elicitation_reward/mean" are long: side by side they overlapped). Pure string building; no style
    attributes (Content-Security-Policy)."""
    left, right, top, bottom = 56, 12, 24, 34
    pts = [(x, y) for s in series.values() for x, y in s if math.isfinite(y)]
    plot_h = height - top - bottom
    total_h = height + LEGEND_ROW * len(series) if pts else height
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{total_h}" viewBox="0 0 {width} {total_h}" '
        f'role="img" aria-label="{escape(title)}" font-family="sans-serif" font-size="11">',
        f'<text x="{left}" y="14" font-weight="bold">{escape(title)}</text>',
    ]
    if not pts:
        parts.append(f'<text x="{left}" y="{height // 2}" fill="#595959">No logged steps yet.</text></svg>')
        return "".join(parts)
    xs = [x for x, _ in pts] + [m for m, _ in markers]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(y for _, y in pts), max(y for _, y in pts)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 == y0:
        y0, y1 = y0 - 0.5, y1 + 0.5
    plot_w = width - left - right

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * plot_w

    def sy(y: float) -> float:
        return top + (1 - (y - y0) / (y1 - y0)) * plot_h

    parts.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>')
    for y in _ticks(y0, y1):
        parts.append(f'<line x1="{left - 4}" x2="{left}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" stroke="#999"/>')
        parts.append(f'<text x="{left - 6}" y="{sy(y) + 4:.1f}" text-anchor="end">{y:.3g}</text>')
    for x in sorted({round(v) for v in _ticks(x0, x1)}):
        parts.append(f'<text x="{sx(x):.1f}" y="{height - bottom + 14}" text-anchor="middle">{x}</text>')
    parts.append(f'<text x="{left + plot_w / 2:.0f}" y="{height - 4}" text-anchor="middle">step</text>')
    for at, label in markers:
        parts.append(
            f'<line x1="{sx(at):.1f}" x2="{sx(at):.1f}" y1="{top}" y2="{top + plot_h}" stroke="#555" '
            f'stroke-dasharray="4 3"/><text x="{sx(at) + 3:.1f}" y="{top + plot_h - 4}" fill="#555">'
            f"{escape(label)}</text>"
        )
    for i, (name, points) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        finite = [(x, y) for x, y in points if math.isfinite(y)]
        ly = height + LEGEND_ROW * i
        parts.append(f'<rect x="{left}" y="{ly + 4}" width="14" height="3" fill="{colour}" data-legend="{i}"/>')
        parts.append(f'<text x="{left + 20}" y="{ly + 10}" data-legend="{i}">{escape(name)}</text>')
        if not finite:
            continue
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in finite)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.8" points="{path}"/>')
        if len(finite) == 1:
            parts.append(f'<circle cx="{sx(finite[0][0]):.1f}" cy="{sy(finite[0][1]):.1f}" r="3" fill="{colour}"/>')
    parts.append("</svg>")
    return "".join(parts)


def run_curve_svg(run: TrainingRun) -> str:
    curve = training_run_curve(run)
    warm = [p.step for p in curve if p.phase == Phase.SFT]
    # The phase boundary, drawn on every panel: one run, one step axis, warm start first.
    markers = [(max(warm) + 0.5, "warm start | GRPO")] if warm and len(warm) < len(curve) else []
    if warm and not markers:
        markers = [(max(warm), "warm start")]
    panels = []
    for title, specs in DPO_PANELS if run.algorithm == Algorithm.DPO else PANELS:
        series = {
            label: [
                (p.step, float(p.values[key]))
                for p in curve
                if isinstance(p.values.get(key), int | float) and (phase is None or p.phase == phase)
            ]
            for label, key, phase in specs
        }
        shown = {k: v for k, v in series.items() if v} or {specs[0][0]: []}
        panels.append(line_chart_svg(title, shown, markers=markers))
    return "".join(panels)


ACCURACY_MEASURES = (
    ("implicit", "implicit reward β·log(π/π_ref)"),
    ("likelihood", "log-likelihood log π(y | x)"),
)


def heldout_accuracy_rows(evaluation: dict) -> list[dict]:
    """Table rows for the run page and `manage.py train`: each measure, base and trained, with 95% intervals."""
    rows = []
    for key, label in ACCURACY_MEASURES:
        cells = {}
        for phase in ("base", "trained"):
            value = (evaluation.get(phase) or {}).get(key)
            cells[phase] = value if isinstance(value, dict) and math.isfinite(value.get("accuracy", math.nan)) else None
        rows.append({"measure": key, "label": label, **cells})
    return rows


def heldout_accuracy_svg(evaluation: dict, *, width: int = 560) -> str:
    """Base vs trained held-out accuracy with 95% bootstrap intervals, per measure, on a 0–1 axis (0.5 = chance)."""
    rows = heldout_accuracy_rows(evaluation)
    left, right, top, row_h = 190, 16, 26, 46
    height = top + row_h * len(rows) + 30
    plot_w = width - left - right

    def sx(v: float) -> float:
        return left + max(0.0, min(1.0, v)) * plot_w

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'role="img" aria-label="Held-out preference accuracy" font-family="sans-serif" font-size="11">',
        f'<text x="{left}" y="14" font-weight="bold">Held-out preference accuracy (95% bootstrap over tasks)</text>',
        f'<line x1="{sx(0.5):.1f}" x2="{sx(0.5):.1f}" y1="{top}" y2="{height - 30}" stroke="#bbb" '
        'stroke-dasharray="3,3"/>',
    ]
    for v in (0, 0.25, 0.5, 0.75, 1):
        parts.append(f'<text x="{sx(v):.1f}" y="{height - 14}" text-anchor="middle">{v:g}</text>')
    for i, row in enumerate(rows):
        y0 = top + i * row_h
        parts.append(f'<text x="{left - 8}" y="{y0 + 20}" text-anchor="end">{escape(row["label"])}</text>')
        for j, (phase, colour) in enumerate((("base", "#7f7f7f"), ("trained", "#1f77b4"))):
            cell = row[phase]
            if cell is None:
                continue
            y = y0 + 12 + j * 16
            lo, hi = cell["lo"], cell["hi"]
            parts.append(
                f'<line x1="{sx(lo):.1f}" x2="{sx(hi):.1f}" y1="{y}" y2="{y}" stroke="{colour}" stroke-width="2"/>'
            )
            parts.append(f'<circle cx="{sx(cell["accuracy"]):.1f}" cy="{y}" r="4" fill="{colour}"/>')
            parts.append(
                f'<text x="{sx(hi) + 6:.1f}" y="{y + 4}" fill="{colour}">{phase} {cell["accuracy"]:.3f}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def run_status_label(run: TrainingRun) -> str:
    if training_run_is_dead(run):
        return "dead (no heartbeat; resumable)"
    if run.status == JobStatus.QUEUED and run.enqueued_at is None:
        return "not started"
    if run.status == JobStatus.RUNNING and run.cancel_requested:
        return "cancelling"
    return run.status


def run_progress_context(run: TrainingRun) -> dict:
    return {
        "run": run,
        "status_label": run_status_label(run),
        "curve_svg": run_curve_svg(run),
        "completions": run.last_completions or [],
        "signal_warning": training_run_signal_warning(run),
        "live": run.status in (JobStatus.QUEUED, JobStatus.RUNNING),
        "is_dpo": run.algorithm == Algorithm.DPO,
        "preference_eval": run.preference_eval or {},
        "accuracy_rows": heldout_accuracy_rows(run.preference_eval or {}),
        "accuracy_svg": heldout_accuracy_svg(run.preference_eval) if (run.preference_eval or {}).get("base") else "",
        "reward_spec_label": _spec_label(run),
        "spec_differences": training_run_spec_differences(run),
    }


def _spec_label(run: TrainingRun) -> str:
    try:
        return training_run_reward_spec(run).label()
    except (TypeError, ValueError) as exc:
        return f"invalid reward configuration: {exc}"


@staff_member_required
@require_GET
def run_progress(request: HttpRequest, pk: int) -> JsonResponse:
    run = get_object_or_404(TrainingRun, pk=pk)
    context = run_progress_context(run)
    return JsonResponse(
        {
            "status": run.status,
            "status_label": context["status_label"],
            "step": run.step,
            "max_steps": run.max_steps,
            "live": context["live"],
            "html": render_to_string("training/run_progress.html", context, request=request),
        }
    )


@staff_member_required
@require_GET
def run_curve(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(TrainingRun, pk=pk)
    return HttpResponse(run_curve_svg(run), content_type="image/svg+xml")
