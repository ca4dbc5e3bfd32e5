"""Model output full of HTML/JS/markdown tricks renders inert and legible on the judging page, checked in
headless Debian Chromium: no script runs, no dialog opens, no active element survives, the text is
visible, and a huge table does not push the page sideways."""

from __future__ import annotations

import pytest

from annotation.models import Candidate, StudyKind, Task
from tests import factories
from tests.annotation.judging_support import make_study
from tests.browser import skip_without_chromium

skip_without_chromium()

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PWN = "window.__pwned = true"
TRICKS = [
    f"<script>{PWN}; alert(1)</script>",
    f'<img src=x onerror="{PWN}">',
    f'<svg onload="{PWN}"><circle r=9></circle></svg>',
    f'<iframe src="javascript:{PWN}"></iframe>',
    "<style>body { display: none !important }</style>",
    '<meta http-equiv="refresh" content="0; url=https://example.invalid/">',
    '<form action="https://example.invalid/steal"><input name=pw><button>Log in again</button></form>',
    f"[click me](javascript:{PWN})",
    f"[mixed case](JaVaScRiPt:{PWN})",
    f"[entity](java&#115;cript:{PWN})",
    f"<javascript:{PWN}>",
    "[data link](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "![data image](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    f'![x](x" onerror="{PWN})',
    "Zero\u200bwidth\u200d text\u2060 and \u202eright-to-left override\u202c stay readable",
]
TABLE = "\n".join(
    ["| " + " | ".join(f"column {c}" for c in range(40)) + " |", "|" + "---|" * 40]
    + ["| " + " | ".join(f"cell {r}.{c}" for c in range(40)) + " |" for r in range(150)]
)
HOSTILE_OUTLINE = (
    "# Plan\n- **Budget** first\n\n" + "\n\n".join(TRICKS) + "\n\n" + TABLE + "\n\nThe end of the outline."
)


def open_judging_page(browser, live_server, study, username: str):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", factories.PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/")
    page.goto(f"{live_server.url}/study/{study.pk}/next/")
    page.wait_for_selector("#judge-form")
    page.wait_for_timeout(300)  # give any injected handler (onerror, onload, refresh) its chance
    return page, dialogs, requests


def assert_inert(page, dialogs: list[str], requests: list[str], live_server) -> None:
    assert page.evaluate("window.__pwned === undefined")
    assert dialogs == []
    assert page.url.startswith(live_server.url)  # no meta refresh
    assert [url for url in requests if not url.startswith(live_server.url)] == []
    area = ".task-text, .response"
    for tag in ("script", "img", "svg", "iframe", "style", "meta", "form", "input", "object", "embed"):
        assert page.locator(f":is({area}) {tag}").count() == 0, tag
    handlers = page.evaluate(
        """() => [...document.querySelectorAll('.task-text *, .response *')]
              .flatMap(el => [...el.attributes].map(a => a.name)).filter(n => n.startsWith('on'))"""
    )
    assert handlers == []
    hrefs = page.evaluate("() => [...document.querySelectorAll('.response a[href]')].map(a => a.href)")
    assert all(href.startswith(("http:", "https:", "mailto:")) for href in hrefs), hrefs


def test_hostile_outlines_render_inert_and_legible(browser, live_server, output_dir):
    alice = factories.UserFactory(username="alice")
    study = make_study(comparisons=1, annotators=(alice,), kind=StudyKind.OUTLINE)
    Candidate.objects.filter(task__comparisons__study=study).update(outline=HOSTILE_OUTLINE)
    Task.objects.filter(comparisons__study=study).update(full_task="Plan a trip. " + TRICKS[0] + " " + TRICKS[1])
    page, dialogs, requests = open_judging_page(browser, live_server, study, "alice")
    page.screenshot(path=str(output_dir / "hostile-outline.png"), full_page=True)

    assert_inert(page, dialogs, requests, live_server)
    outline = page.locator(".outline").first
    assert outline.is_visible()
    text = outline.inner_text()
    for visible in (
        "Plan",
        "Budget first",
        "<script>window.__pwned",
        "click me",
        "data link",
        "The end of the outline.",
    ):
        assert visible in text, visible
    assert "Zero\u200bwidth" in text
    assert "right-to-left override" in text
    assert page.locator(".task-text", has_text="<script>window.__pwned").is_visible()
    # The 40-column table scrolls inside its response; the page itself never scrolls sideways.
    assert page.locator(".outline").first.locator("table td", has_text="cell 149.39").count() == 1
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    first, second = page.locator(".response").all()
    assert first.bounding_box()["x"] + first.bounding_box()["width"] <= second.bounding_box()["x"] + 1
    assert page.locator("#judge-form button[type=submit], #judge-form input[type=submit]").first.is_visible()


def test_hostile_questions_show_as_plain_text(browser, live_server):
    bob = factories.UserFactory(username="bob")
    study = make_study(comparisons=1, annotators=(bob,), kind=StudyKind.QUESTIONS)
    Candidate.objects.filter(task__comparisons__study=study).update(questions=TRICKS[:8])
    page, dialogs, requests = open_judging_page(browser, live_server, study, "bob")

    assert_inert(page, dialogs, requests, live_server)
    assert page.locator(".response li", has_text="<script>window.__pwned").count() == 2
    assert page.locator(".response li", has_text="[click me](javascript:").count() == 2
    assert page.locator(".response a").count() == 0
