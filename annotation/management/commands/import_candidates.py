from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from annotation.services import candidates_import

from ._importing import run_import


class Command(BaseCommand):
    help = (
        "Import one system's candidates from a JSON Lines file (key, questions, answers, outline, "
        "optional metadata). The system is created as a `static` system if its name is new. All or "
        "nothing, with line-numbered errors. Re-importing is idempotent: candidates are matched by "
        "(task, system) and updated in place, except ones already judged, which are refused."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file")
        parser.add_argument("--system", required=True, help="System name (slug).")

    def handle(self, *args: object, **options: object) -> None:
        report = run_import(str(options["file"]), candidates_import, system_name=str(options["system"]))
        for note in report.notes:
            self.stdout.write(note)
        self.stdout.write(self.style.SUCCESS(f"Candidates: {report}"))
