"""Admin for answer studies: items, leases and human transcripts (read-only evidence), and the Study action
that has each system write outlines from people's answers."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

from annotation.models import AnswerAssignment, AnswerItem, HumanTranscript, Study, StudyKind
from training.generation import human_outlines_start


@admin.register(AnswerItem)
class AnswerItemAdmin(admin.ModelAdmin):
    list_display = ("id", "study", "task", "candidate", "is_gold", "answers_count", "slots_taken")
    list_filter = ("study", "is_gold")
    list_select_related = ("study", "task", "candidate__system", "candidate__task")
    search_fields = ("task__key",)
    raw_id_fields = ("task", "candidate")
    readonly_fields = ("created_at", "slots_taken", "answers_count")


@admin.register(AnswerAssignment)
class AnswerAssignmentAdmin(admin.ModelAdmin):
    list_display = ("id", "item", "annotator", "state", "lease_expires_at", "flag_reason", "created_at")
    list_filter = ("state", "item__study")
    list_select_related = ("item__study", "item__task", "annotator")
    search_fields = ("annotator__username",)
    raw_id_fields = ("item", "annotator")
    readonly_fields = ("created_at", "updated_at")


@admin.register(HumanTranscript)
class HumanTranscriptAdmin(admin.ModelAdmin):
    list_display = ("id", "item", "candidate", "annotator", "seconds", "created_at")
    list_filter = ("item__study", "candidate__system")
    list_select_related = ("item__study", "item__task", "candidate__system", "candidate__task", "annotator")
    search_fields = ("annotator__username", "candidate__task__key")
    raw_id_fields = ("assignment", "item", "candidate", "annotator")

    def get_readonly_fields(self, request: HttpRequest, obj: HumanTranscript | None = None) -> list[str]:
        # Transcripts are evidence, like judgments: stored once by the answer service, never edited.
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.action(description="Answer studies: have each system write outlines from the human answers")
def write_outlines_from_human_answers(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Study]
) -> None:
    for study in queryset:
        if study.kind != StudyKind.ANSWER:
            modeladmin.message_user(request, f"{study.slug}: not an answer study", messages.WARNING)
            continue
        for system in study.systems.all():
            try:
                job = human_outlines_start(study=study, source=system, user=request.user)
            except ValidationError as exc:
                modeladmin.message_user(request, f"{study.slug}: {'; '.join(exc.messages)}", messages.WARNING)
            else:
                modeladmin.message_user(
                    request,
                    f"{study.slug}: generation job #{job.pk} — {system.name} writes {job.total} outlines from "
                    f"human answers as system '{job.system.name}' (add it to an outline study beside {system.name})",
                )


# Extend whichever StudyAdmin is registered (as results.py does), so areas never overwrite each other.
_Base = type(admin.site.get_model_admin(Study))


class StudyForm(_Base.form):  # type: ignore[misc, name-defined]
    def clean(self) -> dict[str, object]:
        data = super().clean()
        # An answer study's default overlap is 1 (one person per candidate), not the pairwise kinds' 3: applied
        # when the researcher chose the kind and left overlap as it was.
        if data.get("kind") == StudyKind.ANSWER and self.instance.pk is None and "overlap" not in self.changed_data:
            data["overlap"] = 1
        return data


class StudyAnswersAdmin(_Base):  # type: ignore[misc, valid-type]
    form = StudyForm
    actions = (*_Base.actions, write_outlines_from_human_answers)


admin.site.unregister(Study)
admin.site.register(Study, StudyAnswersAdmin)
