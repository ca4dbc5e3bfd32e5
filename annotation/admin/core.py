from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from annotation.forms import CandidatesUploadForm, TasksUploadForm
from annotation.models import (
    AnnotatorFlag,
    Assignment,
    Candidate,
    Comparison,
    Judgment,
    Study,
    StudyKind,
    StudyStatus,
    Task,
)
from annotation.selectors import study_blinding_excluded_count
from annotation.services import (
    ValidationFailed,
    candidates_clear_blinding_flags,
    candidates_import,
    study_build_comparisons,
    study_set_status,
    tasks_import,
    tasks_mask,
)


@admin.action(description="Generate candidates…")
def generate_candidates(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Task]) -> HttpResponse:
    # The generation app's form takes the chosen tasks from the URL (no import of its admin or views).
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


class UploadMixin:
    """Adds an "Import JSONL" page to a changelist; the upload goes through the same service as the
    management command, so errors are the same line-numbered list and nothing is half-written."""

    upload_form: type
    upload_title: str

    def get_urls(self):  # type: ignore[no-untyped-def]
        urls = super().get_urls()  # type: ignore[misc]
        name = f"{self.model._meta.app_label}_{self.model._meta.model_name}_import"  # type: ignore[attr-defined]
        view = self.admin_site.admin_view(self.import_view)  # type: ignore[attr-defined]
        return [path("import/", view, name=name), *urls]

    def run_upload(self, form) -> object:  # pragma: no cover - overridden
        raise NotImplementedError

    def import_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_add_permission(request):  # type: ignore[attr-defined]
            return HttpResponse(status=403)
        form = self.upload_form(request.POST or None, request.FILES or None)
        errors: list[str] = []
        if request.method == "POST" and form.is_valid():
            try:
                report = self.run_upload(form)
            except ValidationFailed as exc:
                errors = [str(e) for e in exc.errors]
            else:
                messages.success(request, f"Imported: {report}")
                opts = self.model._meta  # type: ignore[attr-defined]
                return HttpResponseRedirect(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        context = {
            **self.admin_site.each_context(request),  # type: ignore[attr-defined]
            "opts": self.model._meta,  # type: ignore[attr-defined]
            "title": self.upload_title,
            "form": form,
            "errors": errors,
        }
        return TemplateResponse(request, "admin/annotation/import.html", context)


@admin.register(Task)
class TaskAdmin(UploadMixin, admin.ModelAdmin):
    list_display = ("key", "domain", "split", "n_hidden", "updated_at")
    list_filter = ("split", "domain")
    search_fields = ("key", "full_task", "masked_task")
    readonly_fields = ("created_at", "updated_at")
    change_list_template = "admin/annotation/change_list_with_import.html"
    upload_form = TasksUploadForm
    upload_title = "Import tasks (JSON Lines)"
    actions = (generate_candidates, mask_tasks)

    @admin.display(description="hidden facts")
    def n_hidden(self, obj: Task) -> int:
        return len(obj.hidden_facts or [])

    def run_upload(self, form: TasksUploadForm) -> object:
        return tasks_import(lines=form.cleaned_data["file"])


class HasBlindingFlags(admin.SimpleListFilter):
    title = "blinding"
    parameter_name = "blinding"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("flagged", "Names a system or vendor"), ("clean", "Clean")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Candidate]) -> QuerySet[Candidate]:
        if self.value() == "flagged":
            return queryset.exclude(blinding_flags=[])
        if self.value() == "clean":
            return queryset.filter(blinding_flags=[])
        return queryset


@admin.register(Candidate)
class CandidateAdmin(UploadMixin, admin.ModelAdmin):
    list_display = ("task", "system", "n_questions", "blinding_flags", "created_at")
    list_filter = ("system", HasBlindingFlags, "task__domain")
    actions = ("clear_blinding_flags",)
    list_select_related = ("task", "system")
    search_fields = ("task__key", "outline")
    raw_id_fields = ("task",)
    readonly_fields = ("created_at",)
    change_list_template = "admin/annotation/change_list_with_import.html"
    upload_form = CandidatesUploadForm
    upload_title = "Import candidates (JSON Lines)"

    @admin.display(description="questions")
    def n_questions(self, obj: Candidate) -> int:
        return len(obj.questions or [])

    @admin.action(description="Clear blinding flags (reviewed: the text does not reveal a system)")
    def clear_blinding_flags(self, request: HttpRequest, queryset: QuerySet[Candidate]) -> None:
        cleared = candidates_clear_blinding_flags(candidate_ids=queryset.values_list("pk", flat=True))
        self.message_user(request, f"{cleared} candidates cleared; rebuild comparisons to include them")

    def run_upload(self, form: CandidatesUploadForm) -> object:
        return candidates_import(lines=form.cleaned_data["file"], system_name=form.cleaned_data["system"])


