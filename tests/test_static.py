"""Page code lives in static files under a Content-Security-Policy: no inline script or style anywhere in
templates/, hashed names in production (collectstatic + WhiteNoise), the policy on every page, and the
focus ring's contrast computed from the colours."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.test import Client, override_settings
from django.urls import reverse

from tests.contrast import contrast_ratio

TEMPLATES = sorted((Path(settings.BASE_DIR) / "templates").rglob("*.html"))
STATIC_TAG = re.compile(r"{%\s*static\s+'([^']+)'\s*%}")


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: str(p.relative_to(settings.BASE_DIR)))
def test_no_template_carries_inline_script_or_style(path: Path):
    html = path.read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline <script>: move it to static/"
    assert "<style" not in html, "inline <style>: move it to static/"
    assert not re.search(r"\sstyle=", html), "style attribute: use a class in static/"
    assert not re.search(r"\son[a-z]+=", html), "inline event handler: use addEventListener in static/"
    for name in STATIC_TAG.findall(html):
        assert finders.find(name), f"{name} is not in any static folder"


def test_the_pages_own_python_renders_no_inline_style():
    # HTML built in Python (SVG plots, the 503 page) is held to the same rule.
    sources = ["annotation/stats/svg.py", "training/views_runs.py", "pigplatform/middleware.py"]
    for source in sources:
        text = (Path(settings.BASE_DIR) / source).read_text()
        assert not re.search(r"\sstyle=|<style|<script", text), source


@pytest.mark.django_db
def test_every_page_sends_a_policy_without_inline_code_or_eval(client, researcher):
    client.force_login(researcher)
    for url in ("/", reverse("login"), reverse("admin:index"), reverse("admin:annotation_study_changelist")):
        response = client.get(url)
        policy = response["Content-Security-Policy"]
        assert "script-src 'self'" in policy, url
        assert "style-src 'self'" in policy, url
        assert "unsafe-inline" not in policy, url
        assert "unsafe-eval" not in policy, url
        assert "frame-ancestors 'none'" in policy, url


@pytest.fixture(scope="module")
def collected(tmp_path_factory) -> Path:
    """`collectstatic` as production runs it (manifest storage: content-hashed names)."""
    var = tmp_path_factory.mktemp("var")
    env = {**os.environ, "PIG_STATIC_MANIFEST": "1", "PIG_VAR_DIR": str(var)}
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=settings.BASE_DIR,
        env=env,
        check=True,
        timeout=300,
    )
    return var / "static"


@pytest.mark.django_db
def test_production_serves_page_code_under_hashed_names_cached_for_a_year(collected: Path, alice):
    manifest = json.loads((collected / "staticfiles.json").read_text())["paths"]
    hashed = manifest["annotation/judge.js"]
    assert re.fullmatch(r"annotation/judge\.[0-9a-f]{12}\.js", hashed)
    storages = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }
    with override_settings(STATIC_ROOT=collected, STORAGES=storages):
        client = Client()  # a new handler: WhiteNoise indexes STATIC_ROOT when its middleware starts
        client.force_login(alice)
        html = client.get(reverse("annotation:home")).content.decode()
        assert f'href="/static/{manifest["pig/base.css"]}"' in html
        served = client.get(f"/static/{hashed}")
        assert served.status_code == 200
        assert "immutable" in served["Cache-Control"]
        assert b"decision" in b"".join(served.streaming_content)


def test_the_contrast_ratio_matches_wcag_reference_values():
    assert round(contrast_ratio("#000", "#fff"), 1) == 21.0
    assert contrast_ratio("#777777", "#ffffff") < 4.5 < contrast_ratio("#767676", "#ffffff")  # the AA edge


def test_the_focus_ring_reaches_three_to_one_against_every_background():
    css = (Path(settings.BASE_DIR) / "static/pig/base.css").read_text()
    colours = dict(re.findall(r"--([a-z]+):\s*(#[0-9a-fA-F]{3,6})", css))
    for background in ("bg", "card"):
        assert contrast_ratio(colours["focus"], colours[background]) >= 3, background
    judge_css = (Path(settings.BASE_DIR) / "static/annotation/judge.css").read_text()
    assert contrast_ratio(colours["focus"], "#f7f9fd") >= 3  # a focused row's tint
    # Every focus outline on our pages uses that colour.
    for sheet in (css, judge_css):
        for rule in re.findall(r":focus-visible[^{]*{([^}]*)}", sheet):
            assert "var(--focus)" in rule, rule
