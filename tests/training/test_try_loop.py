"""'Try as the user': the system asks live, a researcher answers, the system writes its outline; nothing is
stored until "save as task + candidate"."""

from __future__ import annotations

import os
import time

import pytest
from celery.contrib.testing.worker import start_worker
from django.core.exceptions import ValidationError
from django.urls import reverse

from annotation.models import Candidate, Task
from pigplatform.celery import app
from tests.factories import SystemFactory, TaskFactory
from training.models import Backend
from training.try_loop import TryStage, try_progress, try_save, try_start, try_state, try_submit_answers

from .chat_server import ChatServer, scripted_reply

pytestmark = pytest.mark.django_db

FACTS = ["The budget is $5,000.", "The deadline is March 3."]


@pytest.fixture
def eager():
    """Run the generation tasks inline, as a worker would (the real-worker test is below)."""
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


def chat_system(url: str):
    return SystemFactory(name="chatty", backend=Backend.OPENAI, endpoint=url, model_path="m")


def test_the_loop_asks_takes_answers_and_stores_nothing_until_saved(eager, researcher):
    before = (Task.objects.count(), Candidate.objects.count())
    with ChatServer(scripted_reply) as server:
        state = try_start(
            user=researcher, system=chat_system(server.url), masked_task="Plan my grant proposal.", hidden_facts=FACTS
        )
        state = try_state(token=state["token"], user=researcher)
        assert state["stage"] == TryStage.ANSWERING
        assert state["questions"] == ["What is your budget?", "When is the deadline?", "Who is the audience?"]
        with pytest.raises(ValidationError, match="question 2: write an answer"):
            try_submit_answers(token=state["token"], user=researcher, answers=[{"text": "$5,000"}, {}, {}])
        try_submit_answers(
            token=state["token"],
            user=researcher,
            answers=[{"text": "$5,000"}, {"text": "March 3."}, {"doesnt_say": True}],
        )
        state = try_state(token=state["token"], user=researcher)
    assert state["stage"] == TryStage.DONE
    assert state["outline"].startswith("## Outline")
    assert try_progress(state)["waiting"] is False
    assert (Task.objects.count(), Candidate.objects.count()) == before  # nothing stored yet
    prompt = server.requests[-1]["messages"][-1]["content"]
    assert "A: $5,000" in prompt
    assert "A: No preference / not specified." in prompt

    with pytest.raises(ValidationError, match="give the new task a key"):
        try_save(token=state["token"], user=researcher)
    candidate = try_save(token=state["token"], user=researcher, key="tried-1", domain="grants")
    assert candidate.task.masked_task == "Plan my grant proposal."
    assert candidate.task.hidden_facts == FACTS
    assert candidate.answers == ["$5,000", "March 3.", "No preference / not specified."]
    assert candidate.revealed == [[0], [1], []]
    assert candidate.metadata["try_as_user"] is True
    assert candidate.metadata["answered_by"] == researcher.pk
    with pytest.raises(ValidationError, match="already exists"):
        try_save(token=state["token"], user=researcher, key="tried-1")
    assert Candidate.objects.count() == before[1] + 1


def test_an_existing_task_is_used_as_it_is_and_a_second_candidate_is_refused(eager, researcher):
    task = TaskFactory(hidden_facts=FACTS)
    with ChatServer(scripted_reply) as server:
        system = chat_system(server.url)
        for attempt in range(2):
            state = try_start(user=researcher, system=system, task=task)
            try_submit_answers(token=state["token"], user=researcher, answers=[{"doesnt_say": True}] * 3)
            if attempt == 0:
                assert try_save(token=state["token"], user=researcher).task == task
            else:
                with pytest.raises(ValidationError, match="already has a candidate"):
                    try_save(token=state["token"], user=researcher)
    assert Candidate.objects.filter(task=task).count() == 1


