from __future__ import annotations

import os
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
