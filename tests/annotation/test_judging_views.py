from __future__ import annotations

import re

import pytest
from django.urls import reverse

from annotation.models import Assignment, AssignmentState, Candidate, Judgment, StudyKind, StudyStatus
from tests import factories
from tests.annotation.judging_support import SYSTEM_NAMES, make_study

pytestmark = pytest.mark.django_db


def _start(client, study) -> Assignment:
    response = client.post(reverse("annotation:next", args=[study.pk]))
    assert response.status_code == 302
    return Assignment.objects.get(pk=int(re.search(r"/a/(\d+)/", response["Location"]).group(1)))


def _assert_blind(html: str, study) -> None:
    for name in SYSTEM_NAMES:
        assert name not in html
    for candidate in Candidate.objects.filter(task__comparisons__study=study):
        assert f"candidate-{candidate.pk}" not in html
    assert 'value="a"' not in html
    assert 'value="b"' not in html


def test_the_home_page_lists_open_studies_with_progress(client, alice):
    study = make_study(comparisons=2, annotators=(alice,), title="Which questions help?", quota_per_annotator=4)
    open_ended = make_study(comparisons=3, annotators=(alice,), title="Open-ended study", overlap=2)
    make_study(comparisons=1, annotators=(alice,), title="Drafting study", status=StudyStatus.DRAFT)
    client.force_login(alice)
    html = client.get(reverse("annotation:home")).content.decode()
    assert "Which questions help?" in html
    assert "Drafting study" not in html
    assert "0 of your 4" in html
    assert reverse("annotation:next", args=[study.pk]) in html
    # Without a quota the whole study's count is never mistaken for the annotator's own target.
    assert "no personal target" in html
    assert "0 of 6 judgments" in html
    assert reverse("annotation:next", args=[open_ended.pk]) in html
    # Each card's button names its study for screen readers.
    assert '<span class="visually-hidden"> Which questions help?</span>' in html


