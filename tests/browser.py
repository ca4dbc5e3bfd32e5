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
