from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse

from annotation.models import Comparison, Study, Task

pytestmark = pytest.mark.django_db


def test_a_researcher_uploads_tasks_and_sees_line_numbered_errors(client, researcher):
    client.force_login(researcher)
    good = {"key": "a", "domain": "d", "full_task": "full", "masked_task": "masked", "hidden_facts": ["f"]}
    body = (json.dumps(good) + "\n" + '{"key": "b"}\n').encode()
    response = client.post(reverse("admin:annotation_task_import"), {"file": SimpleUploadedFile("t.jsonl", body)})
    assert response.status_code == 200
    assert "line 2: missing field" in response.content.decode()
    assert not Task.objects.exists()

    response = client.post(
        reverse("admin:annotation_task_import"), {"file": SimpleUploadedFile("t.jsonl", body.split(b"\n")[0])}
    )
    assert response.status_code == 302
    assert Task.objects.filter(key="a").exists()


def test_an_annotator_cannot_reach_the_import_page(client, alice):
    client.force_login(alice)
    response = client.get(reverse("admin:annotation_task_import"))
    assert response.status_code == 302  # bounced to the admin login
    assert "/admin/login/" in response["Location"]


def test_every_admin_changelist_renders(client, researcher):
    call_command("demo_setup", verbosity=0)
    client.force_login(researcher)
    for model in ("task", "candidate", "study", "comparison", "assignment", "judgment", "annotatorflag"):
        assert client.get(reverse(f"admin:annotation_{model}_changelist")).status_code == 200
    for model in ("system", "generationjob", "generationchunk", "trainingrun", "trainingmetric", "autoevalresult"):
        assert client.get(reverse(f"admin:training_{model}_changelist")).status_code == 200


def test_demo_setup_loads_studies_and_is_idempotent():
    call_command("demo_setup", verbosity=0)
    counts = (Task.objects.count(), Comparison.objects.count())
    call_command("demo_setup", verbosity=0)
    assert (Task.objects.count(), Comparison.objects.count()) == counts
    assert counts[0] >= 30
    assert Task.objects.values("domain").distinct().count() >= 6
    questions = Study.objects.get(slug="demo-questions")
    assert questions.comparisons.count() == Task.objects.count()
    assert questions.annotators.filter(username="alice").exists()
    assert Study.objects.get(slug="demo-outlines").status == "open"
