"""What a researcher does in a real browser: Training runs → Add DPO run → pick a study → Save → Start."""

from __future__ import annotations

import pytest

from tests import factories
from tests.browser import skip_without_chromium
from tests.factories_preferences import marker_preference_study
from training.models import Algorithm, TrainingRun

skip_without_chromium()

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def _no_leftover_messages():
    yield
    from pigplatform.celery import app

    app.control.purge()  # nobody consumes the queued run here; later worker tests must not start it


@pytest.mark.usefixtures("_no_leftover_messages")
def test_rita_adds_a_dpo_run_for_a_study_and_starts_it(browser, live_server, researcher, alice, bob, tiny_model_dir):
    study = marker_preference_study(annotators=[alice, bob], tasks=10)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []  # script errors and Content-Security-Policy refusals
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" and "to load" not in m.text else None)
    failed: list[str] = []  # the browser's own favicon probe is the only 404 allowed
    page.on("response", lambda r: failed.append(r.url) if r.status >= 400 and "favicon" not in r.url else None)
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", researcher.username)
    page.fill("#id_password", factories.PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/admin/")
    page.goto(f"{live_server.url}/admin/training/trainingrun/")
    page.click("text=Add DPO run")
    assert page.input_value("#id_algorithm") == Algorithm.DPO
    assert '"aggregation": "majority"' in page.input_value("#id_preference_config")
    page.fill("#id_name", "rita-dpo")
    page.fill("#id_base_model_path", str(tiny_model_dir))
    page.fill("#id_preference_studies", str(study.pk))
    page.select_option("#id_device", "cpu")
    page.click("input[name=_continue]")
    page.click("button:has-text('Start')")
    page.wait_for_selector("text=start requested")
    run = TrainingRun.objects.get(name="rita-dpo")
    assert run.status == "queued", run.error
    assert list(run.preference_studies.all()) == [study]
    assert page.is_visible("text=Held-out preference accuracy")
    assert errors == []
    assert failed == []
