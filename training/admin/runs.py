"""Admin for GRPO training runs: create, Start / Cancel / Resume (buttons and list actions), live curve."""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from training.grpo import merged_hyperparameters
from training.models import TrainingRun
from training.runs import (
    TrainingRunError,
    training_run_can_cancel,
    training_run_can_reenqueue,
    training_run_can_resume,
    training_run_can_start,
    training_run_cancel,
    training_run_reenqueue,
    training_run_resume,
    training_run_start,
    training_run_total_steps,
)
from training.views_runs import run_progress_context, run_status_label

CONFIG_FIELDS = (
    "name",
    "base_system",
    "base_model_path",
    "task_split",
    "task_study",
    "tasks_file",
    "warm_start_source",
    "warm_start_steps",
    "algorithm",
    "reward_config",
    "decoding_overrides",
    "hyperparameters",
    "device",
    "num_processes",
    "deepspeed_config",
)
STATE_FIELDS = (
    "status",
    "attempt",
    "step",
    "max_steps",
    "output_dir",
    "cancel_requested",
    "heartbeat_at",
    "enqueued_at",
    "started_at",
    "finished_at",
    "created_by",
    "created_at",
    "reward_spec",
    "log",
)
OPERATIONS = {
    "start": ("Start", training_run_start, training_run_can_start),
    "cancel": ("Cancel", training_run_cancel, training_run_can_cancel),
    "resume": ("Resume", training_run_resume, training_run_can_resume),
    "reenqueue": ("Re-enqueue", training_run_reenqueue, training_run_can_reenqueue),
}


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = ("name", "algorithm", "state", "progress", "device", "created_at")
    list_filter = ("status", "algorithm", "device")
    search_fields = ("name",)
    raw_id_fields = ("base_system", "task_study")
    change_form_template = "training/run_change_form.html"
    actions = ("start_runs", "cancel_runs", "resume_runs", "reenqueue_runs")
    fieldsets = (
        (None, {"fields": CONFIG_FIELDS}),
        ("State", {"fields": STATE_FIELDS, "classes": ("collapse",)}),
    )

    def get_readonly_fields(self, request: HttpRequest, obj: TrainingRun | None = None) -> tuple[str, ...]:
        # Once launched, the configuration is what the checkpoints were trained with: resume must not change it.
        launched = obj is not None and obj.started_at is not None
        return (CONFIG_FIELDS if launched else ()) + STATE_FIELDS

    def get_changeform_initial_data(self, request: HttpRequest) -> dict:
        hp = merged_hyperparameters({})
        keys = ("learning_rate", "max_steps", "num_generations", "per_device_train_batch_size")
        keys += ("gradient_accumulation_steps",)
        keys += ("max_completion_length", "beta", "temperature", "seed", "save_steps", "lora", "lora_r", "lora_alpha")
        return {
            "hyperparameters": {k: hp[k] for k in keys},
            # No spec overrides: the run trains on the reward evaluation uses.
            "reward_config": {"terms": {"elicitation": 1.0}},
            "task_split": "train",
        }

    @admin.display(description="status")
    def state(self, run: TrainingRun) -> str:
        return run_status_label(run)

    @admin.display(description="step")
    def progress(self, run: TrainingRun) -> str:
        return f"{run.step} / {run.max_steps}"

    def save_model(self, request: HttpRequest, obj: TrainingRun, form, change: bool) -> None:
        if not change:
            obj.created_by = request.user
        obj.max_steps = training_run_total_steps(obj)
        super().save_model(request, obj, form, change)

    def get_urls(self):
        own = [
            path("<int:pk>/<str:operation>/run/", self.admin_site.admin_view(self.operate), name="training_run_operate")
        ]
        return own + super().get_urls()

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None):
        run = self.get_object(request, object_id)
        extra_context = dict(extra_context or {})
        if run is not None:
            extra_context.update(run_progress_context(run))
            extra_context["run_buttons"] = [
                {"label": label, "url": reverse("admin:training_run_operate", args=[run.pk, op])}
                for op, (label, _, allowed) in OPERATIONS.items()
                if allowed(run)
            ]
        return super().change_view(request, object_id, form_url, extra_context)

    def _apply(self, request: HttpRequest, run: TrainingRun, operation: str) -> None:
        label, service, _ = OPERATIONS[operation]
        try:
            run = service(run=run)
        except TrainingRunError as exc:
            self.message_user(request, f"{run.name}: {exc}", messages.ERROR)
            return
        run.refresh_from_db()  # the broker is reached after commit: a failure to enqueue lands in run.error
        if run.error and run.status in ("failed", "queued"):
            self.message_user(request, f"{run.name}: {run.error}", messages.ERROR)
        else:
            self.message_user(request, f"{run.name}: {label.lower()} requested ({run_status_label(run)}).")

    def operate(self, request: HttpRequest, pk: int, operation: str):
        return require_POST(self._operate)(request, pk, operation)

    def _operate(self, request: HttpRequest, pk: int, operation: str):
        run = get_object_or_404(TrainingRun, pk=pk)
        if operation not in OPERATIONS or not self.has_change_permission(request, run):
            self.message_user(request, "Not allowed.", messages.ERROR)
        else:
            self._apply(request, run, operation)
        return HttpResponseRedirect(reverse("admin:training_trainingrun_change", args=[pk]))

    @admin.action(description="Start the selected runs", permissions=["change"])
    def start_runs(self, request: HttpRequest, queryset) -> None:
        for run in queryset:
            self._apply(request, run, "start")

    @admin.action(description="Cancel the selected runs", permissions=["change"])
    def cancel_runs(self, request: HttpRequest, queryset) -> None:
        for run in queryset:
            self._apply(request, run, "cancel")

    @admin.action(description="Re-enqueue the selected queued runs (after a broker outage)", permissions=["change"])
    def reenqueue_runs(self, request: HttpRequest, queryset) -> None:
        for run in queryset:
            self._apply(request, run, "reenqueue")

    @admin.action(description="Resume the selected runs from their last checkpoint", permissions=["change"])
    def resume_runs(self, request: HttpRequest, queryset) -> None:
        for run in queryset:
            self._apply(request, run, "resume")
