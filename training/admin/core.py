from __future__ import annotations

from django.contrib import admin

from training.models import AutoEvalResult, GenerationJob, System, TrainingMetric


@admin.register(System)
class SystemAdmin(admin.ModelAdmin):
    list_display = ("name", "backend", "model_path", "training_run", "created_at")
    list_filter = ("backend",)
    list_select_related = ("training_run",)
    search_fields = ("name", "model_path", "description")
    raw_id_fields = ("training_run",)
    readonly_fields = ("created_at",)


@admin.register(GenerationJob)
class GenerationJobAdmin(admin.ModelAdmin):
    list_display = ("id", "system", "status", "done", "total", "failed", "created_at", "finished_at")
    list_filter = ("status", "system")
    list_select_related = ("system",)
    readonly_fields = (
        "done",
        "skipped",
        "failed",
        "tokens",
        "errors",
        "error",
        "created_at",
        "started_at",
        "finished_at",
        "created_by",
    )


@admin.register(TrainingMetric)
class TrainingMetricAdmin(admin.ModelAdmin):
    list_display = ("run", "step", "created_at")
    list_filter = ("run",)
    list_select_related = ("run",)
    raw_id_fields = ("run",)


@admin.register(AutoEvalResult)
class AutoEvalResultAdmin(admin.ModelAdmin):
    list_display = ("id", "system", "baseline", "split", "n_tasks", "created_at")
    list_select_related = ("system", "baseline")
    readonly_fields = ("metrics", "created_at")
