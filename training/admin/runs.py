"""Admin for training runs (GRPO and DPO): create, Start / Cancel / Resume (buttons and list actions), live curve."""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from training.dpo import merged_dpo_hyperparameters
from training.grpo import merged_hyperparameters
from training.models import Algorithm, JobStatus, TrainingRun
from training.preferences import DEFAULT_PREFERENCE_CONFIG
from training.runs import (
    CONFIG_FIELDS,
    TrainingRunError,
    training_run_can_cancel,
    training_run_can_reenqueue,
    training_run_can_resume,
    training_run_can_start,
    training_run_cancel,
    training_run_create,
    training_run_reenqueue,
    training_run_resume,
    training_run_start,
    training_run_update,
)
from training.selectors import training_form_defaults, training_step_seconds
from training.views_runs import run_progress_context, run_status_label

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
    # A step cannot be interrupted cleanly: the run stops (and saves a checkpoint) when its step ends.
    "cancel": ("Cancel (stops after the current step)", training_run_cancel, training_run_can_cancel),
    "resume": ("Resume", training_run_resume, training_run_can_resume),
    "reenqueue": ("Re-enqueue", training_run_reenqueue, training_run_can_reenqueue),
}


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = ("name", "algorithm", "state", "progress", "device", "created_at")
    list_filter = ("status", "algorithm", "device")
    search_fields = ("name",)
    raw_id_fields = ("base_system", "task_study", "preference_studies")
    change_form_template = "training/run_change_form.html"
    change_list_template = "training/run_change_list.html"
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
        if request.GET.get("algorithm") == Algorithm.DPO:  # "Add DPO run": the DPO defaults, no task source
            hp = merged_dpo_hyperparameters({})
            keys = ("learning_rate", "max_steps", "per_device_train_batch_size", "beta", "loss_type", "max_length")
            keys += ("seed", "save_steps", "lora", "lora_r", "lora_alpha")
            return {
                "algorithm": Algorithm.DPO,
                "hyperparameters": {k: hp[k] for k in keys},
                "preference_config": dict(DEFAULT_PREFERENCE_CONFIG),
            }
        overrides, _ = training_form_defaults()
        hp = merged_hyperparameters(overrides.get("hyperparameters"))
        keys = ("learning_rate", "max_steps", "num_generations", "per_device_train_batch_size")
        keys += ("gradient_accumulation_steps",)
        keys += ("max_completion_length", "beta", "temperature", "seed", "save_steps", "lora", "lora_r", "lora_alpha")
        return {
            "hyperparameters": {k: hp[k] for k in keys},
            # No spec overrides: the run trains on the reward evaluation uses.
            "reward_config": {"terms": {"elicitation": 1.0}},
            "task_split": "train",
            **({"device": overrides["device"]} if "device" in overrides else {}),
        }

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context=None):  # type: ignore[no-untyped-def]
        overrides, why = training_form_defaults()
        notes = [why, _step_time_note(overrides.get("device"))]
        return super().add_view(request, form_url, {**(extra_context or {}), "run_notes": notes})

    @admin.display(description="status")
    def state(self, run: TrainingRun) -> str:
        return run_status_label(run)

    @admin.display(description="step")
    def progress(self, run: TrainingRun) -> str:
        return f"{run.step} / {run.max_steps}"

    def save_model(self, request: HttpRequest, obj: TrainingRun, form, change: bool) -> None:  # type: ignore[no-untyped-def]
        # Through the services like every other write (full_clean, max_steps derived in one place).
        values = {name: form.cleaned_data[name] for name in CONFIG_FIELDS if name in form.cleaned_data}
        if change:
            run = training_run_update(run=obj, **{k: v for k, v in values.items() if k in form.changed_data})
        else:
            run = training_run_create(**values, created_by=request.user)
        # The admin goes on with `obj` (change message, redirect): give it the stored row's state.
        for field in TrainingRun._meta.concrete_fields:
            setattr(obj, field.attname, getattr(run, field.attname))
        obj._state.adding = False

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
            extra_context["run_notes"] = _run_notes(run)
            extra_context["run_buttons"] = [
                {"label": label, "url": reverse("admin:training_run_operate", args=[run.pk, op])}
                for op, (label, _, allowed) in OPERATIONS.items()
                if allowed(run)
            ]
        return super().change_view(request, object_id, form_url, extra_context)

    def _apply(self, request: HttpRequest, run: TrainingRun, operation: str) -> None:
        # Messages start with "Run": the admin capitalises a message's first letter, which would rename
        # a run called "rita-run" to "Rita-run".
        label, service, _ = OPERATIONS[operation]
        try:
            run = service(run=run)
        except TrainingRunError as exc:
            self.message_user(request, f"Run “{run.name}”: {exc}", messages.ERROR)
            return
        run.refresh_from_db()  # the broker is reached after commit: a failure to enqueue lands in run.error
        if run.error and run.status in (JobStatus.FAILED, JobStatus.QUEUED):
            self.message_user(request, f"Run “{run.name}”: {run.error}", messages.ERROR)
        else:
            self.message_user(request, f"Run “{run.name}”: {label.lower()} requested ({run_status_label(run)}).")

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


def _step_time_note(device: str | None) -> str:
    last = training_step_seconds(device=device) or training_step_seconds()
    if last is None:
        return "No run has logged two steps yet, so there is no step time to go by."
    return (
        f"Last time a step took about {_duration(last.seconds)} (run {last.run_name}, {last.device}, "
        f"median of {last.steps} step{'s' if last.steps != 1 else ''})."
    )


def _run_notes(run: TrainingRun) -> list[str]:
    notes = []
    if training_run_can_cancel(run):
        notes.append("Cancel stops the run when its current step ends (it saves a checkpoint first), not at once.")
    last = training_step_seconds()
    if last is not None and run.status in (JobStatus.QUEUED, JobStatus.RUNNING):
        notes.append(_step_time_note(run.device))
    stopped = run.started_at is not None and run.status in (JobStatus.FAILED, JobStatus.CANCELLED)
    if stopped and not training_run_can_resume(run):
        notes.append("No checkpoint was saved before the run stopped, so it cannot be resumed: create a new run.")
    return notes


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
