"""Staff pages for generation and automatic evaluation (thin: validate, call a service, render)."""

from __future__ import annotations

import csv
import io
import json

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.views.decorators.http import require_POST

from annotation.models import Split, Study, Task

from .autoeval import COMPARED
from .generation import SIMULATORS, auto_eval_run, generation_job_cancel, generation_job_progress, generation_job_start
from .models import AutoEvalResult, Backend, GenerationJob, System
from .rewards import default_spec


def _context(request: HttpRequest, title: str, **extra: object) -> dict[str, object]:
    return {**admin.site.each_context(request), "title": title, **extra}


class StartForm(forms.Form):
    systems = forms.ModelMultipleChoiceField(queryset=System.objects.exclude(backend=Backend.STATIC))
    source = forms.ChoiceField(
        choices=[("selection", "The selected tasks"), ("split", "All tasks of a split"), ("study", "A study's tasks")],
        initial="selection",
    )
    split = forms.ChoiceField(choices=Split.choices, required=False)
    study = forms.ModelChoiceField(queryset=Study.objects.all(), required=False)
    simulator = forms.ChoiceField(choices=[(s, s) for s in SIMULATORS], initial="embedding")
    ids = forms.CharField(widget=forms.HiddenInput, required=False)

    def selected_tasks(self) -> list[Task]:
        data = self.cleaned_data
        if data["source"] == "split":
            return list(Task.objects.filter(split=data["split"]))
        if data["source"] == "study":
            if data["study"] is None:
                raise ValidationError("choose a study")
            # A study's tasks: those its comparisons use, else those its systems have candidates for.
            study = data["study"]
            tasks = Task.objects.filter(comparisons__study=study).distinct()
            if not tasks.exists():
                tasks = Task.objects.filter(candidates__system__in=study.systems.all()).distinct()
            return list(tasks)
        ids = [int(i) for i in data["ids"].split(",") if i.strip().isdigit()]
        return list(Task.objects.filter(pk__in=ids))


@staff_member_required
def start(request: HttpRequest) -> HttpResponse:
    initial = {"ids": request.GET.get("ids", "")}
    form = StartForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            chosen = form.selected_tasks()
            jobs = [
                generation_job_start(
                    system=s, tasks=chosen, simulator=form.cleaned_data["simulator"], user=request.user
                )
                for s in form.cleaned_data["systems"]
            ]
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Started {len(jobs)} generation job(s) for {len(chosen)} tasks.")
            for job in jobs:
                job.refresh_from_db()  # enqueuing happens after commit; a broker outage is recorded here
                if job.error:
                    messages.error(request, f"Job #{job.pk}: {job.error}")
            if len(jobs) == 1:
                return redirect("generation:job", jobs[0].pk)
            return redirect("admin:training_generationjob_changelist")
    n_selected = len([i for i in initial["ids"].split(",") if i.strip()])
    return TemplateResponse(
        request,
        "training/generation_start.html",
        _context(request, "Generate candidates", form=form, n_selected=n_selected),
    )


def _job(pk: int) -> GenerationJob:
    return get_object_or_404(GenerationJob.objects.select_related("system"), pk=pk)


@staff_member_required
def job_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = _job(pk)
    context = _context(
        request,
        f"Generation #{job.pk}: {job.system.name}",
        job=job,
        progress=generation_job_progress(job=job),
        chunks=job.chunks.all(),
        errors=job.errors[-50:],
    )
    return TemplateResponse(request, "training/generation_job.html", context)


@staff_member_required
def job_progress(request: HttpRequest, pk: int) -> JsonResponse:
    return JsonResponse(generation_job_progress(job=_job(pk)).as_dict())


@staff_member_required
@require_POST
def job_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    generation_job_cancel(job=_job(pk))
    messages.info(request, "Cancel requested: chunks not yet started will not run.")
    return redirect("generation:job", pk)


class AutoEvalForm(forms.Form):
    systems = forms.ModelMultipleChoiceField(queryset=System.objects.all())
    split = forms.ChoiceField(choices=[("", "all tasks"), *Split.choices], required=False, initial=Split.TEST)
    baseline = forms.ModelChoiceField(queryset=System.objects.all(), required=False)
    matcher = forms.ChoiceField(
        choices=[
            ("", "the baseline's spec (else the evaluation default)"),
            ("embedding", "embedding"),
            ("lexical", "lexical"),
        ],
        required=False,
        help_text="Every system is scored under one reward spec.",
    )


@staff_member_required
def auto_eval(request: HttpRequest) -> HttpResponse:
    form = AutoEvalForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        spec = default_spec().with_overrides({"matcher": data["matcher"]}) if data["matcher"] else None
        auto_eval_run(systems=list(data["systems"]), split=data["split"], baseline=data["baseline"], spec=spec)
        messages.success(request, "Automatic evaluation stored.")
        return redirect("generation:auto-eval")
    results = AutoEvalResult.objects.select_related("system", "baseline")[:50]
    rows = [_flat(r) for r in results]
    return TemplateResponse(
        request, "training/generation_auto_eval.html", _context(request, "Automatic evaluation", form=form, rows=rows)
    )


EXPORT_FIELDS = ["id", "system", "baseline", "split", "n_tasks", "created_at"]
METRIC_FIELDS = ["reward", "coverage", "redundant_share", "duplicate_share", "outline_coverage"]


def _flat(result: AutoEvalResult) -> dict[str, object]:
    row: dict[str, object] = {
        "id": result.pk,
        "system": result.system.name,
        "baseline": result.baseline.name if result.baseline else "",
        "split": result.split,
        "n_tasks": result.n_tasks,
        "created_at": result.created_at.isoformat(),
    }
    for name in METRIC_FIELDS:
        metric = result.metrics.get(name) or {}
        row.update({name: metric.get("mean"), f"{name}_lo": metric.get("lo"), f"{name}_hi": metric.get("hi")})
    vs = result.metrics.get("vs_baseline") or {}
    for name in COMPARED:
        entry = vs.get(name) or {}
        difference = entry.get("difference") or {}
        row.update({f"{name}_diff": difference.get("mean"), f"{name}_diff_lo": difference.get("lo"),
                    f"{name}_diff_hi": difference.get("hi")})  # fmt: skip
        row[f"{name}_rel_change"] = (entry.get("relative") or {}).get("mean")
        row[f"{name}_rel_note"] = entry.get("relative_note", "")
    row["reward_spec"] = result.metrics.get("spec_label", "")
    return row


@staff_member_required
def auto_eval_export(request: HttpRequest, fmt: str) -> HttpResponse:
    rows = [_flat(r) for r in AutoEvalResult.objects.select_related("system", "baseline")]
    if fmt == "json":
        response = HttpResponse(json.dumps(rows, indent=2), content_type="application/json")
    elif fmt == "csv":
        buffer = io.StringIO()
        fields = list(rows[0]) if rows else EXPORT_FIELDS
        writer = csv.DictWriter(buffer, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
        response = HttpResponse(buffer.getvalue(), content_type="text/csv")
    else:
        raise Http404
    response["Content-Disposition"] = f'attachment; filename="auto-eval.{fmt}"'
    return response
