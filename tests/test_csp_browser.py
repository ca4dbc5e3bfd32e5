"""Under the Content-Security-Policy every page still works and the browser reports no violation: the
judging, results and training-run pages (with their scripts running) and the admin pages, in Chromium."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.utils import timezone

from annotation.models import Candidate, StudyKind
from tests import factories
from tests.annotation.judging_support import make_study
from tests.browser import log_in, skip_without_chromium, tab_to
from tests.factories_stats import study_with_judgments
from tests.training.training_helpers import FAST, make_train_tasks
from training.models import GenerationJob, JobStatus, System, TrainingMetric, TrainingRun
from training.runs import training_run_create

skip_without_chromium()

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Every violation is reported to the page as an event, before anything else runs.
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__violations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
});
"""


def _page(browser, live_server, username: str):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script(RECORD_VIOLATIONS)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda msg: msg.type in ("error", "warning") and console.append(msg.text))
    page.on("pageerror", lambda error: console.append(str(error)))
    log_in(page, live_server, username)
    return page, console


def _visit(page, console: list[str], url: str, wait_ms: int = 300) -> None:
    response = page.goto(url)
    assert response.status == 200, url
    policy = response.headers["content-security-policy"]
    assert "'unsafe-inline'" not in policy
    assert "'unsafe-eval'" not in policy
    page.wait_for_timeout(wait_ms)
    assert page.evaluate("window.__violations") == [], url
    assert [line for line in console if "Content Security Policy" in line] == [], url


@pytest.fixture
def training_run(tmp_path: Path, settings) -> TrainingRun:
    settings.PIG = {**settings.PIG, "RUNS_DIR": tmp_path / "runs"}
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    make_train_tasks(2)
    run = training_run_create(
        name="rita-run", base_model_path=str(tmp_path / "model"), task_split="train", hyperparameters=FAST
    )
    for step, values in enumerate(
        [{"reward": 0.1, "rewards/elicitation_reward/mean": 0.1, "rewards/coverage/mean": 0.2, "loss": 0.5},
         {"reward": 0.3, "rewards/elicitation_reward/mean": 0.3, "rewards/coverage/mean": 0.4, "loss": 0.4}],
        start=1,
    ):  # fmt: skip
        TrainingMetric.objects.create(run=run, step=step, values=values)
    # A live run (the page polls its progress), set directly: no worker runs in this test.
    TrainingRun.objects.filter(pk=run.pk).update(
        status="running", step=2, heartbeat_at=timezone.now(), started_at=timezone.now(),
        last_completions=[{"task": "Plan it", "completion": "<script>alert(1)</script>What?", "rewards": {"r": 0.5}}],
    )  # fmt: skip
    return TrainingRun.objects.get(pk=run.pk)


def test_the_judging_page_works_under_the_policy(browser, live_server):
    alice = factories.UserFactory(username="alice")
    study = make_study(comparisons=2, annotators=(alice,), kind=StudyKind.OUTLINE, criteria=["Coverage"])
    Candidate.objects.update(outline="# Plan\n\n- **Budget** first\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")
    page, console = _page(browser, live_server, "alice")
    _visit(page, console, f"{live_server.url}/")
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(246, 247, 249)"  # CSS loaded
    _visit(page, console, f"{live_server.url}/study/{study.pk}/next/")
    judging = page.url
    assert page.evaluate("document.querySelector('[data-row]').tabIndex") == 0  # the page's script ran
    tab_to(page, "fieldset[data-row]")
    page.keyboard.press("2")
    page.keyboard.press("3")
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: url != judging)
    page.wait_for_selector("#judge-form")  # the next comparison
    assert page.evaluate("window.__violations") == []
    assert [line for line in console if "Content Security Policy" in line] == []


def test_results_training_and_admin_pages_work_under_the_policy(browser, live_server, training_run):
    researcher = factories.UserFactory(username="rita", is_staff=True, is_superuser=True)
    annotators = [factories.UserFactory(username=name) for name in ("ann1", "ann2", "ann3")]
    study = study_with_judgments(annotators=annotators, tasks=6, slug="csp-study")
    system = System.objects.first()
    job = GenerationJob.objects.create(system=system, status=JobStatus.RUNNING, total=3, done=1, created_by=researcher)
    page, console = _page(browser, live_server, researcher.username)

    _visit(page, console, f"{live_server.url}/results/{study.slug}/")
    # Stacked bars, Bradley–Terry forest, and the anytime-valid intervals and evidence paths.
    assert page.locator("svg.chart").count() == 4
    # The training-run page, with its script polling the progress box (every 3 s) at least once.
    with page.expect_response(lambda r: f"/training/runs/{training_run.pk}/progress" in r.url, timeout=10000):
        _visit(page, console, f"{live_server.url}/admin/training/trainingrun/{training_run.pk}/change/")
    page.wait_for_timeout(300)
    # Reward, loss, and the share of groups without learning signal.
    assert page.locator(".pig-run-curve svg").count() == 3
    # The reward panel's three long legend names do not overlap one another (they did side by side).
    boxes = page.eval_on_selector_all(
        ".pig-run-curve svg:first-child [data-legend]",
        "els => els.filter(e => e.tagName === 'text').map(e => { const b = e.getBBox(); "
        "return [b.x, b.y, b.x + b.width, b.y + b.height]; })",
    )
    assert len(boxes) == 3
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)
    assert page.evaluate("window.__violations") == []
    with page.expect_response(lambda r: f"/generation/jobs/{job.pk}/progress.json" in r.url, timeout=10000):
        _visit(page, console, f"{live_server.url}/generation/jobs/{job.pk}/")
    for path in (
        "/admin/",
        "/admin/annotation/study/",
        f"/admin/annotation/study/{study.pk}/change/",
        f"/admin/annotation/studyannotatorquality/{study.pk}/change/",
        "/admin/annotation/task/",
        "/admin/annotation/task/import/",
        "/admin/training/trainingrun/add/",
        "/admin/training/system/",
        "/admin/auth/user/",
        f"/study/{study.pk}/preview/",
    ):
        _visit(page, console, f"{live_server.url}{path}")
    assert page.evaluate("window.__violations") == []
