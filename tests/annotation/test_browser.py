"""An annotator judges with the keyboard only, in headless Debian Chromium driven by Playwright."""

from __future__ import annotations

import pytest

from annotation.models import Candidate, Judgment, StudyKind
from tests import factories
from tests.annotation.judging_support import SYSTEM_NAMES, make_study
from tests.browser import skip_without_chromium, tab_to

skip_without_chromium()

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

HOSTILE_OUTLINE = (
    "# Plan\n- **Budget** first\n  - nested detail\n\n"
    "<script>window.__pwned = true; document.title = 'pwned'</script>\n\n"
    '<img src=x onerror="window.__pwned = true">\n\n[click me](javascript:window.__pwned=true)\n'
)


def _log_in(page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", factories.PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/")


def _progress(page) -> int:
    return int(page.get_attribute("#progress-bar", "value"))


def test_an_annotator_judges_five_outlines_with_the_keyboard_alone(browser, live_server, output_dir):
    alice = factories.UserFactory(username="alice")
    study = make_study(
        comparisons=6,
        annotators=(alice,),
        kind=StudyKind.OUTLINE,
        criteria=["Coverage"],
        quota_per_annotator=5,
        rationale_min_length=5,
        title="Which outline serves the request better?",
        instructions="Pick the outline that serves the **full request** better.",
    )
    Candidate.objects.filter(task__comparisons__study=study).update(outline=HOSTILE_OUTLINE)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    _log_in(page, live_server, "alice")

    # Keyboard only: Tab to the Start button (after the header's Log out) and press Enter. The button
    # names its study for screen readers.
    start = page.get_by_role("button", name="Start Which outline serves the request better?")
    assert start.count() == 1
    tab_to(page, "button.primary")
    assert page.evaluate("document.activeElement.textContent.trim()").startswith("Start")
    page.keyboard.press("Enter")
    page.wait_for_selector("#judge-form")
    page.screenshot(path=str(output_dir / "judging-wide.png"), full_page=True)

    seen = []
    for n in range(5):
        assert _progress(page) == n
        source = page.content()
        for name in SYSTEM_NAMES:
            assert name not in source
        assert page.locator(".outline h1", has_text="Plan").count() == 2  # markdown rendered
        assert page.locator(".outline", has_text="<script>window.__pwned").count() == 2  # shown as text
        assert page.locator(".outline a[href^='javascript']").count() == 0
        assert page.evaluate("window.__pwned === undefined")
        seen.append(page.url)
        assert page.evaluate("document.activeElement === document.body")  # nothing focused on load
        tab_to(page, "fieldset[data-row]")  # the overall row
        page.keyboard.press("1")  # overall: Response 1; focus moves on to the next unanswered row
        assert page.evaluate("document.activeElement.dataset.name") == "Coverage"
        page.keyboard.press("3")  # Coverage: tie
        assert page.inner_text("#choice-status") == "Coverage: Tie."
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "rationale"
        page.keyboard.type("Clearer structure.")
        page.keyboard.press("Enter")
        page.wait_for_url(lambda url, prev=page.url: url != prev)
    page.wait_for_selector("#all-done")
    assert "<strong>5</strong> comparisons" in page.content()
    assert len(set(seen)) == 5
    assert dialogs == []
    judgments = list(Judgment.objects.filter(annotator=alice).select_related("assignment"))
    assert len(judgments) == 5
    for judgment in judgments:
        assert judgment.choice == judgment.assignment.left  # "Response 1" maps to the candidate shown left
        assert judgment.criteria == {"Coverage": "tie"}
        assert judgment.rationale == "Clearer structure."
        assert judgment.active_seconds is not None


def test_the_judging_page_fits_a_narrow_phone(browser, live_server, output_dir):
    bob = factories.UserFactory(username="bob")
    study = make_study(comparisons=1, annotators=(bob,), show_hidden_context=True, criteria=["Relevance"])
    page = browser.new_page(viewport={"width": 360, "height": 740})
    _log_in(page, live_server, "bob")
    page.goto(f"{live_server.url}/study/{study.pk}/next/")
    page.wait_for_selector("#judge-form")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360  # no sideways scrolling
    first, second = page.locator(".response").all()
    assert first.bounding_box()["y"] < second.bounding_box()["y"]  # stacked, not side by side
    page.click("summary:has-text('What the user actually knew')")
    assert page.is_visible("text=The budget is $5,000.")
    page.screenshot(path=str(output_dir / "judging-360.png"), full_page=True)
    tab_to(page, "fieldset[data-row]")
    page.keyboard.press("Enter")  # nothing chosen yet: the page asks instead of submitting
    assert "Choose 1, 2 or 3 first." in page.inner_text("#hint-choice")
    assert not Judgment.objects.exists()
