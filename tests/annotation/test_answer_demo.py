"""The demo's open answer study, and the researcher's admin for answer studies."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.urls import reverse

from annotation.answers import answer_assignment_next, answer_set_submit
from annotation.models import Candidate, HumanTranscript, Study, StudyKind, StudyStatus, Task
from tests import factories
from training.models import Backend, System

pytestmark = pytest.mark.django_db


def test_demo_setup_opens_an_answer_study_and_later_adds_smollm2s_candidates(alice):
    call_command("demo_setup", verbosity=0)
    study = Study.objects.get(slug="demo-answers")
    assert (study.kind, study.status, study.overlap) == (StudyKind.ANSWER, StudyStatus.OPEN, 1)
    regular = study.answer_items.filter(is_gold=False).count()
    assert regular == Candidate.objects.exclude(questions=[]).filter(blinding_flags=[]).count()
    assert study.answer_items.filter(is_gold=True).exists()
    assert study.annotators.filter(username="alice").exists()
    # SmolLM2's candidates arrive later (the demo worker); the refresh command takes them in.
    smol = System.objects.create(name="smollm2-135m", backend=Backend.TRANSFORMERS)
    for task in Task.objects.filter(split="test")[:3]:
        factories.CandidateFactory(task=task, system=smol, questions=["Who will read it?"])
    call_command("demo_answer_study", verbosity=0)
    assert study.answer_items.filter(is_gold=False).count() == regular + 3
    call_command("demo_setup", verbosity=0)  # idempotent
    assert study.answer_items.filter(is_gold=False).count() == regular + 3


def test_answer_admin_pages_render_and_transcripts_are_read_only(client, researcher):
    call_command("demo_setup", verbosity=0)
    alice = factories.UserFactory(username="alice")
    study = Study.objects.get(slug="demo-answers")
    assignment = answer_assignment_next(study=study, annotator=alice)
    answer_set_submit(
        assignment_id=assignment.pk,
        annotator=alice,
        answers=[{"doesnt_say": True} for _ in assignment.item.questions],
    )
    client.force_login(researcher)
    for model in ("answeritem", "answerassignment", "humantranscript"):
        assert client.get(reverse(f"admin:annotation_{model}_changelist")).status_code == 200
    transcript = HumanTranscript.objects.get()
    page = client.get(reverse("admin:annotation_humantranscript_change", args=[transcript.pk]))
    assert page.status_code == 200
    assert b'name="answers"' not in page.content  # shown, not editable
    listing = client.get(reverse("admin:annotation_study_changelist")).content.decode()
    assert "have each system write outlines from the human answers" in listing


def test_a_new_answer_study_in_admin_defaults_to_overlap_one(client, researcher):
    client.force_login(researcher)
    form = {
        "slug": "play",
        "title": "Play the user",
        "kind": StudyKind.ANSWER,
        "overlap": 3,  # the form's initial value, unchanged by the researcher
        "status": "draft",
        "lease_minutes": 30,
        "gold_rate": 0.1,
        "gold_min_accuracy": 0.7,
        "criteria": "[]",
        "rationale_min_length": 0,
        "task_split": "",
        "drift_check_share": 0.05,  # the adaptive-allocation field's initial value, as the browser posts it
        "pairs-TOTAL_FORMS": 0,  # the (read-only) pair-state inline's management form
        "pairs-INITIAL_FORMS": 0,
    }
    response = client.post(reverse("admin:annotation_study_add"), form)
    assert response.status_code == 302, [str(e) for e in response.context["errors"]]
    assert Study.objects.get(slug="play").overlap == 1
    form.update(slug="play-two", overlap=2)
    client.post(reverse("admin:annotation_study_add"), {**form, "initial-overlap": 3})
    assert Study.objects.get(slug="play-two").overlap == 2  # chosen on purpose: kept


def test_the_annotator_quality_page_counts_answer_sets_gold_and_flags(client, researcher):
    from annotation.answers import answer_assignment_flag
    from tests.annotation.answer_support import answers_for, make_answer_study

    alice = factories.UserFactory(username="alice")
    study = make_answer_study(tasks=2, systems=1, annotators=(alice,), gold_rate=0.5)
    first = answer_assignment_next(study=study, annotator=alice)
    answer_assignment_flag(assignment_id=first.pk, annotator=alice, reason="unreadable question")
    while (assignment := answer_assignment_next(study=study, annotator=alice)) is not None:
        answer_set_submit(
            assignment_id=assignment.pk, annotator=alice, answers=answers_for(len(assignment.item.questions))
        )
    client.force_login(researcher)
    page = client.get(reverse("admin:annotation_studyannotatorquality_change", args=[study.pk])).content.decode()
    row = page.split("<td>alice</td>")[1].split("</tr>")[0]
    cells = [c.split("</td>")[0].strip() for c in row.split("<td>")[1:]]
    done = HumanTranscript.objects.filter(annotator=alice)
    assert cells[0] == str(done.count())
    gold = done.filter(item__is_gold=True).count()
    assert cells[3] == str(gold)
    if gold:
        assert cells[4].startswith("0%")  # alice never said "the card doesn't say"
    assert cells[6] == "—"  # no screen sides in an answer study
    assert "unreadable question" in page
