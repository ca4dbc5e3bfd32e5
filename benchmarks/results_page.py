"""Results page load time for a study of 100,000 judgments (target: figures in < 1 s).

Fills the database named by DATABASE_URL once (study `bench-results-100k`, loaded with COPY by the export
benchmark's loader), then times GET /results/<slug>/ as a staff user: first with an empty cache (the full
statistics are computed: 1000 item-bootstrap rounds, BT intervals, agreement, domains), then cached, then
right after a new judgment (the last figures are served marked stale while a worker refreshes them).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/pig_stats PYTHONPATH=. python benchmarks/results_page.py
"""

from __future__ import annotations

import os
import statistics
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pigplatform.settings")
os.environ.setdefault("PIG_TESTING", "1")
os.environ.setdefault("SECURE_SSL_REDIRECT", "0")
os.environ.setdefault("ALLOWED_HOSTS", "testserver")

import django

django.setup()

import export_bench  # noqa: E402  (benchmarks/ is on sys.path when run as a script)
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.cache import cache  # noqa: E402
from django.test import Client  # noqa: E402

export_bench.N = 100_000
export_bench.SLUG = "bench-results-100k"


def main() -> None:
    study = export_bench.fill()
    staff, _ = get_user_model().objects.get_or_create(username="bench-staff", defaults={"is_staff": True})
    client = Client()
    client.force_login(staff)
    url = f"/results/{study.slug}/"
    cold = []
    for _ in range(3):
        cache.clear()
        started = time.perf_counter()
        response = client.get(url)
        cold.append(time.perf_counter() - started)
        assert response.status_code == 200, response.status_code
    warm = []
    for _ in range(10):
        started = time.perf_counter()
        client.get(url)
        warm.append(time.perf_counter() - started)
    # A new judgment arrives: the page serves the last figures at once (marked stale) and enqueues a refresh.
    from annotation.models import Assignment, Judgment

    judge, _ = get_user_model().objects.get_or_create(username=f"bench-late-{time.time_ns()}")
    comparison = study.comparisons.first()
    assignment = Assignment.objects.create(
        comparison=comparison, annotator=judge, left="a", lease_expires_at=comparison.created_at
    )
    Judgment.objects.create(assignment=assignment, comparison=comparison, annotator=judge, choice="a", seconds=1)
    stale = []
    for _ in range(5):
        started = time.perf_counter()
        response = client.get(url)
        stale.append(time.perf_counter() - started)
        assert b"newer judgments are being included" in response.content
    print(f"Results page, {export_bench.N:,} judgments ({study.comparisons.count():,} comparisons):")
    print(
        f"  uncached (figures computed)  median {statistics.median(cold):.2f} s  (runs: "
        + ", ".join(f"{t:.2f}" for t in cold)
        + ")"
    )
    print(f"  cached                       median {statistics.median(warm) * 1000:.0f} ms")
    print(
        f"  after a new judgment (stale figures served, refresh enqueued)  median "
        f"{statistics.median(stale) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
