"""A person plays the user with the keyboard alone, in headless Debian Chromium driven by Playwright."""

from __future__ import annotations

import pytest

from annotation.models import HumanTranscript
from tests import factories
from tests.annotation.answer_support import SYSTEM_NAMES, make_answer_study
from tests.browser import skip_without_chromium

skip_without_chromium()

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

HOSTILE = '<img src=x onerror="window.__pwned = true"><script>window.__pwned = true</script>When is it due?'


def _log_in(page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", factories.PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/")


def _focused(page) -> str:
    return page.evaluate("document.activeElement.id || document.activeElement.textContent.trim()")


def test_a_keyboard_only_annotator_answers_whole_sets_including_doesnt_say(browser, live_server, output_dir):
    alice = factories.UserFactory(username="alice")
    make_answer_study(
        tasks=2,
        systems=1,
        annotators=(alice,),
        title="Play the user",
        questions=["What is the budget?", "Who is the audience?", HOSTILE],
    )
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    _log_in(page, live_server, "alice")
    for _ in range(5):
        page.keyboard.press("Tab")
        # The button reads "Start" and names its study for screen readers ("Start Play the user").
        if _focused(page).startswith("Start"):
            break
    page.keyboard.press("Enter")
    page.wait_for_selector("#answer-form")
    page.screenshot(path=str(output_dir / "answer-first-question.png"), full_page=True)

    for round_ in range(2):
        source = page.content()
        for name in SYSTEM_NAMES:
            assert name not in source
        assert page.locator("#card-facts li").count() == 2
        # Question 1: typed, with a second line (Shift+Enter), sent with Enter.
        assert _focused(page) == "answer-0"
        assert page.locator("#question-0").is_visible()
        assert not page.locator("#question-1").is_visible()
        page.keyboard.type("It is $5,000.")
        page.keyboard.press("Shift+Enter")
        page.keyboard.type("Firm.")
        page.keyboard.press("Enter")
        # Question 2: "The card doesn't say", reached with Tab and pressed with Enter.
        assert _focused(page) == "answer-1"
        page.keyboard.press("Tab")
        assert _focused(page) == "The card doesn't say"
        page.keyboard.press("Enter")
        # Question 3: hostile model text is shown as text; an empty answer is refused on the page.
        assert _focused(page) == "answer-2"
        assert page.locator("#question-text-2").inner_text() == HOSTILE
        page.keyboard.press("Enter")
        assert "Write an answer" in page.locator("#hint-2").inner_text()
        assert _focused(page) == "answer-2"
        page.keyboard.type("Next Friday.")
        page.keyboard.press("Enter")
        # Review: go back to question 3 (Shift+Tab from Submit reaches its "Change" button) and change it.
        assert _focused(page) == "submit-button"
        assert "The card doesn't say" in page.locator("#review-list").inner_text()
        page.keyboard.press("Shift+Tab")
        assert _focused(page) == "Change answer 3"
        page.keyboard.press("Enter")
        assert _focused(page) == "answer-2"
        page.keyboard.press("Control+a")
        page.keyboard.type("Next Monday.")
        page.keyboard.press("Enter")
        if round_ == 0:
            page.screenshot(path=str(output_dir / "answer-review.png"), full_page=True)
        assert _focused(page) == "submit-button"
        previous = page.url
        page.keyboard.press("Enter")
        page.wait_for_url(lambda url, prev=previous: url != prev)

    page.wait_for_selector("#all-done")
    assert page.evaluate("window.__pwned === undefined")
    assert dialogs == []
    transcripts = list(HumanTranscript.objects.order_by("pk"))
    assert len(transcripts) == 2
    for transcript in transcripts:
        assert transcript.annotator == alice
        assert transcript.answers == [
            {"text": "It is $5,000.\nFirm.", "doesnt_say": False},
            {"text": "", "doesnt_say": True},
            {"text": "Next Monday.", "doesnt_say": False},
        ]
        assert transcript.active_seconds is not None
        assert len(transcript.question_seconds) == 3
