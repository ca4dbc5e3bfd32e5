"""A small JSON API for the judging flow, for other front-ends and crowd platforms.

Session-authenticated (log in through /accounts/login/) and CSRF-protected like every POST in Django:
send the `csrftoken` cookie's value in an `X-CSRFToken` header. Documented in docs/judging.md.
Responses carry assignment ids and screen positions ("1", "2", "tie") only — never a system or
candidate id, nor which side is which system."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.middleware.csrf import get_token
from django.urls import reverse
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_POST
from django_ratelimit.core import is_ratelimited

from . import selectors, services
from .models import Assignment, Study, StudyKind

STATUS_BY_CODE = {
    "invalid": 400,
    "forbidden": 403,
    "not_found": 404,
    "study_closed": 409,
    "assignment_finished": 409,
    "slot_taken": 409,
    "throttled": 429,
}

View = Callable[..., JsonResponse]


def _error(code: str, message: str, status: int | None = None, **extra: Any) -> JsonResponse:
    return JsonResponse({"error": code, "message": message, **extra}, status=status or STATUS_BY_CODE.get(code, 400))


def api_login_required(view: View) -> View:
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
        if not request.user.is_authenticated:
            return _error("unauthenticated", "Log in first (session cookie).", status=401)
        return view(request, *args, **kwargs)

    return wrapper


def api_throttled(view: View) -> View:
    """Per user, PIG_API_RATE requests (default 20 a second) across the whole API; beyond it 429 in the
    API's error format. Counted by django-ratelimit in the shared cache."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
        rate = settings.PIG_API_RATE
        if is_ratelimited(request, group="pig-api", key="user", rate=rate, increment=True):
            response = _error("throttled", f"Too many requests (the limit is {rate} per user); retry shortly.")
            response["Retry-After"] = "1"
            return response
        return view(request, *args, **kwargs)

    return wrapper


def _body(request: HttpRequest) -> dict[str, Any]:
    if not request.body:
        return {}
    try:
        data = json.loads(request.body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise services.InvalidJudgment({"body": "The request body is not valid JSON."}) from exc
    if not isinstance(data, dict):
        raise services.InvalidJudgment({"body": "The request body must be a JSON object."})
    return data


def _progress_json(progress: selectors.Progress) -> dict[str, Any]:
    return {
        "mine_done": progress.mine_done,
        "quota": progress.quota,
        "study_done": progress.study_done,
        "study_needed": progress.study_needed,
    }


def _study_json(study: Study) -> dict[str, Any]:
    return {
        "id": study.pk,
        "title": study.title,
        "kind": study.kind,
        "instructions_html": selectors.study_instructions_html(study=study),
        "criteria": list(study.criteria or []),
        "rationale_required": study.rationale_required or study.rationale_min_length > 0,
        "rationale_min_length": study.rationale_min_length,
    }


def _assignment_json(request: HttpRequest, assignment: Assignment) -> dict[str, Any]:
    comparison = assignment.comparison
    blinded = selectors.blinded_comparison(comparison=comparison, left=assignment.left)
    return {
        "id": assignment.pk,
        "state": assignment.state,
        "lease_expires_at": assignment.lease_expires_at.isoformat(),
        "study": _study_json(comparison.study),
        "comparison": blinded.as_json(),
        "choices": list(services.SCREEN_CHOICES),
        "submit_url": request.build_absolute_uri(reverse("annotation:api-submit", args=[assignment.pk])),
    }


def _own_assignment(request: HttpRequest, assignment_id: int) -> Assignment | None:
    return selectors.assignment_for_annotator(user=request.user, assignment_id=assignment_id)


@require_GET
@ensure_csrf_cookie
def csrf(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"csrf_token": get_token(request)})


@require_GET
@api_login_required
@api_throttled
def studies(request: HttpRequest) -> JsonResponse:
    # The API serves the pairwise kinds; answer studies are answered in the browser (docs/answers.md).
    rows = [(s, p) for s, p in selectors.studies_with_progress(user=request.user) if s.kind != StudyKind.ANSWER]
    return JsonResponse(
        {"studies": [{**_study_json(study), "progress": _progress_json(progress)} for study, progress in rows]}
    )


@require_GET
@api_login_required
@api_throttled
def progress(request: HttpRequest, study_id: int) -> JsonResponse:
    study = selectors.study_for_annotator(user=request.user, study_id=study_id)
    if study is None:
        return _error("not_found", "No such study for you.")
    return JsonResponse(_progress_json(selectors.annotator_progress(study=study, user=request.user)))


@require_POST
@api_login_required
@api_throttled
def next_assignment(request: HttpRequest, study_id: int) -> JsonResponse:
    study = selectors.study_for_annotator(user=request.user, study_id=study_id)
    if study is None:
        return _error("not_found", "No such study for you.")
    if study.kind == StudyKind.ANSWER:
        return _error("invalid", "Answer studies are answered in the browser; this API serves the pairwise kinds.")
    try:
        assignment = services.assignment_next_for_annotator(study=study, annotator=request.user)
    except services.JudgingError as exc:
        return _error(exc.code, exc.message)
    done = _progress_json(selectors.annotator_progress(study=study, user=request.user))
    if assignment is None:
        return JsonResponse({"assignment": None, "done": True, "progress": done})
    assignment = _own_assignment(request, assignment.pk)
    return JsonResponse({"assignment": _assignment_json(request, assignment), "done": False, "progress": done})


@require_GET
@api_login_required
@api_throttled
def assignment_detail(request: HttpRequest, assignment_id: int) -> JsonResponse:
    assignment = _own_assignment(request, assignment_id)
    if assignment is None:
        return _error("not_found", "No such comparison for you.")
    return JsonResponse(_assignment_json(request, assignment))


@require_POST
@api_login_required
@api_throttled
def submit(request: HttpRequest, assignment_id: int) -> JsonResponse:
    try:
        data = _body(request)
        _, created = services.judgment_submit(
            assignment_id=assignment_id,
            annotator=request.user,
            choice=data.get("choice", ""),
            criteria=data.get("criteria") or {},
            rationale=data.get("rationale", ""),
            active_seconds=data.get("active_seconds"),
        )
    except services.InvalidJudgment as exc:
        return _error(exc.code, exc.message, fields=exc.errors)
    except services.JudgingError as exc:
        # The annotator's text comes back so that a refused judgment never loses their writing.
        extra = {"rationale": data.get("rationale", "")} if exc.code in ("slot_taken", "study_closed") else {}
        return _error(exc.code, exc.message, **extra)
    return JsonResponse(
        {"status": "recorded" if created else "already_recorded", "assignment": assignment_id},
        status=201 if created else 200,
    )


def _note(request: HttpRequest, assignment_id: int, action, status: str) -> JsonResponse:
    """Skip and flag: both take a free-text reason and answer with the assignment's new status."""
    try:
        data = _body(request)
        action(assignment_id=assignment_id, annotator=request.user, reason=data.get("reason", ""))
    except services.InvalidJudgment as exc:
        return _error(exc.code, exc.message, fields=exc.errors)
    except services.JudgingError as exc:
        return _error(exc.code, exc.message)
    return JsonResponse({"status": status, "assignment": assignment_id})


@require_POST
@api_login_required
@api_throttled
def skip(request: HttpRequest, assignment_id: int) -> JsonResponse:
    return _note(request, assignment_id, services.assignment_skip, "skipped")


@require_POST
@api_login_required
@api_throttled
def flag(request: HttpRequest, assignment_id: int) -> JsonResponse:
    return _note(request, assignment_id, services.assignment_flag, "flagged")
