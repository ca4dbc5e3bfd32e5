"""The judging page's keys in headless Chromium: scrolling keys scroll and never choose, 1/2/3 choose only
inside the decision area, the stored choice is the response picked on screen, and a submit survives a
503 or a dropped connection."""

from __future__ import annotations

import pytest

from annotation import services
from annotation.models import Assignment, Candidate, Judgment, StudyKind
from tests import factories
from tests.annotation.judging_support import candidate_on_side, make_study
from tests.browser import log_in, skip_without_chromium, tab_to

skip_without_chromium()

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LONG_OUTLINE = "# Plan\n\n" + "\n".join(f"- Step {n}: check the detail that matters here." for n in range(300))


def _leased(study, user, *, left: str) -> Assignment:
    assignment = services.assignment_next_for_annotator(study=study, annotator=user)
    Assignment.objects.filter(pk=assignment.pk).update(left=left)  # fix the sides the test expects
    assignment.refresh_from_db()
    return assignment


def _open(browser, live_server, user, assignment, height: int = 800):
    page = browser.new_page(viewport={"width": 1280, "height": height})
    posts: list[str] = []
    page.on("request", lambda request: request.method == "POST" and posts.append(request.url))
    log_in(page, live_server, user.username)
    posts.clear()
    page.goto(f"{live_server.url}/a/{assignment.pk}/")
    page.wait_for_selector("#judge-form")
    return page, posts


def _answered(page) -> list[str]:
    return page.eval_on_selector_all("#judge-form input[type=radio]:checked", "els => els.map(e => e.name)")


def _scroll_y(page) -> float:
    return page.evaluate("window.scrollY")


def test_scrolling_keys_scroll_a_long_outline_and_never_choose(browser, live_server):
    alice = factories.UserFactory(username="alice")
    study = make_study(comparisons=1, annotators=(alice,), kind=StudyKind.OUTLINE, criteria=["Coverage"])
    Candidate.objects.update(outline=LONG_OUTLINE)
    assignment = _leased(study, alice, left="a")
    page, posts = _open(browser, live_server, alice, assignment)
    assert page.evaluate("document.documentElement.scrollHeight") > 3 * 800
    assert page.evaluate("document.activeElement === document.body")  # nothing focused on load

    # The reported sequence: ↓ ↓ ↓ PageDown Space. Each key scrolls; nothing is chosen or sent.
    positions = [_scroll_y(page)]
    for key in ("ArrowDown", "ArrowDown", "ArrowDown", "PageDown", "Space"):
        page.keyboard.press(key)
        page.wait_for_function("(y) => window.scrollY > y", arg=positions[-1])
        positions.append(_scroll_y(page))
    assert positions == sorted(positions)
    assert len(set(positions)) == len(positions)
    # Digits before the decision area has focus do nothing either (never on load).
    for key in ("1", "2", "3", "Enter"):
        page.keyboard.press(key)
    assert _answered(page) == []
    assert page.inner_text("#choice-status") == ""

    # Inside the decision area the browser's keys still scroll and still choose nothing.
    tab_to(page, "fieldset[data-row]")
    page.evaluate("window.scrollTo(0, 0)")
    assert page.evaluate("document.activeElement.dataset.name") == "Overall"
    positions = [_scroll_y(page)]
    for key in ("ArrowDown", "PageDown", "Space"):
        page.keyboard.press(key)
        page.wait_for_function("(y) => window.scrollY > y", arg=positions[-1])
        positions.append(_scroll_y(page))
    for key in ("ArrowLeft", "ArrowRight", "ArrowUp"):
        page.keyboard.press(key)
    assert _answered(page) == []
    assert posts == []
    assert not Judgment.objects.exists()


