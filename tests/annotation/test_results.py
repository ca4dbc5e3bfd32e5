"""The researcher's results page: staff only, every section present, escaped, cached, and downloads stream."""

from __future__ import annotations

import csv
import io
import os
import re
import time

import pytest
from celery.contrib.testing.worker import start_worker
from django.core.cache import cache
from django.urls import reverse

from annotation.models import AnnotatorFlag, Assignment, Judgment
from annotation.selectors_stats import annotator_pseudonym
from annotation.tasks import results_refresh
from pigplatform.celery import app
from tests import factories
from tests.contrast import contrast_ratio
from tests.factories_stats import study_with_judgments

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    # Background refreshes these tests enqueue must not reach another test's worker.
    app.control.purge()


@pytest.fixture
def study(alice, bob, charlie):
    return study_with_judgments(annotators=[alice, bob, charlie], tasks=6, slug="questions-study")


def test_annotators_cannot_see_results(client, alice, study):
    client.force_login(alice)
    assert client.get(reverse("results:study", args=[study.slug])).status_code == 403
    assert client.get(reverse("results:download", args=[study.slug, "csv"])).status_code == 403


def test_anonymous_visitors_are_sent_to_log_in(client, study):
    response = client.get(reverse("results:study", args=[study.slug]))
    assert response.status_code == 302
    assert reverse("login") in response["Location"]


def test_the_researcher_sees_every_section(client, researcher, study):
    client.force_login(researcher)
    response = client.get(reverse("results:study", args=[study.slug]))
    assert response.status_code == 200
    html = response.content.decode()
    headings = ("Progress", "Pairs", "Anytime-valid figures", "Bradley–Terry ratings", "Agreement", "Position bias")
    for heading in (*headings, "By domain"):
        assert f"<h2>{heading}</h2>" in html
    assert html.count("<svg") == 4  # bars, confidence sequences, evidence paths, forest plot: drawn on the server
    assert "valid if you fixed n in advance" in html
    sequential = response.context["report"]["sequential"]
    assert [r["family_size"] for r in sequential] == [3, 3, 3]  # the study's three pairs, Bonferroni
    assert "simultaneous over all 3 pairs" in html
    assert "gpt-4o vs o3-mini" in html
    assert "54 of 54 judgments" in html
    for fmt in ("csv", "jsonl", "parquet", "trl"):
        assert reverse("results:download", args=[study.slug, fmt]) in html
    assert "<script" not in html
    # The "items for ±5%" column says what it is.
    assert '<abbr title="How many more items' in html
    # Tie share per annotator beside the position habit.
    assert "<th>tie share</th>" in html
    everyone = re.search(r"<td><strong>everyone</strong></td>(.*?)</tr>", html).group(1)
    *_, judgments, ties, share = re.findall(r"<td>([^<]*)</td>", everyone)
    assert judgments == "54"
    assert share == f"{100 * int(ties) / 54:.1f}%"


def test_every_label_in_the_bars_reaches_aa_contrast_on_its_colour():
    from annotation.stats.svg import pair_bars

    pair = {"system_a": "a", "system_b": "b", "win_share": 0.4, "tie_share": 0.35, "loss_share": 0.25,
            "wilson_low": 0.4, "wilson_high": 0.7, "wins_a": 40, "wins_b": 25}  # fmt: skip
    svg = pair_bars([pair])
    rects = [
        (float(x), float(w), fill)
        for x, w, fill in re.findall(r'<rect x="([\d.]+)" y="[\d.]+" width="([\d.]+)" height="18" fill="([^"]+)"', svg)
    ]
    labels = re.findall(r'<text x="([\d.]+)" y="[\d.]+" font-size="11" text-anchor="middle" fill="([^"]+)">\d+%', svg)
    assert len(labels) == 3  # win, tie and loss are all wide enough to be labelled
    for x, fill in labels:
        (background,) = [bg for left, width, bg in rects if left <= float(x) <= left + width]
        assert contrast_ratio(fill, background) >= 4.5, (fill, background)
    # The legend's words sit on the white card.
    legend = re.findall(r'font-size="12" text-anchor="start" fill="([^"]+)">(?:win|tie|loss)<', svg)
    assert len(legend) == 3
    for fill in legend:
        assert contrast_ratio(fill, "#ffffff") >= 4.5, fill


