"""Export a study's judgments (csv, jsonl, parquet) or its majority preference pairs (trl); for an answer
study, its answers (one row per answered question)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.exports import FORMATS, ExportError, TrlOptions, export_to_file
from annotation.models import Study


class Command(BaseCommand):
    help = (
        "Stream a study's judgments (or, --format answers, an answer study's answers) to a file, written "
        "atomically (complete or absent)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--study", required=True, help="study slug")
        parser.add_argument("--format", required=True, choices=FORMATS)
        parser.add_argument("-o", "--output", required=True, help="file to write")
        parser.add_argument(
            "--real-usernames", action="store_true", help="annotators by username instead of pseudonymous id"
        )
        parser.add_argument("--exclude-flagged", action="store_true", help="trl: ignore flagged annotators' votes")
        parser.add_argument(
            "--prompt",
            choices=("text", "chat"),
            default="text",
            help="trl: the masked request as text, or the chat messages the model is asked with (conversational)",
        )
        parser.add_argument(
            "--split", type=float, default=None, metavar="SHARE", help="trl: add a split column, SHARE of tasks heldout"
        )
        parser.add_argument("--seed", type=int, default=42, help="trl: seed of the held-out split by task")
        parser.add_argument(
            "--aggregation", choices=("majority", "per_judgment"), default="majority", help="trl: pairs per comparison"
        )
        parser.add_argument("--min-votes", type=int, default=1, help="trl: drop comparisons with fewer judgments")

    def handle(self, *args: Any, **opts: Any) -> None:
        study = Study.objects.filter(slug=opts["study"]).first()
        if study is None:
            raise CommandError(f"no study with slug {opts['study']!r}")
        try:
            report = export_to_file(
                study=study,
                fmt=opts["format"],
                path=opts["output"],
                real_usernames=opts["real_usernames"],
                exclude_flagged=opts["exclude_flagged"],
                trl=TrlOptions(
                    prompt=opts["prompt"],
                    split_share=opts["split"],
                    split_seed=opts["seed"],
                    aggregation=opts["aggregation"],
                    min_votes=opts["min_votes"],
                ),
            )
        except ExportError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Wrote {opts['output']}: {report}")
