"""Researcher results pages (staff only): figures of a study, progress, and streamed downloads."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from annotation.exports import CONTENT_TYPES, EXTENSIONS, ExportReport, export_chunks, formats_for
from annotation.models import Study, StudyKind
from annotation.selectors_stats import (
    study_design_pair_count,
    study_goal_summary,
    study_judgments_table,
    study_progress,
    study_stats_version,
)
from annotation.stats import preference_report
from annotation.stats.svg import evidence_plot, forest, pair_bars, sequence_intervals
from pigplatform.queueing import send_or_record

CACHE_SECONDS = 7 * 24 * 3600
REFRESH_LOCK_SECONDS = 300
_PCT = {
    "win_share",
    "tie_share",
    "loss_share",
    "win_rate_a",
    "bootstrap_low",
    "bootstrap_high",
    "wilson_low",
    "wilson_high",
    "left_share",
    "percent_agreement",
    "cs_low",
    "cs_high",
    "half_width",
}
_P = {"p_value", "p_holm", "p_anytime"}
_NUM = {"krippendorff_alpha", "fleiss_kappa", "cohen_kappa_mean"}


def _display(row: dict[str, Any]) -> dict[str, Any]:
    """The row plus formatted copies of its figures (`x_pct`, `x_pcts` signed, `x_fmt`); "–" for undefined."""
    out = dict(row)
    for key, value in row.items():
        if key in _PCT:
            out[f"{key}_pct"] = "–" if value is None else f"{100 * value:.1f}%"
        elif key == "margin_a":
            out[f"{key}_pcts"] = f"{100 * value:+.1f}%"
        elif key in _P:
            out[f"{key}_fmt"] = f"{value:.3f}" if value >= 1e-3 else f"{value:.1e}"
        elif key in _NUM:
            out[f"{key}_fmt"] = "–" if value is None else f"{value:.3f}"
        elif key == "e_value":
            out[f"{key}_fmt"] = f"{value:.3g}" if value < 1e6 else f"{value:.1e}"
    if "family_size" in row:
        out["confidence_pct"] = f"{100 * (1 - row['alpha']):.0f}%"
        out["e_threshold"] = f"{row['family_size'] / row['alpha']:.0f}"
    return out


def _get_study_for_staff(request: HttpRequest, slug: str) -> Study:
    if not request.user.is_staff:
        raise PermissionDenied
    return get_object_or_404(Study, slug=slug)


def _keys(study: Study, exclude_flagged: bool) -> tuple[str, str, str]:
    reference = study.reference_system.name if study.reference_system_id else ""
    # v4: position-bias rows carry tie shares and reports carry sequential rows; older cached figures lack them.
    base = f"pig:results:v4:{study.pk}:{int(exclude_flagged)}:{reference}"
    return reference, f"{base}:latest", f"{base}:refreshing"


def study_figures_compute(*, study: Study, exclude_flagged: bool) -> dict[str, Any]:
    """Compute the report and its plots for the study as it is now, and keep them as the latest."""
    reference, latest_key, refreshing_key = _keys(study, exclude_flagged)
    version = study_stats_version(study=study)
    # Usernames here: the page is for staff, who see them in admin anyway; exports pseudonymise.
    table = study_judgments_table(study=study, exclude_flagged=exclude_flagged, real_usernames=True)
    report = preference_report(
        table,
        reference=reference or None,
        family_size=study_design_pair_count(study=study) or None,
        sequential_paths=True,
    )
    figures = {
        "report": report,
        "bars": pair_bars(report["pairs"]) if report["pairs"] else "",
        "forest": forest(report["ratings"]),
        "sequential_plot": sequence_intervals(report["sequential"]) + evidence_plot(report["sequential"]),
        "version": version,
        "judgments": len(table),
    }
    cache.set(latest_key, figures, CACHE_SECONDS)
    cache.delete(refreshing_key)
    return figures


def study_figures(*, study: Study, exclude_flagged: bool, fresh: bool = False) -> tuple[dict[str, Any], bool]:
    """(figures, stale). Stale-while-revalidate: while annotators work every judgment changes the figures, and
    a full recompute (1000 bootstrap rounds) takes seconds on a large study. So the page shows the latest
    figures at once, marked stale, and one background refresh per study brings them up to date."""
    _, latest_key, refreshing_key = _keys(study, exclude_flagged)
    latest = cache.get(latest_key)
    if fresh or latest is None:
        return study_figures_compute(study=study, exclude_flagged=exclude_flagged), False
    if latest["version"] == study_stats_version(study=study):
        return latest, False
    # One refresh in flight per study and filter; the lock expires in case a worker dies mid-way.
    if cache.add(refreshing_key, 1, REFRESH_LOCK_SECONDS):
        from annotation.tasks import results_refresh

        send_or_record(
            lambda: results_refresh.delay(study.pk, exclude_flagged), lambda _error: cache.delete(refreshing_key)
        )
    return latest, True


@login_required
@require_GET
def study_results(request: HttpRequest, slug: str) -> HttpResponse:
    study = _get_study_for_staff(request, slug)
    if study.kind == StudyKind.ANSWER:
        from annotation.answer_views import answer_results

        return answer_results(request, study)
    exclude_flagged = request.GET.get("exclude_flagged") == "1"
    figures, stale = study_figures(study=study, exclude_flagged=exclude_flagged, fresh=request.GET.get("fresh") == "1")
    report = {key: [_display(row) for row in rows] for key, rows in figures["report"].items()}
    context = {
        "study": study,
        "exclude_flagged": exclude_flagged,
        "stale": stale,
        "figures_judgments": figures["judgments"],
        "report": report,
        "bars": figures["bars"],
        "forest": figures["forest"],
        "sequential_plot": figures.get("sequential_plot", ""),
        "overall_bias": [r for r in report["position_bias"] if r["annotator"] is None],
        "annotator_bias": [r for r in report["position_bias"] if r["annotator"] is not None],
        "progress": study_progress(study=study),
        "goal": study_goal_summary(study=study),
        "formats": formats_for(study),
    }
    return render(request, "annotation/results.html", context)


@login_required
@require_GET
def study_download(request: HttpRequest, slug: str, fmt: str) -> StreamingHttpResponse:
    study = _get_study_for_staff(request, slug)
    if fmt not in formats_for(study):
        raise Http404("unknown format")
    chunks = export_chunks(
        study=study,
        fmt=fmt,
        real_usernames=request.GET.get("real_usernames") == "1",
        exclude_flagged=request.GET.get("exclude_flagged") == "1",
        report=ExportReport(),
    )
    response = StreamingHttpResponse(chunks, content_type=CONTENT_TYPES[fmt])
    name = "answers" if fmt == "answers" else "judgments"
    response["Content-Disposition"] = f'attachment; filename="{study.slug}-{name}.{EXTENSIONS[fmt]}"'
    return response
