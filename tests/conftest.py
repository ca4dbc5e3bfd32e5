from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from tests import factories


@pytest.fixture
def alice(db):  # the annotator persona
    return factories.UserFactory(username="alice")


@pytest.fixture
def bob(db):
    return factories.UserFactory(username="bob")


@pytest.fixture
def charlie(db):
    return factories.UserFactory(username="charlie")


@pytest.fixture
def researcher(db):
    return factories.UserFactory(username="rita", is_staff=True, is_superuser=True)


@pytest.fixture
def output_dir(request) -> Path:
    """A folder kept after the run (screenshots, logs) under test-output/<test name>."""
    path = Path(settings.BASE_DIR) / "test-output" / request.node.name
    path.mkdir(parents=True, exist_ok=True)
    return path


def uses_postgres() -> bool:
    return settings.DATABASES["default"]["ENGINE"].endswith("postgresql")


def broker_url() -> str:
    return os.environ.get("CELERY_BROKER_URL", "filesystem://")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny Qwen2 chat model built in code (random weights, local BPE tokenizer). Built once per run."""
    from training.tinymodel import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-qwen2"))


@pytest.fixture
def browser(monkeypatch) -> Iterator[object]:
    """Headless Debian Chromium (tests/browser.py); modules using it call skip_without_chromium()."""
    # Playwright's sync API runs an event loop; monkeypatch restores the environment afterwards, so
    # later tests (e.g. `check --deploy` in a subprocess) never inherit this switch.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "1")
    from playwright.sync_api import sync_playwright

    from tests.browser import CHROMIUM, CHROMIUM_ARGS

    assert CHROMIUM.exists(), f"{CHROMIUM} is required (PIG_REQUIRE_BROWSER=1)"
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()
