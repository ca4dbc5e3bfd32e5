"""Admin for generation: jobs with a live progress page, auto-eval results, and the Task actions
"Generate candidates…" and "Mask (rule method)" (wired into TaskAdmin)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from annotation.models import Task
from training.generation import generation_job_cancel, generation_job_progress, generation_job_reenqueue, tasks_mask
from training.models import AutoEvalResult, GenerationChunk, GenerationJob


@admin.register(GenerationJob)
class GenerationJobAdmin(admin.ModelAdmin):
    list_display = ("id", "system", "status", "progress", "failed", "tokens", "created_at", "finished_at")
    list_filter = ("status", "system")
    list_select_related = ("system",)
    readonly_fields = (
        "system",
        "task_ids",
        "simulator",
        "reward_spec",
        "status",
        "total",
        "done",
        "skipped",
        "failed",
        "tokens",
        "errors",
        "error",
        "cancel_requested",
        "created_at",
        "started_at",
        "finished_at",
        "created_by",
    )
    actions = ("cancel_jobs", "reenqueue_jobs")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # jobs start from "Generate candidates…" on the Task list, or generate_candidates

    @admin.display(description="progress")
    def progress(self, obj: GenerationJob) -> str:
        p = generation_job_progress(job=obj)
        url = reverse("generation:job", args=[obj.pk])
        return format_html('<a href="{}">{} / {} ({}%)</a>', url, p.done, p.total, p.percent)

    @admin.action(description="Cancel the selected jobs")
    def cancel_jobs(self, request: HttpRequest, queryset: QuerySet[GenerationJob]) -> None:
        for job in queryset:
            generation_job_cancel(job=job)
        self.message_user(request, f"Cancel requested for {queryset.count()} job(s).")

    @admin.action(description="Re-enqueue queued chunks (after a broker outage)")
    def reenqueue_jobs(self, request: HttpRequest, queryset: QuerySet[GenerationJob]) -> None:
        for job in queryset:
            sent = generation_job_reenqueue(job=job)
            job.refresh_from_db()
            if job.error:
                self.message_user(request, f"Job #{job.pk}: {job.error}", messages.ERROR)
            else:
                self.message_user(request, f"Job #{job.pk}: {sent} chunk(s) re-enqueued.")

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None):  # type: ignore[no-untyped-def]
        # The live progress page is the useful view of a job.
        return HttpResponseRedirect(reverse("generation:job", args=[object_id]))


@admin.register(AutoEvalResult)
class AutoEvalResultAdmin(admin.ModelAdmin):
    list_display = ("id", "system", "baseline", "split", "n_tasks", "reward", "created_at")
    list_select_related = ("system", "baseline")
    readonly_fields = ("system", "baseline", "split", "n_tasks", "metrics", "reward_spec", "created_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="mean reward")
    def reward(self, obj: AutoEvalResult) -> object:
        return (obj.metrics.get("reward") or {}).get("mean")

    def changelist_view(self, request: HttpRequest, extra_context=None):  # type: ignore[no-untyped-def]
        extra_context = {
            **(extra_context or {}),
            "title": "Auto-eval results (run and export at /generation/auto-eval/)",
        }
        return super().changelist_view(request, extra_context)


@admin.action(description="Generate candidates…")
def generate_candidates(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Task]):  # type: ignore[no-untyped-def]
    ids = ",".join(str(pk) for pk in queryset.values_list("pk", flat=True))
    return HttpResponseRedirect(f"{reverse('generation:start')}?ids={ids}")


@admin.action(description="Mask from the full task (rule method, seed 0)")
def mask_tasks(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Task]) -> None:
    try:
        count = tasks_mask(tasks=queryset)
    except ValidationError as exc:
        modeladmin.message_user(request, "; ".join(exc.messages), level=messages.ERROR)
    else:
        modeladmin.message_user(request, f"{count} task(s) masked.")


@admin.register(GenerationChunk)
class GenerationChunkAdmin(admin.ModelAdmin):
    list_display = ("id", "job", "index", "status", "attempts", "updated_at")
    list_filter = ("status",)
    list_select_related = ("job__system",)
    raw_id_fields = ("job",)
    readonly_fields = ("job", "index", "task_ids", "status", "attempts", "error", "updated_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # chunks are made by generation_job_start
