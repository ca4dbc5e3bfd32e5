from __future__ import annotations

from django import forms

from training.models import System


class TasksUploadForm(forms.Form):
    file = forms.FileField(
        help_text="JSON Lines: key, domain, full_task, masked_task, hidden_facts[, split, reference_outline]"
    )


class CandidatesUploadForm(forms.Form):
    file = forms.FileField(help_text="JSON Lines: key, questions, answers, outline[, metadata]")
    system = forms.CharField(
        max_length=100,
        help_text="Existing system name, or a new name to create a static system.",
        widget=forms.TextInput(attrs={"list": "system-names"}),
    )

    def system_names(self) -> list[str]:
        return list(System.objects.values_list("name", flat=True))
