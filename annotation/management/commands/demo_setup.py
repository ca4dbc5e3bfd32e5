from __future__ import annotations

from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from annotation.answers import study_answer_create
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
    help = (
        "Load the demo tasks, two systems' candidates, demo users, two open pairwise studies and an open answer "
        "study (idempotent)."
    )

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
        study = demo_answer_study(annotators=[u for u in users if not u.is_staff])
        self.stdout.write(f"study {study.slug}: {study.answer_items.count()} answer items")


# The answer study: people play the user over the hand-written systems' candidates and, once the demo's worker
# has generated them, SmolLM2's (bin/demo rebuilds it then: `demo_answer_study --wait`).
ANSWER_STUDY = "demo-answers"
ANSWER_SYSTEMS = (*DEMO_SYSTEMS, "smollm2-135m")
ANSWER_INSTRUCTIONS = (
    "You are the user who wrote the request on the card, and you know the facts listed under "
    "**What you know**. An assistant asks you questions, one at a time. Answer as that user would: only "
    "from the card, briefly, in your own words. When the card doesn't say, press **The card doesn't say** "
    "rather than inventing an answer."
)


def demo_answer_study(*, annotators: list[Any]) -> Study:
    """Create or refresh the open answer study over whichever demo systems exist now (idempotent)."""
    return study_answer_create(
        slug=ANSWER_STUDY,
        title="Play the user: answer the assistant's questions",
        systems=System.objects.filter(name__in=ANSWER_SYSTEMS),
        instructions=ANSWER_INSTRUCTIONS,
        annotators=annotators,
        status=StudyStatus.OPEN,
    )
