"""The answer pages: permissions, status codes, the intent card, refusals, and what is never shown."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotation.answers import answer_assignment_next, answer_set_submit
from annotation.models import AnswerAssignment, AssignmentState, HumanTranscript
from tests.annotation.answer_support import FACTS, SYSTEM_NAMES, answers_for, make_answer_study

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _lexical_matcher(settings):
    settings.PIG_FIDELITY_MATCHER = "lexical"  # the embedding model is exercised in tests/training


def _start(client, user, study):
    client.force_login(user)
    response = client.post(reverse("annotation:next", args=[study.pk]))
    assert response.status_code == 302
    return response["Location"]


def test_start_leases_an_item_and_the_page_shows_the_intent_card_without_system_names(client, alice):
    study = make_answer_study(tasks=2, annotators=(alice,), show_masked_task=True)
    url = _start(client, alice, study)
    assignment = AnswerAssignment.objects.get(annotator=alice)
    assert url == reverse("annotation:answer", args=[assignment.pk])
    page = client.get(url).content.decode()
    assert "What you know" in page
    for fact in FACTS:
        assert fact in page
    assert "What the assistant was told" in page  # the study shows the masked request
    assert "What is the budget?" in page
    assert "The card doesn&#x27;t say" in page or "The card doesn't say" in page
    for name in SYSTEM_NAMES:
        assert name not in page
    assert "<script>" not in page.split("</main>")[0]  # behaviour comes from a static file only
    assert "annotation/answer.js" in page


def test_hostile_question_text_is_escaped(client, alice):
    study = make_answer_study(
        tasks=1, systems=1, annotators=(alice,), questions=["<script>alert(1)</script><img src=x onerror=alert(2)>?"]
    )
    page = client.get(_start(client, alice, study)).content.decode()
    assert "<script>alert(1)" not in page
    assert "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_posting_an_empty_answer_is_a_400_that_keeps_what_was_typed(client, alice):
    study = make_answer_study(tasks=1, systems=1, annotators=(alice,))
    url = _start(client, alice, study)
    response = client.post(url, {"answer-0": "It is $5,000.", "answer-1": "", "doesnt-say-2": "1"})
    assert response.status_code == 400
    page = response.content.decode()
    assert "Question 2: write an answer" in page
    assert "It is $5,000." in page
    assert not HumanTranscript.objects.exists()


def test_posting_a_full_set_stores_it_and_moves_on(client, alice):
    study = make_answer_study(tasks=1, systems=1, annotators=(alice,))
    url = _start(client, alice, study)
    response = client.post(
        url,
        {"answer-0": "$5,000", "answer-1": "First-year students", "doesnt-say-2": "1", "question_seconds": "[1,2,3]"},
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("annotation:done", args=[study.pk])
    transcript = HumanTranscript.objects.get()
    assert transcript.answers[2] == {"text": "", "doesnt_say": True}
    assert transcript.question_seconds == [1.0, 2.0, 3.0]
    done = client.get(response["Location"]).content.decode()
    assert "You answered <strong>1</strong> set" in done
    # A replay of the same POST is harmless.
    assert client.post(url, {"answer-0": "x", "answer-1": "y", "answer-2": "z"}).status_code == 302
    assert HumanTranscript.objects.count() == 1


def test_a_transcript_never_leaks_into_another_annotators_page(client, alice, bob):
    study = make_answer_study(tasks=1, systems=1, annotators=(alice, bob), overlap=2)
    first = answer_assignment_next(study=study, annotator=alice)
    answer_set_submit(assignment_id=first.pk, annotator=alice, answers=answers_for(3, "Alice-only secret phrase 7731"))
    page = client.get(_start(client, bob, study)).content.decode()
    assert AnswerAssignment.objects.get(annotator=bob).item_id == first.item_id  # the same questions
    assert "Alice-only secret phrase 7731" not in page
    assert "alice" not in page.lower().replace("alice-only", "")


def test_other_peoples_items_are_404_and_skip_and_flag_work(client, alice, bob):
    study = make_answer_study(tasks=2, systems=1, annotators=(alice, bob))
    url = _start(client, alice, study)
    assignment = AnswerAssignment.objects.get(annotator=alice)
    client.force_login(bob)
    assert client.get(url).status_code == 404
    assert client.post(reverse("annotation:answer-skip", args=[assignment.pk]), {"reason": "x"}).status_code == 404
    client.force_login(alice)
    flagged = client.post(reverse("annotation:answer-flag", args=[assignment.pk]), {"reason": "offensive"})
    assert flagged.status_code == 302
    skipped = client.post(
        reverse("annotation:answer-skip", args=[assignment.pk]), {"reason": "I cannot play this user"}
    )
    assert skipped.status_code == 302
    assignment.refresh_from_db()
    assert (assignment.state, assignment.flag_reason) == (AssignmentState.SKIPPED, "offensive")


def test_results_page_is_for_staff_and_shows_the_fidelity_table_and_plot(client, alice, researcher):
    study = make_answer_study(tasks=3, annotators=(alice,))
    while (assignment := answer_assignment_next(study=study, annotator=alice)) is not None:
        answer_set_submit(
            assignment_id=assignment.pk,
            annotator=alice,
            answers=[{"text": "The budget is $5,000."}, {"doesnt_say": True}, {"doesnt_say": True}],
        )
    url = reverse("results:study", args=[study.slug])
    client.force_login(alice)
    assert client.get(url).status_code == 403
    client.force_login(researcher)
    page = client.get(url).content.decode()
    assert "Simulator fidelity" in page
    assert "<svg" in page
    assert "people&#x27;s answers" in page
    assert "Kendall τ" in page
    for name in SYSTEM_NAMES:
        assert name in page  # researchers see system names
    # The simulator answered "Who is the audience?" from the audience fact; alice said the card doesn't say.
    assert '<td class="text">false reveal</td><td class="text">task-' in page
    assert "Who is the audience?" in page


def test_preview_shows_an_item_and_stores_nothing(client, researcher):
    study = make_answer_study(tasks=1, systems=1)
    client.force_login(researcher)
    page = client.get(reverse("annotation:preview", args=[study.pk])).content.decode()
    assert "Preview as annotator" in page
    assert "What you know" in page
    assert not AnswerAssignment.objects.exists()


def test_the_json_api_leaves_answer_studies_to_the_browser(client, alice):
    study = make_answer_study(tasks=1, systems=1, annotators=(alice,))
    client.force_login(alice)
    assert client.get(reverse("annotation:api-studies")).json()["studies"] == []
    refused = client.post(reverse("annotation:api-next", args=[study.pk]), {}, "application/json")
    assert refused.status_code == 400
    assert "answered in the browser" in refused.json()["message"]
    assert not AnswerAssignment.objects.exists()


def test_blinding_audit_no_page_an_annotator_sees_names_a_system_or_a_candidate(client, alice):
    from annotation.answers import study_build_answer_items
    from annotation.models import Candidate, Study, StudyKind
    from tests import factories
    from training.models import Backend, System

    systems = {918273645: "zephyr-proactive-rl", 827364519: "quokka-base-instruct"}
    study = factories.StudyFactory(kind=StudyKind.ANSWER, overlap=1, gold_rate=0.5)
    study.annotators.add(alice)
    for pk, name in systems.items():
        study.systems.add(System.objects.create(pk=pk, name=name, backend=Backend.STATIC))
    for i in range(2):
        task = factories.TaskFactory()
        for k, pk in enumerate(systems):
            Candidate.objects.create(
                pk=736251849 + 10 * i + k, task=task, system_id=pk, questions=["What is the budget?"], outline="x"
            )
    study_build_answer_items(study=Study.objects.get(pk=study.pk))
    client.force_login(alice)
    seen = [client.get(reverse("annotation:home"))]
    while True:
        started = client.post(reverse("annotation:next", args=[study.pk]))
        seen.append(started)
        if "/done/" in started["Location"]:
            seen.append(client.get(started["Location"]))
            break
        seen.append(client.get(started["Location"]))
        n = len(AnswerAssignment.objects.filter(annotator=alice).latest("created_at").item.questions)
        seen.append(client.post(started["Location"], {}))  # refused: 400, the page again
        seen.append(client.post(started["Location"], {f"doesnt-say-{i}": "1" for i in range(n)}))
    text = "\n".join(" ".join(f"{k}: {v}" for k, v in r.items()) + r.content.decode() for r in seen)
    for pk, name in systems.items():
        assert name not in text
        assert str(pk) not in text
    for pk in Candidate.objects.values_list("pk", flat=True):
        assert str(pk) not in text
    # Every regular item was answered (gold is interleaved, never served once real work has run out).
    regular = study.answer_items.filter(is_gold=False).count()
    assert HumanTranscript.objects.filter(annotator=alice, item__is_gold=False).count() == regular
