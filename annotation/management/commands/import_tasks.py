from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from annotation.services import tasks_import

from ._importing import run_import


class Command(BaseCommand):
    help = (
        "Import tasks from a JSON Lines file (key, domain, full_task, masked_task, hidden_facts, "
        "optional split and reference_outline). All or nothing: any bad line is reported with its "
        "line number and nothing is written. Re-importing is idempotent: tasks are matched by key and "
        "updated in place when their content changed; unchanged tasks are left alone."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file")

    def handle(self, *args: object, **options: object) -> None:
        report = run_import(str(options["file"]), tasks_import)
        self.stdout.write(self.style.SUCCESS(f"Tasks: {report}"))