def test_system_names_are_escaped_in_tables_and_plots(client, researcher, alice, bob):
    study = study_with_judgments(annotators=[alice, bob], systems=("evil<script>", "plain"), strengths=(0, 0), tasks=3)
    client.force_login(researcher)
    html = client.get(reverse("results:study", args=[study.slug])).content.decode()
    assert "<script>" not in html
    assert "evil&lt;script&gt;" in html


def _judge_once_more(study) -> None:
    dora = factories.UserFactory(username="dora")
    comparison = study.comparisons.first()
    assignment = Assignment.objects.create(
        comparison=comparison, annotator=dora, left="a", lease_expires_at=comparison.created_at
    )
    Judgment.objects.create(assignment=assignment, comparison=comparison, annotator=dora, choice="a", seconds=4)


def _n(response) -> int:
    return sum(r["n"] for r in response.context["report"]["pairs"])


def test_a_new_judgment_shows_the_last_figures_marked_stale_until_the_refresh_lands(client, researcher, study):
    client.force_login(researcher)
    url = reverse("results:study", args=[study.slug])
    before = _n(client.get(url))
    _judge_once_more(study)

    stale = client.get(url)
    assert _n(stale) == before
    assert stale.context["stale"] is True
    assert "newer judgments are being included" in stale.content.decode()

    results_refresh(study.pk, False)  # what the worker runs (the task body; a real worker test follows)
    fresh = client.get(url)
    assert fresh.context["stale"] is False
    assert _n(fresh) == before + 1


def test_recompute_now_gives_current_figures_at_once(client, researcher, study):
    client.force_login(researcher)
    url = reverse("results:study", args=[study.slug])
    before = _n(client.get(url))
    _judge_once_more(study)
    response = client.get(url + "?fresh=1")
    assert response.context["stale"] is False
    assert _n(response) == before + 1


@pytest.mark.skipif(
    not os.environ.get("CELERY_BROKER_URL", "").startswith(("redis", "amqp")),
    reason="needs a broker server (CI sets CELERY_BROKER_URL=redis://…)",
)
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_brings_stale_figures_up_to_date(client, researcher, alice, bob, charlie):
    study = study_with_judgments(annotators=[alice, bob, charlie], tasks=6, slug="refresh-study")
    client.force_login(researcher)
    url = reverse("results:study", args=[study.slug])
    before = _n(client.get(url))
    _judge_once_more(study)
    with start_worker(app, queues=["default"], pool="solo", perform_ping_check=False, loglevel="WARNING"):
        assert client.get(url).context["stale"] is True  # enqueues the refresh
        deadline = time.monotonic() + 60
        while (response := client.get(url)).context["stale"] and time.monotonic() < deadline:
            time.sleep(0.2)
    assert response.context["stale"] is False
    assert _n(response) == before + 1


def test_flagged_annotators_can_be_excluded_on_the_page(client, researcher, alice, study):
    AnnotatorFlag.objects.create(study=study, annotator=alice)
    client.force_login(researcher)
    url = reverse("results:study", args=[study.slug])
    everyone = client.get(url).context["report"]["pairs"]
    kept = client.get(url, {"exclude_flagged": "1"}).context["report"]["pairs"]
    assert sum(r["n"] for r in kept) == sum(r["n"] for r in everyone) - 18


def test_the_csv_download_streams_every_judgment_pseudonymously(client, researcher, alice, study):
    client.force_login(researcher)
    response = client.get(reverse("results:download", args=[study.slug, "csv"]))
    assert response.status_code == 200
    assert response.streaming
    assert 'filename="questions-study-judgments.csv"' in response["Content-Disposition"]
    body = b"".join(response.streaming_content).decode()
    rows = list(csv.DictReader(io.StringIO(body)))
    assert len(rows) == 54
    assert annotator_pseudonym(alice.pk) in {r["annotator"] for r in rows}
    assert "alice" not in body


def test_an_unknown_download_format_is_not_found(client, researcher, study):
    client.force_login(researcher)
    assert client.get(reverse("results:download", args=[study.slug, "xlsx"])).status_code == 404


def test_the_study_admin_links_to_results(client, researcher, study):
    client.force_login(researcher)
    html = client.get(reverse("admin:annotation_study_changelist")).content.decode()
    assert reverse("results:study", args=[study.slug]) in html


def test_cached_figures_come_back_fast(client, researcher, study):
    client.force_login(researcher)
    url = reverse("results:study", args=[study.slug])
    client.get(url)
    started = time.perf_counter()
    client.get(url)
    assert time.perf_counter() - started < 1.0