def test_a_backend_failure_ends_the_session_with_the_reason(eager, researcher):
    with ChatServer(lambda body, n: (400, "context too long")) as server:
        state = try_start(user=researcher, system=chat_system(server.url), masked_task="Plan it.")
    state = try_state(token=state["token"], user=researcher)
    assert state["stage"] == TryStage.FAILED
    assert "context too long" in state["error"]


def test_start_refuses_static_systems_and_empty_requests(researcher):
    with pytest.raises(ValidationError, match="static"):
        try_start(user=researcher, system=SystemFactory(backend=Backend.STATIC), masked_task="x")
    with pytest.raises(ValidationError, match="choose a task"):
        try_start(user=researcher, system=SystemFactory(backend=Backend.OPENAI), masked_task="  ")


def test_pages_are_staff_only_and_sessions_belong_to_their_researcher(client, eager, alice, researcher):
    client.force_login(alice)
    assert client.get(reverse("generation:try")).status_code == 302  # to the admin login
    with ChatServer(scripted_reply) as server:
        system = chat_system(server.url)
        client.force_login(researcher)
        page = client.get(reverse("generation:try"))
        assert page.status_code == 200
        response = client.post(
            reverse("generation:try"),
            {"system": system.pk, "masked_task": "Plan my grant proposal.", "hidden_facts": "\n".join(FACTS)},
        )
        assert response.status_code == 302
        url = response["Location"]
        page = client.get(url).content.decode()
        assert "What is your budget?" in page
        assert "annotation/answer.js" in page
        assert "<script>" not in page.split("</main>")[0]
        client.post(url, {"answer-0": "$5,000", "answer-1": "March 3.", "doesnt-say-2": "1"})
        page = client.get(url).content.decode()
        assert "Save as task + candidate" in page
        assert "Budget: $5,000" in page
        other = type(researcher).objects.create(username="ruth", is_staff=True)
        client.force_login(other)
        assert client.get(url).status_code == 404
        token = url.rstrip("/").rsplit("/", 1)[-1]
        assert client.get(reverse("generation:try-state", args=[token])).status_code == 404
        client.force_login(researcher)
        saved = client.post(reverse("generation:try-save", args=[token]), {"key": "tried-2", "split": "test"})
    assert saved.status_code == 302
    assert Candidate.objects.get(task__key="tried-2").system == system


@pytest.mark.skipif(
    not os.environ.get("CELERY_BROKER_URL", "").startswith(("redis", "amqp")),
    reason="needs a broker server (CI sets CELERY_BROKER_URL=redis://…)",
)
@pytest.mark.django_db(transaction=True)
def test_through_a_real_worker_the_page_reports_waiting_then_questions(client, researcher):
    def slow(body, n):
        time.sleep(0.6)  # long enough to watch the wait
        return scripted_reply(body, n)

    with ChatServer(slow) as server:
        system = chat_system(server.url)
        state = try_start(user=researcher, system=system, masked_task="Plan my grant proposal.", hidden_facts=FACTS)
        client.force_login(researcher)
        waiting = client.get(reverse("generation:try-state", args=[state["token"]])).json()
        assert waiting["waiting"] is True
        assert waiting["worker_started"] is False  # no worker yet: the page says so
        with start_worker(app, queues=["generation"], pool="solo", perform_ping_check=False, loglevel="WARNING"):
            deadline = time.monotonic() + 60
            while try_state(token=state["token"], user=researcher)["stage"] == TryStage.ASKING:
                assert time.monotonic() < deadline
                time.sleep(0.1)
            progress = client.get(reverse("generation:try-state", args=[state["token"]])).json()
            assert progress["stage"] == TryStage.ANSWERING
            assert progress["elapsed_s"] >= 0.6
            try_submit_answers(token=state["token"], user=researcher, answers=[{"doesnt_say": True}] * 3)
            while try_state(token=state["token"], user=researcher)["stage"] == TryStage.WRITING:
                assert time.monotonic() < deadline
                time.sleep(0.1)
    assert try_state(token=state["token"], user=researcher)["stage"] == TryStage.DONE
    assert not Candidate.objects.exists()