@pytest.mark.parametrize("left", ["a", "b"])
def test_the_stored_choice_is_the_response_picked_on_screen(browser, live_server, left):
    alice = factories.UserFactory(username="alice")
    study = make_study(comparisons=1, annotators=(alice,), kind=StudyKind.QUESTIONS, criteria=["Relevance"])
    assignment = _leased(study, alice, left=left)
    page, posts = _open(browser, live_server, alice, assignment)
    second = candidate_on_side(assignment, "2")
    # What the screen calls Response 2 is the candidate that will be credited.
    assert page.inner_text("section.response:nth-of-type(2) ol") == second.questions[0]

    tab_to(page, "fieldset[data-row]")
    page.keyboard.press("2")  # overall: Response 2
    assert page.inner_text("#choice-status") == "Overall: Response 2."
    assert page.evaluate("document.activeElement.dataset.name") == "Relevance"
    page.keyboard.press("1")  # Relevance: Response 1
    page.keyboard.press("Enter")
    page.wait_for_selector("#all-done")

    judgment = Judgment.objects.get()
    assert judgment.choice == ("b" if left == "a" else "a")
    assert judgment.choice == ("a" if second == assignment.comparison.candidate_a else "b")
    assert judgment.criteria == {"Relevance": left}
    assert len(posts) == 1


def test_a_changed_choice_is_shown_and_announced_and_enter_waits_for_every_row(browser, live_server):
    alice = factories.UserFactory(username="alice")
    study = make_study(comparisons=1, annotators=(alice,), criteria=["Relevance", "Clarity"])
    assignment = _leased(study, alice, left="a")
    page, posts = _open(browser, live_server, alice, assignment)
    tab_to(page, "fieldset[data-row]")
    page.keyboard.press("1")
    page.keyboard.press("Shift+Tab")  # back to the overall row
    page.keyboard.press("3")
    assert page.inner_text("#choice-status") == "Overall: changed from Response 1 to Tie."
    assert page.get_attribute("#choice-status", "aria-live") == "polite"
    assert "changed" in page.get_attribute("input[name=choice][value=tie] + span", "class")
    assert page.is_checked("input[name=choice][value=tie]")

    # Relevance answered, Clarity not: Enter asks for the missing row instead of submitting.
    tab_to(page, "fieldset[data-name=Relevance]")
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.dataset.name") == "Clarity"
    assert "Choose 1, 2 or 3 first." in page.inner_text("#hint-criterion-1")
    # A click chooses too, and leaves focus on the row, where arrows scroll instead of changing it.
    page.click("fieldset[data-name=Clarity] label:has-text('Response 1')")
    assert page.evaluate("document.activeElement.dataset.name") == "Clarity"
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowDown")
    assert page.is_checked("input[name=criterion-1][value='1']")
    assert posts == []
    page.keyboard.press("Enter")
    page.wait_for_selector("#all-done")
    judgment = Judgment.objects.get()
    assert (judgment.choice, judgment.criteria) == ("tie", {"Relevance": "b", "Clarity": "a"})


def test_a_submit_survives_a_dropped_connection_and_a_503(browser, live_server):
    alice = factories.UserFactory(username="alice")
    study = make_study(comparisons=2, annotators=(alice,))
    assignment = _leased(study, alice, left="b")
    page, _ = _open(browser, live_server, alice, assignment)
    attempts: list[str] = []

    def flaky(route):
        if route.request.method != "POST":
            route.continue_()
            return
        attempts.append(route.request.method)
        if len(attempts) == 1:
            route.abort("connectionreset")  # the connection drops
        elif len(attempts) == 2:
            route.fulfill(status=503, body="busy", headers={"Retry-After": "1"})
        else:
            route.continue_()

    page.route(f"**/a/{assignment.pk}/", flaky)
    tab_to(page, "fieldset[data-row]")
    page.keyboard.press("1")
    page.keyboard.press("Enter")
    page.wait_for_function("document.getElementById('save-status').textContent.startsWith('saving…')")
    assert page.is_disabled("#submit-button")
    page.wait_for_url(lambda url: f"/a/{assignment.pk}/" not in url, timeout=20000)
    assert attempts == ["POST", "POST", "POST"]
    judgment = Judgment.objects.get()
    assert judgment.choice == "b"  # Response 1 with b on the left
    assert "already recorded" not in page.content()  # the failed tries never reached the server