def test_the_questions_page_is_blinded_and_numbered(client, alice):
    study = make_study(comparisons=1, annotators=(alice,), show_hidden_context=True, criteria=["Relevance"])
    client.force_login(alice)
    assignment = _start(client, study)
    response = client.get(reverse("annotation:judge", args=[assignment.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Response 1" in html
    assert "Response 2" in html
    assert assignment.comparison.task.masked_task in html
    assert assignment.comparison.task.full_task not in html
    assert "What the user actually knew" in html
    assert "The budget is $5,000." in html
    left = assignment.comparison.candidate_a if assignment.left == "a" else assignment.comparison.candidate_b
    right = assignment.comparison.candidate_b if assignment.left == "a" else assignment.comparison.candidate_a
    assert html.index(left.questions[0]) < html.index(right.questions[0])
    assert "Relevance" in html
    _assert_blind(html, study)


def test_hidden_facts_stay_hidden_unless_the_study_shows_them(client, alice):
    study = make_study(comparisons=1, annotators=(alice,), show_hidden_context=False)
    client.force_login(alice)
    assignment = _start(client, study)
    html = client.get(reverse("annotation:judge", args=[assignment.pk])).content.decode()
    assert "What the user actually knew" not in html
    assert "The budget is $5,000." not in html


def test_the_outline_page_shows_the_full_task_and_sanitised_markdown(client, alice):
    study = make_study(comparisons=1, annotators=(alice,), kind=StudyKind.OUTLINE)
    comparison = study.comparisons.get()
    Candidate.objects.filter(pk=comparison.candidate_a_id).update(
        outline="# Plan\n- **Budget** first\n  - nested\n<script>alert('x')</script>\n"
        '<img src=x onerror="alert(1)">\n[click](javascript:alert(1))'
    )
    client.force_login(alice)
    assignment = _start(client, study)
    html = client.get(reverse("annotation:judge", args=[assignment.pk])).content.decode()
    assert comparison.task.full_task in html
    assert "<h1>Plan</h1>" in html
    assert "<strong>Budget</strong>" in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html or "&lt;script&gt;" in html
    assert "<script>alert" not in html
    assert "onerror=" not in html.replace("&lt;img src=x onerror=", "")
    assert 'href="javascript:' not in html
    _assert_blind(html, study)


def test_submitting_by_form_records_and_moves_to_the_next_comparison(client, alice):
    study = make_study(comparisons=2, annotators=(alice,))
    client.force_login(alice)
    assignment = _start(client, study)
    response = client.post(
        reverse("annotation:judge", args=[assignment.pk]), {"choice": "2", "rationale": "", "active_seconds": "3.5"}
    )
    assert response.status_code == 302
    judgment = Judgment.objects.get()
    assert judgment.active_seconds is not None
    assert judgment.choice == ("b" if assignment.left == "a" else "a")
    following = Assignment.objects.exclude(pk=assignment.pk).get()
    assert response["Location"] == reverse("annotation:judge", args=[following.pk])


def test_a_double_submit_records_once_and_moves_on(client, alice):
    study = make_study(comparisons=2, annotators=(alice,))
    client.force_login(alice)
    assignment = _start(client, study)
    url = reverse("annotation:judge", args=[assignment.pk])
    client.post(url, {"choice": "1"})
    response = client.post(url, {"choice": "1"})
    assert response.status_code == 302
    assert Judgment.objects.count() == 1


def test_an_invalid_submit_shows_errors_and_keeps_the_text(client, alice):
    study = make_study(comparisons=1, annotators=(alice,), rationale_min_length=20)
    client.force_login(alice)
    assignment = _start(client, study)
    response = client.post(reverse("annotation:judge", args=[assignment.pk]), {"choice": "1", "rationale": "meh"})
    assert response.status_code == 400
    assert "at least 20 characters" in response.content.decode()
    assert ">meh</textarea>" in response.content.decode()
    assert not Judgment.objects.exists()


def test_another_annotators_assignment_is_a_404(client, alice, bob):
    study = make_study(comparisons=1, annotators=(alice, bob))
    client.force_login(alice)
    assignment = _start(client, study)
    client.force_login(bob)
    assert client.get(reverse("annotation:judge", args=[assignment.pk])).status_code == 404
    assert client.post(reverse("annotation:judge", args=[assignment.pk]), {"choice": "1"}).status_code == 404
    assert client.post(reverse("annotation:skip", args=[assignment.pk]), {"reason": "x"}).status_code == 404
    assert not Judgment.objects.exists()


def test_a_study_the_annotator_is_not_in_is_a_404(client, alice, bob):
    study = make_study(comparisons=1, annotators=(alice,))
    client.force_login(bob)
    assert client.post(reverse("annotation:next", args=[study.pk])).status_code == 404


def test_pages_require_login(client):
    study = make_study(comparisons=1)
    response = client.get(reverse("annotation:next", args=[study.pk]))
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_submitting_after_the_study_closed_is_refused_with_the_text_shown_back(client, alice):
    study = make_study(comparisons=1, annotators=(alice,))
    client.force_login(alice)
    assignment = _start(client, study)
    study.status = StudyStatus.CLOSED
    study.save()
    response = client.post(
        reverse("annotation:judge", args=[assignment.pk]), {"choice": "1", "rationale": "Both fine, 1 sharper."}
    )
    assert response.status_code == 409
    html = response.content.decode()
    assert "closed" in html
    assert "Both fine, 1 sharper." in html
    assert not Judgment.objects.exists()


def test_skip_and_flag_from_the_page(client, alice):
    study = make_study(comparisons=2, annotators=(alice,))
    client.force_login(alice)
    assignment = _start(client, study)
    response = client.post(reverse("annotation:flag", args=[assignment.pk]), {"reason": "Response 1 says 'as GPT'"})
    assert response.status_code == 302
    response = client.post(reverse("annotation:skip", args=[assignment.pk]), {"reason": "I cannot judge this topic"})
    assert response.status_code == 302
    assignment.refresh_from_db()
    assert assignment.state == AssignmentState.SKIPPED
    assert assignment.flag_reason == "Response 1 says 'as GPT'"


def test_the_all_done_page_shows_the_count(client, alice):
    study = make_study(comparisons=1, annotators=(alice,))
    client.force_login(alice)
    assignment = _start(client, study)
    response = client.post(reverse("annotation:judge", args=[assignment.pk]), {"choice": "tie"})
    assert response["Location"] == reverse("annotation:done", args=[study.pk])
    html = client.get(response["Location"]).content.decode()
    assert "All done" in html
    assert "<strong>1</strong> comparison in this study" in html


def test_researchers_preview_without_creating_anything(client, researcher, alice):
    study = make_study(comparisons=2, annotators=(alice,))
    client.force_login(researcher)
    response = client.get(reverse("annotation:preview", args=[study.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Preview as annotator" in html
    assert "Response 1" in html
    _assert_blind(html, study)
    assert not Assignment.objects.exists()
    assert not Judgment.objects.exists()
    client.force_login(alice)
    assert client.get(reverse("annotation:preview", args=[study.pk])).status_code == 302  # staff only


def test_the_admin_shows_the_per_annotator_table(client, researcher, alice):
    study = make_study(comparisons=2, annotators=(alice,))
    client.force_login(alice)
    assignment = _start(client, study)
    client.post(reverse("annotation:judge", args=[assignment.pk]), {"choice": "1"})
    make_study(comparisons=1, annotators=(alice,))
    client.force_login(researcher)
    listing = client.get(reverse("admin:annotation_studyannotatorquality_changelist"))
    assert listing.status_code == 200
    assert "2 annotator quality reports" in listing.content.decode()
    response = client.get(reverse("admin:annotation_studyannotatorquality_change", args=[study.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    assert "alice" in html
    assert "100%" in html
    assert "<th>tie share</th>" in html
    assert "<td>0%</td>" in html  # alice's tie share beside her Response 1 share


def test_staff_without_study_access_cannot_judge(client, researcher):
    study = make_study(comparisons=1, annotators=(factories.UserFactory(),))
    client.force_login(researcher)
    assert client.post(reverse("annotation:next", args=[study.pk])).status_code == 404
