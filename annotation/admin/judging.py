"""Judging quality for researchers: per-annotator table, flagged content, preview as annotator."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from annotation import selectors
from annotation.models import Study, StudyAnnotatorQuality, StudyKind


@admin.register(StudyAnnotatorQuality)
class AnnotatorQualityAdmin(admin.ModelAdmin):
    list_display = ("title", "slug", "kind", "status", "flagged_annotators", "annotator_table", "preview")
    list_filter = ("status", "kind")
    search_fields = ("slug", "title")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="flagged annotators")
    def flagged_annotators(self, obj: Study) -> int:
        return obj.annotator_flags.count()

    @admin.display(description="annotators")
    def annotator_table(self, obj: Study) -> str:
        url = reverse("admin:annotation_studyannotatorquality_change", args=[obj.pk])
        return format_html('<a href="{}">Per-annotator table</a>', url)

    @admin.display(description="preview")
    def preview(self, obj: Study) -> str:
        return format_html('<a href="{}">Preview as annotator</a>', reverse("annotation:preview", args=[obj.pk]))

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        study = get_object_or_404(Study, pk=object_id)
        if not self.has_view_permission(request, study):
            raise PermissionDenied
        quality_table, flagged = selectors.annotator_quality_table, selectors.flagged_content
        if study.kind == StudyKind.ANSWER:
            from annotation import answers_selectors as answers

            quality_table, flagged = answers.answer_quality_table, answers.answer_flagged_content
        rows = quality_table(study=study)
        # Ties are a pairwise notion: answer-study rows have none.
        judged, ties = sum(getattr(r, "judgments", 0) for r in rows), sum(getattr(r, "ties", 0) for r in rows)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Annotators of “{study.title}”",
            "study": study,
            "rows": rows,
            "overall_judgments": judged,
            "overall_ties": ties,
            "overall_tie_share": ties / judged if judged else None,
            "flagged": flagged(study=study)[:200],
            "flags_url": reverse("admin:annotation_annotatorflag_changelist") + f"?study__id__exact={study.pk}",
            "preview_url": reverse("annotation:preview", args=[study.pk]),
        }
        return TemplateResponse(request, "admin/annotation/annotator_quality.html", context)
