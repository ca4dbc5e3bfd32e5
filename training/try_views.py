"""The staff-only "Try as the user" pages (thin: validate, call training/try_loop.py, render)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from annotation.models import Split, Task
from annotation.rendering import markdown_to_safe_html

from .models import Backend, System
from .try_loop import TryStage, try_progress, try_save, try_start, try_state, try_submit_answers


class TryForm(forms.Form):
    system = forms.ModelChoiceField(queryset=System.objects.exclude(backend=Backend.STATIC))
    task_key = forms.CharField(required=False, label="An existing task (its key)", max_length=200)
    masked_task = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}), label="Or a new request, as the system sees it"
    )
    hidden_facts = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 4}), label="What you know (one fact per line)"
    )
    full_task = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}), label="Your full request (optional)"
    )

    def clean_task_key(self) -> Task | None:
        key = self.cleaned_data["task_key"].strip()
        if not key:
            return None
        task = Task.objects.filter(key=key).first()
        if task is None:
            raise ValidationError(f"no task with key '{key}'")
        return task


class SaveForm(forms.Form):
    key = forms.CharField(required=False, max_length=200)
    domain = forms.CharField(required=False, max_length=100)
    split = forms.ChoiceField(choices=Split.choices, initial=Split.TEST)


def _state_for(request: HttpRequest, token: str) -> dict[str, Any]:
    state = try_state(token=token, user=request.user)
    if state is None:
        raise Http404("This session has expired or is not yours.")
    return state


@staff_member_required
@require_http_methods(["GET", "POST"])
def start(request: HttpRequest) -> HttpResponse:
    form = TryForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            state = try_start(
                user=request.user,
                system=data["system"],
                task=data["task_key"],
                masked_task=data["masked_task"],
                hidden_facts=data["hidden_facts"].splitlines(),
                full_task=data["full_task"],
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            return redirect("generation:try-session", token=state["token"])
    return render(request, "training/try_start.html", {"form": form}, status=400 if form.errors else 200)


@staff_member_required
@require_http_methods(["GET", "POST"])
def session(request: HttpRequest, token: str) -> HttpResponse:
    state = _state_for(request, token)
    errors: dict[str, str] = {}
    if request.method == "POST":
        posted = [
            {"text": request.POST.get(f"answer-{i}", ""), "doesnt_say": request.POST.get(f"doesnt-say-{i}") == "1"}
            for i in range(len(state["questions"]))
        ]
        try:
            try_submit_answers(token=token, user=request.user, answers=posted)
        except ValidationError as exc:
            errors["answers"] = "; ".join(exc.messages)
        else:
            return redirect("generation:try-session", token=token)
    system = System.objects.filter(pk=state["system_id"]).first()
    context = {
        "state": state,
        "system": system,
        "progress": try_progress(state),
        "facts": state["hidden_facts"],
        "questions": [
            {"index": i, "number": i + 1, "text": q, "value": "", "doesnt_say": False, "error": ""}
            for i, q in enumerate(state["questions"])
        ],
        "answer_action": reverse("generation:try-session", args=[token]),
        "form_error": errors.get("answers", ""),
        "answers": [
            {"question": q, "answer": a["text"], "doesnt_say": a["doesnt_say"]}
            for q, a in zip(state["questions"], state["answers"], strict=False)
        ],
        "outline_html": markdown_to_safe_html(state["outline"]) if state["outline"] else "",
        "save_form": SaveForm(),
        "stages": TryStage,
    }
    return render(request, "training/try_session.html", context, status=400 if errors else 200)


@staff_member_required
def session_state(request: HttpRequest, token: str) -> JsonResponse:
    return JsonResponse(try_progress(_state_for(request, token)))


@staff_member_required
@require_POST
def save(request: HttpRequest, token: str) -> HttpResponse:
    _state_for(request, token)
    form = SaveForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Check the task's key, domain and split.")
        return redirect("generation:try-session", token=token)
    try:
        candidate = try_save(token=token, user=request.user, **form.cleaned_data)
    except ValidationError as exc:
        messages.error(request, "Not saved: " + "; ".join(exc.messages))
        return redirect("generation:try-session", token=token)
    messages.success(request, f"Saved task '{candidate.task.key}' and its candidate from {candidate.system.name}.")
    return redirect("admin:annotation_candidate_change", candidate.pk)
