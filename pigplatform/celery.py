"""The Celery app. Queues by workload: `default` (short bookkeeping), `generation` (model inference),
`training` (one GPU job per worker process: run it with `-Q training -c 1`)."""

from __future__ import annotations

import os

from celery import Celery
from kombu import Queue

# Not a read: where to find the settings, which read the environment (time limits included, via CELERY_*).
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pigplatform.settings")

app = Celery("pigplatform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,  # opt in per task: nobody reads most results
    task_queues=(Queue("default"), Queue("generation"), Queue("training")),
    task_default_queue="default",
    task_routes={
        "generation.*": {"queue": "generation"},
        "training.*": {"queue": "training"},
    },
    # One message at a time per worker process: generation chunks and training runs are long, so
    # prefetching would hide work from idle workers.
    worker_prefetch_multiplier=1,
    task_reject_on_worker_lost=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    result_expires=3600,
)
app.autodiscover_tasks()


@app.task(name="default.ping", ignore_result=False)
def ping(value: str = "pong") -> str:
    """Round-trip check used by `manage.py celery_ping` and the tests."""
    return value
