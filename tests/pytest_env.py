"""Loaded with `-p tests.pytest_env` (pyproject addopts) so it runs before pytest-django reads settings."""

from __future__ import annotations

import os

os.environ.setdefault("PIG_TESTING", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# Tests (and the browser tests' live server) speak plain HTTP on loopback.
os.environ.setdefault("SECURE_SSL_REDIRECT", "0")
os.environ.setdefault("SESSION_COOKIE_SECURE", "0")
os.environ.setdefault("CSRF_COOKIE_SECURE", "0")
# Tests serve static files by their source names (no collectstatic run); tests/test_static.py checks the
# production set-up (hashed names from collectstatic) on its own.
os.environ.setdefault("PIG_STATIC_MANIFEST", "0")
# Generation retries in tests: Celery backoff from 1 s (its smallest factor), full jitter, so 0–1 s first.
os.environ.setdefault("PIG_GENERATION_RETRY_BASE_S", "1")
