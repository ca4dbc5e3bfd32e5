"""Pages of the `answer` study: the annotator plays the user (intent card, one question at a time), and the
researcher's simulator-fidelity results. Thin: fetch for this user, call one service, render.

URLs carry assignment ids only; nothing here names a system or shows another person's answers."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from . import answers, answers_selectors, selectors, services
from .models import AnswerAssignment, AssignmentState, Study, StudyKind

SKIP_REASONS = (
    "The questions are unreadable or empty",
    "The request makes no sense to me",
    "I cannot play this user",
)


def _get_assignment_for_user(request: HttpRequest, assignment_id: int) -> AnswerAssignment:
    assignment = answers_selectors.answer_assignment_for_annotator(user=request.user, assignment_id=assignment_id)
    if assignment is None:
        raise Http404("No such item for you.")
    return assignment


def next_response(request: HttpRequest, study: Study) -> HttpResponse:
    try:
        assignment = answers.answer_assignment_next(study=study, annotator=request.user)
    except services.JudgingError as exc:
        messages.error(request, exc.message)
        return redirect("annotation:home")
    if assignment is None:
        return redirect("annotation:done", study_id=study.pk)
    return redirect("annotation:answer", assignment_id=assignment.pk)


def _posted_answers(request: HttpRequest, n: int) -> list[dict[str, Any]]:
    return [
        {"text": request.POST.get(f"answer-{i}", ""), "doesnt_say": request.POST.get(f"doesnt-say-{i}") == "1"}
        for i in range(n)
    ]


def _question_seconds(request: HttpRequest) -> list[Any] | None:
    try:
        value = json.loads(request.POST.get("question_seconds") or "null")
    except ValueError:
        return None
    return value if isinstance(value, list) else None


def _context(
    request: HttpRequest,
    *,
    study: Study,
    card: answers_selectors.IntentCard,
    posted: list[dict[str, Any]] | None,
    **extra: Any,
) -> dict[str, Any]:
    errors = extra.pop("errors", {})
    posted = posted or [{"text": "", "doesnt_say": False} for _ in card.questions]
    return {
        "study": study,
        "card": card,
        "questions": [
            {
                "index": i,
                "number": i + 1,
                "text": text,
                "value": posted[i]["text"],
                "doesnt_say": posted[i]["doesnt_say"],
                "error": errors.get(f"answer-{i}", ""),
            }
            for i, text in enumerate(card.questions)
        ],
        "form_error": errors.get("answers", ""),
        "instructions_html": selectors.study_instructions_html(study=study),
        "skip_reasons": SKIP_REASONS,
        "progress": answers_selectors.answer_progress(study=study, user=request.user),
        **extra,
    }


@login_required
@require_http_methods(["GET", "POST"])
def answer(request: HttpRequest, assignment_id: int) -> HttpResponse:
    assignment = _get_assignment_for_user(request, assignment_id)
    item, study = assignment.item, assignment.item.study
    if assignment.state in (AssignmentState.SUBMITTED, AssignmentState.SKIPPED) and request.method == "GET":
        return redirect("annotation:next", study_id=study.pk)
    errors: dict[str, str] = {}
    posted = None
    status = 200
    if request.method == "POST":
        posted = _posted_answers(request, len(item.questions))
        try:
            _, created = answers.answer_set_submit(
                assignment_id=assignment.pk,
                annotator=request.user,
                answers=posted,
                active_seconds=request.POST.get("active_seconds") or None,
                question_seconds=_question_seconds(request),
            )
        except services.InvalidJudgment as exc:
            errors, status = exc.errors, 400
        except services.JudgingError as exc:
            return render(request, "annotation/refused.html", {"study": study, "message": exc.message}, status=409)
        else:
            if not created:
                messages.info(request, "Those answers were already recorded.")
            return next_response(request, study)
    card = answers_selectors.intent_card(item=item, study=study)
    context = _context(
        request,
        study=study,
        card=card,
        posted=posted,
        errors=errors,
        assignment=assignment,
        answer_action=reverse("annotation:answer", args=[assignment.pk]),
        lease_expired=assignment.state == AssignmentState.EXPIRED,
    )
    return render(request, "annotation/answer.html", context, status=status)


@login_required
@require_POST
def skip(request: HttpRequest, assignment_id: int) -> HttpResponse:
    assignment = _get_assignment_for_user(request, assignment_id)
    reason = request.POST.get("reason_other", "").strip() or request.POST.get("reason", "")
    try:
        answers.answer_assignment_skip(assignment_id=assignment.pk, annotator=request.user, reason=reason)
    except services.JudgingError as exc:
        messages.error(request, exc.message)
        return redirect("annotation:answer", assignment_id=assignment.pk)
    return next_response(request, assignment.item.study)


@login_required
@require_POST
def flag(request: HttpRequest, assignment_id: int) -> HttpResponse:
    assignment = _get_assignment_for_user(request, assignment_id)
    try:
        answers.answer_assignment_flag(
            assignment_id=assignment.pk, annotator=request.user, reason=request.POST.get("reason", "")
        )
    except services.JudgingError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Thank you — a researcher will look at this. You may still answer or skip it.")
    return HttpResponseRedirect(reverse("annotation:answer", args=[assignment.pk]))


@staff_member_required
def preview(request: HttpRequest, study: Study) -> HttpResponse:
    """What an annotator would see, for researchers: a random item, nothing stored."""
    item = study.answer_items.select_related("task").order_by("?").first()
    if item is None:
        messages.error(request, "This study has no items yet: build them first.")
        return redirect("admin:annotation_study_change", study.pk)
    card = answers_selectors.intent_card(item=item, study=study)
    return render(
        request,
        "annotation/answer.html",
        _context(request, study=study, card=card, posted=None, preview=True, answer_action="#"),
    )


def _interval_text(m: dict[str, Any] | None, pct: bool = False) -> str:
    if not m or m.get("mean") is None:
        return "–"
    f = (lambda v: f"{100 * v:.1f}%") if pct else (lambda v: f"{v:+.3f}" if v < 0 else f"{v:.3f}")
    if m.get("lo") is None:
        return f(m["mean"])
    return f"{f(m['mean'])} [{f(m['lo'])}, {f(m['hi'])}]"


FIDELITY_COLUMNS = (
    ("kappa", "Cohen κ (question × fact)", False),
    ("agreement", "share agreeing", True),
    ("human_coverage", "human coverage", True),
    ("simulated_coverage", "simulated coverage", True),
    ("optimism", "simulator optimism (sim − human)", True),
    ("human_reward", "reward, human answers", False),
    ("simulated_reward", "reward, simulated answers", False),
    ("reward_difference", "reward difference (sim − human)", False),
)


def _fidelity_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    groups = [("all systems", report["overall"])] + [(s["system"], s) for s in report["systems"]]
    return [
        {
            "label": label,
            "n_tasks": g["n_tasks"],
            "n_transcripts": g["n_transcripts"],
            "cells": [_interval_text(g[key], pct) for key, _, pct in FIDELITY_COLUMNS],
            "false_reveals": g["false_reveals"],
            "misses": g["misses"],
        }
        for label, g in groups
        if g
    ]


def answer_results(request: HttpRequest, study: Study) -> HttpResponse:
    """The results page of an answer study: the simulator-fidelity table and plot (staff, checked by the caller)."""
    from .answers_report import study_fidelity
    from .stats.fidelity_svg import reward_dumbbells

    exclude_flagged = request.GET.get("exclude_flagged", "1") == "1"
    report = study_fidelity(study=study, exclude_flagged=exclude_flagged)
    context = {
        "study": study,
        "report": report,
        "exclude_flagged": exclude_flagged,
        "plot": reward_dumbbells(report["systems"]),
        "columns": [label for _, label, _ in FIDELITY_COLUMNS],
        "rows": _fidelity_rows(report) if report["overall"] else [],
        "tau": _interval_text((report["ranking"] or {}).get("kendall_tau")),
        "progress": answers_selectors.study_answer_progress(study=study),
        "flagged_content": answers_selectors.answer_flagged_content(study=study)[:50],
    }
    return render(request, "annotation/answer_results.html", context)


def is_answer_study(study: Study) -> bool:
    return study.kind == StudyKind.ANSWER
