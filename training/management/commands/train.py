"""`python manage.py train --config run.toml [--wait | --inline]`: create and start a GRPO or DPO run from a TOML file.

TOML keys (see docs/training.md and training/configs/example.toml):
    name = "my-run"                          # unique slug
    model = "var/models/smollm2-135m-instruct"  # a local model directory, or: base_system = "system-name"
    tasks_split = "train"                    # one of: tasks_split, tasks_study (a study slug), tasks_file (JSONL)
    device = "auto"                          # auto | cpu | cuda
    num_processes = 1                        # GPUs (accelerate processes)
    deepspeed_config = ""                    # optional DeepSpeed JSON (ZeRO-2/3)
    warm_start = { source = "system:proactive-rl", steps = 20 }  # optional SFT phase first (or "study:SLUG")
    [hyperparameters]                        # any of training.grpo.DEFAULT_HYPERPARAMETERS
    [reward]                                 # terms, concise_chars; [reward.spec] overrides the evaluation
                                             # reward spec (matcher, threshold, k, weights…): avoid unless meant
    [decoding]                               # the registered System's decoding parameters that differ from
                                             # the base System's (temperature, top_p, max_new_tokens, seed)
    algorithm = "dpo"                        # DPO instead (default "grpo"); then, instead of tasks and reward:
    [preferences]                            # studies = ["slug", …] or file = "prefs.trl.jsonl", and any of
                                             # training.preferences.DEFAULT_PREFERENCE_CONFIG (aggregation, …)
"""

from __future__ import annotations

import threading
import time
import tomllib
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.models import Study
from training.models import FINISHED_STATUSES, Algorithm, JobStatus, System, TrainingRun
from training.run_tasks import supervise
from training.runs import TrainingRunError, training_run_create, training_run_start
from training.views_runs import heldout_accuracy_rows

TOP_KEYS = {
    "name", "model", "base_system", "tasks_split", "tasks_study", "tasks_file", "device", "num_processes",
    "deepspeed_config", "hyperparameters", "reward", "decoding", "warm_start", "algorithm", "preferences",
}  # fmt: skip
WARM_START_KEYS = {"source", "steps"}


def run_from_config(config: dict[str, Any], *, created_by: Any = None) -> TrainingRun:
    unknown = sorted(set(config) - TOP_KEYS)
    if unknown:
        raise CommandError(f"unknown key(s) in the config: {', '.join(unknown)}")
    if "name" not in config:
        raise CommandError("the config needs a name")
    if TrainingRun.objects.filter(name=config["name"]).exists():
        raise CommandError(f"a training run named {config['name']!r} exists already; choose another name")
    base_system = None
    if config.get("base_system"):
        base_system = System.objects.filter(name=config["base_system"]).first()
        if base_system is None:
            raise CommandError(f"no system named {config['base_system']!r}")
    warm_start = config.get("warm_start", {})
    if not isinstance(warm_start, dict) or set(warm_start) - WARM_START_KEYS:
        raise CommandError('warm_start must be a table like { source = "system:NAME", steps = 20 }')
    steps = warm_start.get("steps", 0)
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
        raise CommandError(f"warm_start.steps must be a non-negative integer, not {steps!r}")
    study = None
    if config.get("tasks_study"):
        study = Study.objects.filter(slug=config["tasks_study"]).first()
        if study is None:
            raise CommandError(f"no study with slug {config['tasks_study']!r}")
    preferences = dict(config.get("preferences") or {})
    slugs = preferences.pop("studies", [])
    if not isinstance(slugs, list):
        raise CommandError("preferences.studies must be a list of study slugs")
    studies = list(Study.objects.filter(slug__in=slugs))
    missing = sorted(set(slugs) - {s.slug for s in studies})
    if missing:
        raise CommandError(f"no study with slug(s) {', '.join(map(repr, missing))}")
    algorithm = config.get("algorithm", Algorithm.GRPO)
    if algorithm not in Algorithm.values:
        raise CommandError(f"algorithm must be one of {', '.join(Algorithm.values)}, not {algorithm!r}")
    try:
        return training_run_create(
            algorithm=algorithm,
            preference_studies=studies,
            preferences_file=str(preferences.pop("file", "")),
            preference_config=preferences,
            name=config["name"],
            base_model_path=str(config.get("model", "")),
            base_system=base_system,
            task_split=config.get("tasks_split", ""),
            task_study=study,
            tasks_file=str(config.get("tasks_file", "")),
            reward_config=config.get("reward", {}),
            hyperparameters=config.get("hyperparameters", {}),
            decoding_overrides=config.get("decoding", {}),
            device=config.get("device", "auto"),
            num_processes=config.get("num_processes", 1),
            deepspeed_config=config.get("deepspeed_config", ""),
            warm_start_source=str(warm_start.get("source", "")),
            warm_start_steps=steps,
            created_by=created_by,
        )
    except Exception as exc:  # full_clean's ValidationError and friends, reported plainly
        raise CommandError(f"invalid run: {exc}") from exc


