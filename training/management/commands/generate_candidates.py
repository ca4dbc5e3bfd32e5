from __future__ import annotations

import sys
import time
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.models import Study, Task
from training.generation import (
    SIMULATORS,
    generation_job_progress,
    generation_job_run_inline,
    generation_job_start,
    tasks_without_candidate,
)
from training.models import GenerationJob, JobStatus, System


def progress_line(job: GenerationJob, width: int = 30) -> str:
    p = generation_job_progress(job=job)
    filled = int(width * p.done / p.total) if p.total else width
    eta = f"{p.eta_s:.0f}s" if p.eta_s is not None else "–"
    return (
        f"[{'#' * filled}{'.' * (width - filled)}] {p.done}/{p.total} failed {p.failed} skipped {p.skipped} "
        f"{p.tokens_per_s:.1f} tok/s ETA {eta} {p.status}"
    )


class Command(BaseCommand):
    help = (
        "Generate candidates with a system for tasks (by key, a split, a study, or all), as a GenerationJob "
        "run by Celery workers on the 'generation' queue. --wait shows a progress bar until it finishes; "
        "--inline runs the chunks in this process instead (no worker needed)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--system", required=True)
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--tasks", nargs="+", metavar="KEY")
        which.add_argument("--split")
        which.add_argument("--study", metavar="SLUG")
        parser.add_argument("--simulator", choices=SIMULATORS, default="embedding")
        parser.add_argument("--chunk-size", type=int)
        parser.add_argument("--wait", action="store_true")
        parser.add_argument("--inline", action="store_true")

    def _tasks(self, options: dict[str, Any]) -> list[Task]:
        if options["tasks"]:
            found = Task.objects.in_bulk(options["tasks"], field_name="key")
            unknown = [k for k in options["tasks"] if k not in found]
            if unknown:
                raise CommandError(f"unknown task key(s): {', '.join(unknown)}")
            return list(found.values())
        if options["split"]:
            return list(Task.objects.filter(split=options["split"]))
        if options["study"]:
            study = Study.objects.filter(slug=options["study"]).first()
            if study is None:
                raise CommandError(f"unknown study '{options['study']}'")
            return list(Task.objects.filter(comparisons__study=study).distinct())
        return list(Task.objects.all())

    def handle(self, *args: object, **options: Any) -> None:
        system = System.objects.filter(name=options["system"]).first()
        if system is None:
            raise CommandError(f"unknown system '{options['system']}'")
        tasks = self._tasks(options)
        missing = tasks_without_candidate(system=system, tasks=tasks)
        if tasks and not missing:
            # Nothing to do (e.g. bin/demo restarted): no job, rather than one that only skips.
            self.stdout.write(
                f"All {len(tasks)} tasks already have candidates from {system.name}: nothing to generate."
            )
            return
        try:
            job = generation_job_start(
                system=system,
                tasks=tasks,
                simulator=options["simulator"],
                chunk_size=options["chunk_size"],
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        self.stdout.write(f"Generation job #{job.pk}: {job.total} tasks with {system.name}")
        if options["inline"]:
            generation_job_run_inline(job=job)
        elif options["wait"]:
            while True:
                job.refresh_from_db()
                self.stdout.write("\r" + progress_line(job), ending="")
                sys.stdout.flush()
                if job.status not in (JobStatus.QUEUED, JobStatus.RUNNING):
                    break
                time.sleep(1)
            self.stdout.write("")
        else:
            self.stdout.write("Queued; a worker on the 'generation' queue will run it (or use --wait / --inline).")
            return
        job.refresh_from_db()
        self.stdout.write(progress_line(job))
        for error in job.errors[:20]:
            self.stderr.write(f"  {error['task_key']}: {error['error']}")
        if job.status == JobStatus.FAILED:
            raise CommandError(f"job #{job.pk} failed")
