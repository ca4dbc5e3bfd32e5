from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from pigplatform.celery import ping


class Command(BaseCommand):
    help = "Send a ping task through the configured broker and wait for a worker to answer."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--timeout", type=float, default=30.0)

    def handle(self, *args: object, **options: object) -> None:
        try:
            answer = ping.delay("pong").get(timeout=options["timeout"])
        except Exception as exc:
            raise CommandError(f"no worker answered: {exc}") from exc
        self.stdout.write(self.style.SUCCESS(f"worker answered: {answer}"))
