"""A worker that serves the `training` queue says, when it starts, how many GPUs it sees, so the run form can
offer CPU-sized defaults on a machine without one. Counted in a child process: importing torch and touching
CUDA in the worker itself would slow its start and, for prefork pools, fork after CUDA was initialised."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import threading
from typing import Any

from django.core.cache import cache
from django.utils import timezone

from .selectors import TRAINING_WORKER_KEY

log = logging.getLogger(__name__)
COUNT_GPUS = "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)"


def count_gpus(timeout: float = 300.0) -> int:
    try:
        done = subprocess.run(
            [sys.executable, "-c", COUNT_GPUS], capture_output=True, text=True, timeout=timeout, check=True
        )
        return int(done.stdout.strip().splitlines()[-1])
    except (OSError, ValueError, IndexError, subprocess.SubprocessError) as exc:
        log.warning("could not count GPUs: %s", exc)
        return 0


def training_worker_report(*, gpus: int, hostname: str | None = None) -> dict[str, Any]:
    info = {"hostname": hostname or socket.gethostname(), "gpus": gpus, "reported_at": timezone.now().isoformat()}
    cache.set(TRAINING_WORKER_KEY, info, timeout=30 * 24 * 3600)
    return info


def on_worker_ready(sender: Any = None, **kwargs: Any) -> None:
    """celery.signals.worker_ready: only workers consuming `training` report (in the background)."""
    try:
        consumed = sender.app.amqp.queues.consume_from
    except AttributeError:
        return
    # No -Q: the worker consumes every queue, training included.
    if consumed and "training" not in consumed:
        return
    hostname = getattr(sender, "hostname", None)
    threading.Thread(target=lambda: training_worker_report(gpus=count_gpus(), hostname=hostname), daemon=True).start()