@admin.register(Study)
class StudyAdmin(admin.ModelAdmin):
    list_display = ("slug", "title", "kind", "status", "overlap", "n_comparisons", "n_blinding_excluded", "created_at")
    list_filter = ("kind", "status")
    search_fields = ("slug", "title")
    prepopulated_fields = {"slug": ("title",)}
    filter_horizontal = ("systems", "annotators")
    readonly_fields = ("created_at",)
    actions = ("build_comparisons", "open_studies", "close_studies")

    @admin.display(description="comparisons / items")
    def n_comparisons(self, obj: Study) -> int:
        return obj.answer_items.count() if obj.kind == StudyKind.ANSWER else obj.comparisons.count()

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, object]:
        initial = super().get_changeform_initial_data(request)
        if initial.get("kind") == StudyKind.ANSWER:
            initial.setdefault("overlap", 1)  # one person per candidate is the answer study's default
        return initial

    @admin.display(description="left out (name a system)")
    def n_blinding_excluded(self, obj: Study) -> int:
        return study_blinding_excluded_count(study=obj)

    @admin.action(description="Build comparisons from the systems' candidates")
    def build_comparisons(self, request: HttpRequest, queryset: QuerySet[Study]) -> None:
        from annotation.answers import study_build_answer_items

        for study in queryset:
            if study.kind == StudyKind.ANSWER:
                created = study_build_answer_items(study=study)
                self.message_user(request, f"{study.slug}: {created} new answer items")
                continue
            created = study_build_comparisons(study=study)
            # Not the slug first: the admin capitalises a message's first letter ("my-study" → "My-study").
            self.message_user(request, f"Study “{study.slug}”: {created} new comparisons")

    @admin.action(description="Open for annotation")
    def open_studies(self, request: HttpRequest, queryset: QuerySet[Study]) -> None:
        for study in queryset:
            study_set_status(study=study, status=StudyStatus.OPEN)
        self.message_user(request, f"{len(queryset)} studies opened")

    @admin.action(description="Close (no more judgments)")
    def close_studies(self, request: HttpRequest, queryset: QuerySet[Study]) -> None:
        for study in queryset:
            study_set_status(study=study, status=StudyStatus.CLOSED)
        self.message_user(request, f"{len(queryset)} studies closed")


@admin.register(Comparison)
class ComparisonAdmin(admin.ModelAdmin):
    list_display = ("id", "study", "task", "candidate_a", "candidate_b", "is_gold", "judgments_count")
    list_filter = ("study", "is_gold")
    list_select_related = (
        "study",
        "task",
        "candidate_a__system",
        "candidate_b__system",
        "candidate_a__task",
        "candidate_b__task",
    )
    search_fields = ("task__key",)
    raw_id_fields = ("task", "candidate_a", "candidate_b")
    readonly_fields = ("created_at", "slots_taken", "judgments_count")


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ("id", "comparison", "annotator", "left", "state", "lease_expires_at", "created_at")
    list_filter = ("state", "comparison__study")
    list_select_related = ("comparison__study", "comparison__task", "annotator")
    search_fields = ("annotator__username",)
    raw_id_fields = ("comparison", "annotator")
    readonly_fields = ("created_at", "updated_at")


@admin.register(Judgment)
class JudgmentAdmin(admin.ModelAdmin):
    list_display = ("id", "comparison", "annotator", "choice", "seconds", "created_at")
    list_filter = ("choice", "comparison__study")
    list_select_related = ("comparison__study", "comparison__task", "annotator")
    search_fields = ("annotator__username", "rationale")
    raw_id_fields = ("assignment", "comparison", "annotator")

    def get_readonly_fields(self, request: HttpRequest, obj: Judgment | None = None) -> list[str]:
        # Judgments are immutable evidence; the database refuses updates too.
        return [f.name for f in self.model._meta.fields] if obj else ["created_at"]


@admin.register(AnnotatorFlag)
class AnnotatorFlagAdmin(admin.ModelAdmin):
    list_display = ("study", "annotator", "reason", "created_at")
    list_filter = ("study",)
    list_select_related = ("study", "annotator")
    raw_id_fields = ("annotator",)
