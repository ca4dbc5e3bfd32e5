from __future__ import annotations

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from annotation.models import Study, StudyKind, StudyStatus
from annotation.services import candidates_import, study_build_comparisons, tasks_import
from training.models import System

DEMO_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "demo"
DEMO_SYSTEMS = ("proactive-rl", "base-instruct")
DEMO_USERS = (
    # (username, password, is_staff) — local demo only; printed by bin/demo.
    ("researcher", "pig-researcher-demo", True),
    ("alice", "pig-alice-demo", False),
    ("bob", "pig-bob-demo", False),
)
STUDIES = (
    (
        "demo-questions",
        "Which clarification questions draw out more?",
        StudyKind.QUESTIONS,
        "You see a request as the assistant received it, with details missing. Pick the set of "
        "clarification questions that would better draw out what the user knows but did not say.",
    ),
    (
        "demo-outlines",
        "Which outline serves the request better?",
        StudyKind.OUTLINE,
        "You see the user's full request. Pick the outline that serves it better: coverage of what "
        "the user needs, specificity, structure.",
    ),
)


class Command(BaseCommand):
    help = "Load the demo tasks, two systems' candidates, demo users and two open studies (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--data-dir", default=str(DEMO_DIR))

    @transaction.atomic
    def handle(self, *args: object, **options: object) -> None:
        data = Path(str(options["data_dir"]))
        with (data / "tasks.jsonl").open("rb") as fh:
            self.stdout.write(f"tasks: {tasks_import(lines=fh)}")
        for name in DEMO_SYSTEMS:
            with (data / f"candidates-{name}.jsonl").open("rb") as fh:
                self.stdout.write(f"{name}: {candidates_import(lines=fh, system_name=name)}")
        users = []
        User = get_user_model()
        for username, password, staff in DEMO_USERS:
            user, created = User.objects.get_or_create(username=username, defaults={"is_staff": staff})
            if created:
                user.is_superuser = staff
                user.set_password(password)
                user.save()
            users.append(user)
        systems = list(System.objects.filter(name__in=DEMO_SYSTEMS))
        for slug, title, kind, instructions in STUDIES:
            study, _ = Study.objects.get_or_create(
                slug=slug,
                defaults={
                    "title": title,
                    "kind": kind,
                    "instructions": instructions,
                    "overlap": 2,
                    "status": StudyStatus.OPEN,
                    "show_hidden_context": kind == StudyKind.QUESTIONS,
                    "criteria": ["Relevance", "Specificity"] if kind == StudyKind.QUESTIONS else [],
                },
            )
            study.systems.add(*systems)
            study.annotators.add(*[u for u in users if not u.is_staff])
            created = study_build_comparisons(study=study)
            self.stdout.write(f"study {slug}: {study.comparisons.count()} comparisons ({created} new)")
