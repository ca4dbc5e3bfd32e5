"""Blinding audit: crawl everything an annotator can see of a study and look for anything that identifies
a system — its name, its id, or a candidate's id.

Ids are made distinctive (nine-digit numbers no counter reaches in a test) so that a leak cannot hide
behind a coincidence, and a candidate that names its own system is left out of the study."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from annotation.models import Candidate, Comparison, StudyKind, StudyStatus, Task
from annotation.selectors import study_blinding_excluded_count
from annotation.services import candidate_blinding_flags, study_build_comparisons
from tests import factories
from training.models import Backend, System

pytestmark = pytest.mark.django_db

SYSTEMS = {918273645: "zephyr-proactive-rl", 827364519: "quokka-base-instruct"}
LEAKY_TEXT = "As zephyr-proactive-rl, I would first ask about the budget."


class Crawl:
    """An annotator's client that keeps every body and header it received."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.seen: list[tuple[str, str]] = []

    def _keep(self, response, label: str):
        headers = " ".join(f"{k}: {v}" for k, v in response.items())
        body = b"".join(response.streaming_content) if response.streaming else response.content
        self.seen.append((label, headers + "\n" + body.decode("utf-8", "replace")))
        return response

    def get(self, url: str, **kwargs):
        return self._keep(self.client.get(url, **kwargs), f"GET {url}")

    def post(self, url: str, data=None, content_type: str | None = None, **kwargs):
        if content_type:
            return self._keep(self.client.post(url, data, content_type, **kwargs), f"POST {url}")
        return self._keep(self.client.post(url, data or {}, **kwargs), f"POST {url}")

    def api(self, url: str, body: dict | None = None):
        return self.post(url, body or {}, "application/json")


def build(kind: str, alice) -> tuple:
    systems = [System.objects.create(pk=pk, name=name, backend=Backend.STATIC) for pk, name in SYSTEMS.items()]
    study = factories.StudyFactory(
        kind=kind,
        overlap=1,
        gold_rate=0.0,
        criteria=["Relevance"],
        show_hidden_context=True,
        title="Which response helps more?",
        instructions="Judge **only** the content.",
    )
    study.systems.add(*systems)
    study.annotators.add(alice)
    candidate_pk = 736_451_928
    for index in range(4):
        task = factories.TaskFactory(key=f"audit-task-{index}")
        for system in systems:
            questions = [f"What is the budget for trip {index}?", "Who is travelling?"]
            outline = f"# Plan {index}\n- Ask about the budget\n- Book trains"
            if index == 3 and system.pk == 918273645:
                questions, outline = [LEAKY_TEXT], LEAKY_TEXT
            Candidate.objects.create(
                pk=candidate_pk,
                task=task,
                system=system,
                questions=questions,
                answers=["A modest one."] * len(questions),
                outline=outline,
                metadata={"system": system.name, "seed": 7},
                blinding_flags=candidate_blinding_flags(questions=questions, answers=[], outline=outline),
            )
            candidate_pk += 111_111
    study_build_comparisons(study=study)
    return study, systems


def forbidden() -> list[str]:
    values = [*SYSTEMS.values(), *(str(pk) for pk in SYSTEMS), LEAKY_TEXT]
    values += [str(pk) for pk in Candidate.objects.values_list("pk", flat=True)]
    return values


@pytest.mark.parametrize("kind", [StudyKind.QUESTIONS, StudyKind.OUTLINE])
def test_nothing_an_annotator_sees_names_a_system_or_a_candidate(client, alice, kind):
    study, _ = build(kind, alice)
    # The self-identifying candidate was flagged at creation and its task left out of the study.
    assert study_blinding_excluded_count(study=study) == 1
    assert Comparison.objects.filter(study=study).count() == 3
    assert not Comparison.objects.filter(study=study, task__key="audit-task-3").exists()

    crawl = Crawl(client)
    crawl.get(reverse("login"))
    crawl.post(reverse("login"), {"username": "alice", "password": factories.PASSWORD})
    crawl.get(reverse("annotation:home"))
    crawl.get(reverse("annotation:api-csrf"))
    crawl.get(reverse("annotation:api-studies"))
    crawl.get(reverse("annotation:api-progress", args=[study.pk]))

    # First comparison through the pages: judged with a form POST.
    page = crawl.get(reverse("annotation:next", args=[study.pk]), follow=True)
    judge_url = page.redirect_chain[-1][0]
    assert "/a/" in judge_url
    crawl.post(judge_url, {"choice": "3"})  # invalid: the page comes back with errors
    crawl.post(judge_url, {"choice": "1", "criterion-0": "2", "rationale": "Clearer."}, follow=True)

    # Second through the API: next, detail, bad submit, flag, submit, repeat submit.
    body = crawl.api(reverse("annotation:api-next", args=[study.pk])).json()
    assignment = body["assignment"]["id"]
    crawl.get(reverse("annotation:api-assignment", args=[assignment]))
    crawl.api(reverse("annotation:api-submit", args=[assignment]), {"choice": "left"})
    crawl.api(reverse("annotation:api-flag", args=[assignment]), {"reason": "Seems fine, testing"})
    crawl.get(reverse("annotation:judge", args=[assignment]))  # the page after a flag
    crawl.api(reverse("annotation:api-submit", args=[assignment]), {"choice": "2", "criteria": {"Relevance": "tie"}})
    crawl.api(reverse("annotation:api-submit", args=[assignment]), {"choice": "2", "criteria": {"Relevance": "tie"}})

    # Third: leased, refused while the study is closed (page and API), then skipped through the page.
    page = crawl.post(reverse("annotation:next", args=[study.pk]), follow=True)
    third = page.redirect_chain[-1][0]
    third_id = int(third.rstrip("/").rsplit("/", 1)[1])
    study.status = StudyStatus.CLOSED
    study.save()
    refused = crawl.post(third, {"choice": "1", "rationale": "mine"})
    assert refused.status_code == 409
    assert crawl.api(reverse("annotation:api-submit", args=[third_id]), {"choice": "1"}).status_code == 409
    assert crawl.api(reverse("annotation:api-next", args=[study.pk])).status_code == 409
    crawl.get(reverse("annotation:next", args=[study.pk]), follow=True)
    study.status = StudyStatus.OPEN
    study.save()
    crawl.post(f"{third}skip/", {"reason": "I cannot judge this topic"}, follow=True)
    assert crawl.api(reverse("annotation:api-next", args=[study.pk])).json()["done"] is True
    crawl.get(reverse("annotation:done", args=[study.pk]))
    crawl.get(judge_url)  # an already-judged assignment redirects onwards

    # Error pages: a missing (or someone else's) assignment.
    crawl.get(reverse("annotation:judge", args=[987_654]))
    crawl.get(reverse("annotation:api-assignment", args=[987_654]))
    crawl.api(reverse("annotation:api-submit", args=[987_654]), {"choice": "1"})
    crawl.get(reverse("annotation:home"))

    assert len(crawl.seen) > 25
    leaks = [(label, value) for label, text in crawl.seen for value in forbidden() if value in text]
    assert leaks == []
    # The crawl saw real content, so an empty page cannot pass as blinded.
    everything = "\n".join(text for _, text in crawl.seen)
    assert "Response 1" in everything
    assert "budget" in everything
    assert ("Who is travelling?" in everything) == (kind == StudyKind.QUESTIONS)
    assert Task.objects.filter(key="audit-task-0").exists()
