"""A "Results" link on each study in admin, to the researcher's results page."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from annotation.models import Study

# Extend whichever StudyAdmin is registered (core's, or another area's subclass of it), so that
# areas adding columns to the study list do not overwrite each other.
_Base = type(admin.site.get_model_admin(Study))


class StudyResultsAdmin(_Base):  # type: ignore[misc, valid-type]
    list_display = (*_Base.list_display, "results_link")

    @admin.display(description="results")
    def results_link(self, obj: Study) -> str:
        return format_html('<a href="{}">Results</a>', reverse("results:study", args=[obj.slug]))


admin.site.unregister(Study)
admin.site.register(Study, StudyResultsAdmin)
