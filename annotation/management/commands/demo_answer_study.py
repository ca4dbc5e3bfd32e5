"""Refresh the demo's answer study once the demo worker has generated SmolLM2's candidates (bin/demo)."""

from __future__ import annotations

import time
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser

from training.models import GenerationJob, JobStatus

from .demo_setup import ANSWER_SYSTEMS, DEMO_USERS, demo_answer_study


class Command(BaseCommand):
    help = "Add the demo systems' candidates to the demo answer study; --wait first lets their generation finish."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--wait", action="store_true", help="wait for the demo systems' generation jobs")
        parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait at most")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["wait"]:
            deadline = time.monotonic() + options["timeout"]
            pending = GenerationJob.objects.filter(
                system__name__in=ANSWER_SYSTEMS, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]
            )
            while pending.exists() and time.monotonic() < deadline:
                time.sleep(5)
        annotators = get_user_model().objects.filter(username__in=[u for u, _, staff in DEMO_USERS if not staff])
        study = demo_answer_study(annotators=list(annotators))
        self.stdout.write(f"study {study.slug}: {study.answer_items.count()} answer items")
