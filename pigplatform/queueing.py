"""Enqueue Celery work after the surrounding transaction commits, and survive a broker outage.

If the broker is unreachable the rows that describe the work are already committed; we record a clear
error on them instead of failing the request with a 500, and the researcher re-enqueues later."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import transaction
from kombu.exceptions import OperationalError as BrokerError

log = logging.getLogger(__name__)

BROKER_DOWN = (
    "Could not reach the task broker ({error}). The work is saved but nothing was queued; "
    "re-enqueue it once the broker is back."
)


def send_or_record(send: Callable[[], None], on_failure: Callable[[str], None]) -> bool:
    try:
        send()
    except (BrokerError, ConnectionError, OSError) as exc:
        log.warning("broker unreachable while enqueuing: %s", exc)
        on_failure(BROKER_DOWN.format(error=str(exc)[:200] or type(exc).__name__))
        return False
    return True


def enqueue_on_commit(send: Callable[[], None], on_failure: Callable[[str], None]) -> None:
    transaction.on_commit(lambda: send_or_record(send, on_failure))
