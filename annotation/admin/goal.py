"""Study goals in admin: goal progress on the study list, the pairs' anytime-valid state on the study page,
and an action that refreshes it now (the same service the background refresh runs)."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from annotation.models import Study, StudyPair
from annotation.selectors_stats import study_goal_summary
from annotation.services_goal import study_sequential_refresh

# Extend whichever StudyAdmin is registered (see results.py), so areas adding columns never overwrite each other.
_Base = type(admin.site.get_model_admin(Study))


class StudyPairInline(admin.TabularInline):
    model = StudyPair
    fk_name = "study"
    extra = 0
    can_delete = False
    fields = ("system_a", "system_b", "n", "cs_low", "cs_high", "e_value", "decided", "open", "judgments_left")
    readonly_fields = fields
    verbose_name_plural = "pairs (anytime-valid state, refreshed from judgments)"

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class StudyGoalAdmin(_Base):  # type: ignore[misc, valid-type]
    list_display = (*_Base.list_display, "goal_progress")
    inlines = (*getattr(_Base, "inlines", ()), StudyPairInline)
    actions = (*_Base.actions, "refresh_pair_states")

    def save_model(self, request: HttpRequest, obj: Study, form: object, change: bool) -> None:
        super().save_model(request, obj, form, change)
        # A new or changed goal decides at once which pairs are open, instead of after the next judgment.
        if obj.goal or obj.budget is not None:
            study_sequential_refresh(study_id=obj.pk)

    @admin.display(description="goal")
    def goal_progress(self, obj: Study) -> str:
        summary = study_goal_summary(study=obj)
        if summary is None:
            return "–"
        spent = f"{summary['spent']}" + (f"/{summary['budget']}" if summary["budget"] is not None else "")
        left = "?" if summary["left"] is None else f"≈{summary['left']}"
        line = f"{summary['goal']}: {summary['decided']}/{summary['pairs']} decided · {spent} judgments · {left} left"
        if summary["starved"]:
            line += f" · no comparisons left for {len(summary['starved'])} open pair(s)"
        return line

    @admin.action(description="Refresh pair states (confidence sequences, decisions) now")
    def refresh_pair_states(self, request: HttpRequest, queryset: QuerySet[Study]) -> None:
        for study in queryset:
            refreshed = study_sequential_refresh(study_id=study.pk)
            closed = f" — closed itself ({refreshed.get_closed_reason_display()})" if refreshed.closed_reason else ""
            self.message_user(request, f"{study.slug}: pair states refreshed{closed}")


admin.site.unregister(Study)
admin.site.register(Study, StudyGoalAdmin)
