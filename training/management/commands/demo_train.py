"""`python manage.py demo_train`: a short real warm start + GRPO run on CPU so a newcomer sees the curve move.

Uses SmolLM2-135M-Instruct from ./var/models/smollm2-135m-instruct when it is there (`prepare_smollm2`),
else the tiny Qwen2 model built in code. With the demo data loaded (`demo_setup`) it trains on the train
split and warm-starts from the hand-written `proactive-rl` question sets; without it, on the 8 tasks of
training/configs/demo_tasks.jsonl and without a warm start. LoRA; supervised in this process, or by a
training worker with `--queue` (what `PIG_DEMO_TRAIN=1 bin/demo` does)."""

from __future__ import annotations

import time
import tomllib
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from annotation.models import Candidate, Split, Task
from training.models import System, TrainingRun

from .prepare_smollm2 import SYSTEM_NAME as SMOLLM2_SYSTEM
from .train import execute, run_from_config

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "demo.toml"


class Command(BaseCommand):
    help = "Run a short LoRA GRPO run on CPU (SmolLM2-135M-Instruct if prepared, else a tiny model)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--steps", type=int, default=None, help="override max_steps")
        parser.add_argument("--queue", action="store_true", help="enqueue for a training worker instead")

    def handle(self, *args: Any, steps: int | None, queue: bool, **options: Any) -> None:
        config = tomllib.loads(CONFIG.read_text(encoding="utf-8"))
        models = Path(settings.PIG["MODELS_DIR"])
        smol = models / "smollm2-135m-instruct"
        if (smol / "config.json").is_file():
            config["model"] = str(smol)
            if System.objects.filter(name=SMOLLM2_SYSTEM, model_path=str(smol)).exists():
                # From the System, not the path: the trained System then inherits its decoding parameters.
                del config["model"]
                config["base_system"] = SMOLLM2_SYSTEM
        else:
            from training.tinymodel import build_tiny_model

            tiny = models / "tiny-qwen2"
            if not (tiny / "config.json").is_file():
                build_tiny_model(tiny)
            config["model"] = str(tiny)
            config["hyperparameters"]["max_completion_length"] = 32
            self.stdout.write(f"{smol} not found (run prepare_smollm2 for a real model): using the tiny model")
        source = config["warm_start"]["source"]
        has_examples = Candidate.objects.filter(system__name=source.partition(":")[2], task__split=Split.TRAIN).exists()
        if not (Task.objects.filter(split=Split.TRAIN).exists() and has_examples):
            del config["tasks_split"], config["warm_start"]
            config["tasks_file"] = str(CONFIG.parent / "demo_tasks.jsonl")
            self.stdout.write("demo data not loaded (manage.py demo_setup): no warm start, tasks from demo_tasks.jsonl")
        if steps:
            config["hyperparameters"]["max_steps"] = steps
        base = config["name"]
        n = TrainingRun.objects.filter(name__startswith=base).count()
        config["name"] = base if n == 0 else f"{base}-{n + 1}"
        run = run_from_config(config)
        warm, grpo = "", run.max_steps
        if run.warm_start_source:
            warm = f"{run.warm_start_steps} warm-start steps on {run.warm_start_source}, then "
            grpo -= run.warm_start_steps
        model = config.get("model") or config["base_system"]
        self.stdout.write(f"demo run {run.name} on {model}: {warm}{grpo} LoRA GRPO steps on CPU")
        started = time.monotonic()
        # Queued: a training worker runs it and admin shows the curve; this command returns at once.
        execute(self, run, wait=False, inline=not queue)
        if not queue:
            self.stdout.write(
                f"demo finished in {time.monotonic() - started:.0f} s; open the run in admin to see its curve"
            )
