from __future__ import annotations

from django.contrib import admin

from training.models import System, TrainingMetric


@admin.register(System)
class SystemAdmin(admin.ModelAdmin):
    list_display = ("name", "backend", "model_path", "training_run", "created_at")
    list_filter = ("backend",)
    list_select_related = ("training_run",)
    search_fields = ("name", "model_path", "description")
    raw_id_fields = ("training_run",)
    readonly_fields = ("created_at",)


@admin.register(TrainingMetric)
class TrainingMetricAdmin(admin.ModelAdmin):
    list_display = ("run", "step", "created_at")
    list_filter = ("run",)
    list_select_related = ("run",)
    raw_id_fields = ("run",)
