"""A researcher tries the loop in headless Chromium: spinner with elapsed seconds, questions, answers, outline."""

from __future__ import annotations

import os
import time

import pytest
from celery.contrib.testing.worker import start_worker

from annotation.models import Candidate
from pigplatform.celery import app
from tests import factories
from tests.browser import skip_without_chromium
from training.models import Backend

from .chat_server import ChatServer, scripted_reply

skip_without_chromium()

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not os.environ.get("CELERY_BROKER_URL", "").startswith(("redis", "amqp")),
        reason="needs a broker server (CI sets CELERY_BROKER_URL=redis://…)",
    ),
]


def test_a_researcher_waits_with_a_spinner_answers_and_reads_the_outline(browser, live_server, output_dir):
    factories.UserFactory(username="rita", is_staff=True, is_superuser=True)

    def slow(body, n):
        time.sleep(2.5)  # long enough to see the seconds tick
        return scripted_reply(body, n)

    with ChatServer(slow) as server:
        factories.SystemFactory(name="chatty", backend=Backend.OPENAI, endpoint=server.url, model_path="m")
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{live_server.url}/accounts/login/")
        page.fill("#id_username", "rita")
        page.fill("#id_password", factories.PASSWORD)
        page.keyboard.press("Enter")
        page.wait_for_url(f"{live_server.url}/")
        page.goto(f"{live_server.url}/generation/try/")
        page.select_option("#id_system", label="chatty")
        page.fill("#id_masked_task", "Plan my grant proposal.")
        page.fill("#id_hidden_facts", "The budget is $5,000.\nThe deadline is March 3.")
        page.click("text=Ask me")
        page.wait_for_selector("#try-waiting .spinner")
        assert "Waiting for a generation worker" in page.inner_text("#try-worker")
        first = float(page.inner_text("#try-elapsed"))
        page.wait_for_timeout(600)
        assert float(page.inner_text("#try-elapsed")) > first  # the seconds tick while it waits
        page.screenshot(path=str(output_dir / "try-waiting.png"), full_page=True)
        with start_worker(app, queues=["generation"], pool="solo", perform_ping_check=False, loglevel="WARNING"):
            page.wait_for_selector("#answer-form", timeout=60_000)
            assert page.inner_text("#question-text-0") == "What is your budget?"
            page.keyboard.type("$5,000")
            page.keyboard.press("Enter")
            page.keyboard.type("March 3.")
            page.keyboard.press("Enter")
            page.keyboard.press("Tab")
            page.keyboard.press("Enter")  # "The card doesn't say"
            page.keyboard.press("Enter")  # submit from the review
            page.wait_for_selector("#try-waiting")
            page.wait_for_selector("#try-outline", timeout=60_000)
        assert "Budget: $5,000" in page.inner_text("#try-outline")
        page.screenshot(path=str(output_dir / "try-outline.png"), full_page=True)
        assert not Candidate.objects.exists()
        page.fill("#id_key", "tried-in-browser")
        page.click("text=Save as task + candidate")
        page.wait_for_url(lambda url: "/admin/annotation/candidate/" in url)
    candidate = Candidate.objects.get(task__key="tried-in-browser")
    assert candidate.answers == ["$5,000", "March 3.", "No preference / not specified."]
