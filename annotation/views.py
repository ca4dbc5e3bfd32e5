"""Annotator pages. Thin: fetch for this user, call one service, render.

URLs carry assignment ids only; nothing here names a system or says which candidate is on which side."""

from __future__ import annotations

import random
from typing import Any

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from . import answer_views, selectors, services
from .models import Assignment, AssignmentState, Study

SKIP_REASONS = (
    "I cannot judge this topic",
    "The two responses are unreadable or empty",
    "The task itself makes no sense",
)


def _get_study_for_user(request: HttpRequest, study_id: int) -> Study:
    study = selectors.study_for_annotator(user=request.user, study_id=study_id)
    if study is None:
        raise Http404("No such study for you.")
    return study


def _get_assignment_for_user(request: HttpRequest, assignment_id: int) -> Assignment:
    assignment = selectors.assignment_for_annotator(user=request.user, assignment_id=assignment_id)
    if assignment is None:
        raise Http404("No such comparison for you.")
    return assignment


@login_required
def home(request: HttpRequest) -> HttpResponse:
    studies = selectors.studies_with_progress(user=request.user)
    return render(request, "annotation/home.html", {"studies": studies})


def _next_response(request: HttpRequest, study: Study) -> HttpResponse:
    if answer_views.is_answer_study(study):
        return answer_views.next_response(request, study)
    try:
        assignment = services.assignment_next_for_annotator(study=study, annotator=request.user)
    except services.JudgingError as exc:
        messages.error(request, exc.message)
        return redirect("annotation:home")
    if assignment is None:
        return redirect("annotation:done", study_id=study.pk)
    return redirect("annotation:judge", assignment_id=assignment.pk)


@login_required
@require_http_methods(["GET", "POST"])
def study_next(request: HttpRequest, study_id: int) -> HttpResponse:
    # GET is allowed so a bookmark works; it only ever resumes or leases, both repeatable.
    return _next_response(request, _get_study_for_user(request, study_id))


@login_required
def done(request: HttpRequest, study_id: int) -> HttpResponse:
    study = _get_study_for_user(request, study_id)
    progress = selectors.annotator_progress(study=study, user=request.user)
    return render(request, "annotation/done.html", {"study": study, "progress": progress})


def _criteria_from_post(request: HttpRequest, study: Study) -> dict[str, str]:
    # Field names are positional (criterion-0, …) so the markup never depends on free-text names.
    return {
        name: request.POST.get(f"criterion-{index}", "")
        for index, name in enumerate(study.criteria or [])
        if request.POST.get(f"criterion-{index}", "")
    }


def _judging_context(
    request: HttpRequest, *, study: Study, blinded: selectors.BlindedComparison, **extra: Any
) -> dict[str, Any]:
    posted = request.POST if request.method == "POST" else {}
    return {
        "study": study,
        "blinded": blinded,
        "instructions_html": selectors.study_instructions_html(study=study),
        "criteria": [
            {"index": i, "name": name, "value": posted.get(f"criterion-{i}", "")}
            for i, name in enumerate(study.criteria or [])
        ],
        "choice": posted.get("choice", ""),
        "rationale": posted.get("rationale", ""),
        "rationale_needed": study.rationale_required or study.rationale_min_length > 0,
        "skip_reasons": SKIP_REASONS,
        "progress": selectors.annotator_progress(study=study, user=request.user),
        **extra,
    }


@login_required
@require_http_methods(["GET", "POST"])
def judge(request: HttpRequest, assignment_id: int) -> HttpResponse:
    assignment = _get_assignment_for_user(request, assignment_id)
    study = assignment.comparison.study
    if assignment.state in (AssignmentState.SUBMITTED, AssignmentState.SKIPPED) and request.method == "GET":
        return redirect("annotation:next", study_id=study.pk)
    errors: dict[str, str] = {}
    status = 200
    if request.method == "POST":
        try:
            _, created = services.judgment_submit(
                assignment_id=assignment.pk,
                annotator=request.user,
                choice=request.POST.get("choice", ""),
                criteria=_criteria_from_post(request, study),
                rationale=request.POST.get("rationale", ""),
                active_seconds=request.POST.get("active_seconds") or None,
            )
        except services.InvalidJudgment as exc:
            errors, status = exc.errors, 400
        except services.JudgingError as exc:
            # Closed study, lease lost to others, skipped: say so and hand the annotator's text back.
            return render(
                request,
                "annotation/refused.html",
                {"study": study, "message": exc.message, "rationale": request.POST.get("rationale", "")},
                status=409,
            )
        else:
            if not created:
                messages.info(request, "That judgment was already recorded.")
            return _next_response(request, study)
    blinded = selectors.blinded_comparison(comparison=assignment.comparison, left=assignment.left)
    context = _judging_context(
        request,
        study=study,
        blinded=blinded,
        assignment=assignment,
        errors=errors,
        lease_expired=assignment.state == AssignmentState.EXPIRED,
    )
    return render(request, "annotation/judge.html", context, status=status)


@login_required
@require_POST
def skip(request: HttpRequest, assignment_id: int) -> HttpResponse:
    assignment = _get_assignment_for_user(request, assignment_id)
    reason = request.POST.get("reason_other", "").strip() or request.POST.get("reason", "")
    try:
        services.assignment_skip(assignment_id=assignment.pk, annotator=request.user, reason=reason)
    except services.JudgingError as exc:
        messages.error(request, exc.message)
        return redirect("annotation:judge", assignment_id=assignment.pk)
    return _next_response(request, assignment.comparison.study)


@login_required
@require_POST
def flag(request: HttpRequest, assignment_id: int) -> HttpResponse:
    assignment = _get_assignment_for_user(request, assignment_id)
    try:
        services.assignment_flag(
            assignment_id=assignment.pk, annotator=request.user, reason=request.POST.get("reason", "")
        )
    except services.JudgingError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Thank you — a researcher will look at this content. You may still judge or skip it.")
    return HttpResponseRedirect(reverse("annotation:judge", args=[assignment.pk]))


@staff_member_required
def preview(request: HttpRequest, study_id: int) -> HttpResponse:
    """What an annotator would see, for researchers: random comparison, random sides, nothing stored."""
    study = get_object_or_404(Study, pk=study_id)
    if answer_views.is_answer_study(study):
        return answer_views.preview(request, study)
    comparison = study.comparisons.select_related("study", "task", "candidate_a", "candidate_b").order_by("?").first()
    if comparison is None:
        messages.error(request, "This study has no comparisons yet: build them first.")
        return redirect("admin:annotation_study_change", study.pk)
    blinded = selectors.blinded_comparison(comparison=comparison, left=random.choice("ab"))
    return render(
        request, "annotation/judge.html", _judging_context(request, study=study, blinded=blinded, preview=True)
    )