def follow(run: TrainingRun, stdout, *, poll: float = 1.0) -> TrainingRun:
    """A progress bar over the run's steps until it finishes."""
    from tqdm import tqdm

    # The raw stream: Django's OutputWrapper would end every tqdm refresh with a newline.
    bar = tqdm(total=run.max_steps, desc=run.name, unit="step", file=getattr(stdout, "_out", stdout))
    try:
        while True:
            run.refresh_from_db()
            bar.update(max(0, run.step - bar.n))
            last = run.metrics.order_by("-step").values_list("values", flat=True).first() or {}
            if "reward" in last:
                bar.set_postfix(reward=f"{last['reward']:.3f}", loss=f"{last.get('loss', float('nan')):.4f}")
            elif "rewards/margins" in last:
                bar.set_postfix(
                    margin=f"{last['rewards/margins']:.3f}", acc=f"{last.get('rewards/accuracies', float('nan')):.2f}"
                )
            if run.status in FINISHED_STATUSES:
                return run
            time.sleep(poll)
    finally:
        bar.close()


class Command(BaseCommand):
    help = "Create and start a GRPO or DPO training run from a TOML config."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--config", required=True, type=Path)
        parser.add_argument("--wait", action="store_true", help="show a progress bar until the run finishes")
        parser.add_argument(
            "--inline", action="store_true", help="supervise the run in this process (no Celery worker needed)"
        )

    def handle(self, *args: Any, config: Path, wait: bool, inline: bool, **options: Any) -> None:
        try:
            data = tomllib.loads(config.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise CommandError(f"cannot read {config}: {exc}") from exc
        run = run_from_config(data)
        self.stdout.write(f"created run {run.name} (#{run.pk})")
        execute(self, run, wait=wait, inline=inline)


def execute(command: BaseCommand, run: TrainingRun, *, wait: bool, inline: bool) -> TrainingRun:
    try:
        run = training_run_start(run=run, enqueue=not inline)
    except TrainingRunError as exc:
        raise CommandError(str(exc)) from exc
    if run.status == JobStatus.FAILED:
        raise CommandError(run.error)
    started = time.monotonic()
    if inline:
        worker = threading.Thread(target=supervise, kwargs={"run_id": run.pk, "attempt": run.attempt}, daemon=True)
        worker.start()
        run = follow(run, command.stdout)
        worker.join()
    elif wait:
        command.stdout.write("queued on the training queue (needs `celery -A pigplatform worker -Q training -c 1`)")
        run = follow(run, command.stdout)
    else:
        command.stdout.write(f"queued; follow it in admin: /admin/training/trainingrun/{run.pk}/change/")
        return run
    run.refresh_from_db()
    elapsed = time.monotonic() - started
    command.stdout.write(f"run {run.name}: {run.status} after {run.step} steps in {elapsed:.0f} s")
    if run.status != JobStatus.SUCCEEDED:
        if run.algorithm == Algorithm.DPO:
            write_heldout_accuracy(command, run)
        raise CommandError(run.error or run.status)
    if run.algorithm == Algorithm.DPO:
        write_heldout_accuracy(command, run)
    system = run.systems.first()
    if system:
        command.stdout.write(f"registered system {system.name}: {system.model_path}")
    return run


def write_heldout_accuracy(command: BaseCommand, run: TrainingRun) -> None:
    evaluation = run.preference_eval or {}
    source = evaluation.get("source") or {}
    if source:
        dropped = ", ".join(f"{n} {r}" for r, n in (source.get("dropped") or {}).items()) or "none"
        command.stdout.write(
            f"pairs: {source['train_pairs']} train, {source['heldout_pairs']} held out "
            f"({source['heldout_tasks']} tasks); dropped: {dropped}"
        )
    if not evaluation.get("base"):
        return
    command.stdout.write(
        f"held-out preference accuracy ({evaluation['pairs']} pairs, {evaluation['tasks']} tasks, "
        "95% bootstrap over tasks):"
    )
    for row in heldout_accuracy_rows(evaluation):
        cells = [
            f"{phase} {c['accuracy']:.3f} [{c['lo']:.3f}, {c['hi']:.3f}]" if (c := row[phase]) else f"{phase} –"
            for phase in ("base", "trained")
        ]
        command.stdout.write(f"  {row['label']}: " + "   ".join(cells))
