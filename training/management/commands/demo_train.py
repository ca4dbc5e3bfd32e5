"""`python manage.py demo_train`: a short real GRPO run on CPU so a newcomer sees the curve move.

Uses SmolLM2-135M-Instruct from ./var/models/smollm2-135m-instruct when it is there (`prepare_smollm2`),
else the tiny Qwen2 model built in code. LoRA, a handful of steps, supervised in this process."""

from __future__ import annotations

import time
import tomllib
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from training.models import TrainingRun

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
        else:
            from training.tinymodel import build_tiny_model

            tiny = models / "tiny-qwen2"
            if not (tiny / "config.json").is_file():
                build_tiny_model(tiny)
            config["model"] = str(tiny)
            config["hyperparameters"]["max_completion_length"] = 32
            self.stdout.write(f"{smol} not found (run prepare_smollm2 for a real model): using the tiny model")
        config["tasks_file"] = str(CONFIG.parent / "demo_tasks.jsonl")
        if steps:
            config["hyperparameters"]["max_steps"] = steps
        base = config["name"]
        n = TrainingRun.objects.filter(name__startswith=base).count()
        config["name"] = base if n == 0 else f"{base}-{n + 1}"
        run = run_from_config(config)
        self.stdout.write(f"demo run {run.name} on {config['model']}: {run.max_steps} LoRA GRPO steps on CPU")
        started = time.monotonic()
        execute(self, run, wait=True, inline=not queue)
        self.stdout.write(
            f"demo finished in {time.monotonic() - started:.0f} s; open the run in admin to see its curve"
        )
