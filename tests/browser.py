"""Headless Debian Chromium driven by Playwright's sync API, shared by the browser tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking switches Chromium keeps dialling out, and this machine's closed
# network refuses each attempt.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def skip_without_chromium() -> None:
    """Call at module level: skip where Chromium is missing, unless CI demands it (PIG_REQUIRE_BROWSER=1)."""
    if not CHROMIUM.exists() and os.environ.get("PIG_REQUIRE_BROWSER") != "1":
        pytest.skip(
            f"{CHROMIUM} is missing (install Debian's chromium; CI sets PIG_REQUIRE_BROWSER=1)",
            allow_module_level=True,
        )


def log_in(page, live_server, username: str) -> None:
    """Log in through the login page, as a person does (every test user has factories.PASSWORD)."""
    from tests.factories import PASSWORD

    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/")


def tab_to(page, selector: str, limit: int = 40) -> None:
    """Press Tab until the focused element matches `selector` (keyboard only, like a person)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("(s) => document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"Tab never reached {selector}")
