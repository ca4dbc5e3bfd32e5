"""Seconds per GRPO step through the platform against a bare TRL script, side by side in one process tree.

Both children train the same model on the same tasks with the same GRPO configuration and the same reward
functions (`training.rewards.reward_setup`):

* **bare** — a plain TRL script: `GRPOConfig` + `GRPOTrainer`, nothing else;
* **platform** — `training.grpo.run` on a real `TrainingRun` row: the spec, the per-function zero-variance
  logging, `RunProgressCallback` with the database sink (metrics rows, heartbeat, cancel poll).

Each child times every step (from one step's start to the next, so logging after a step counts) and splits it
into generation (`_generate`), reward (`_calculate_rewards`, the simulator), the other scoring passes, the
backward/optimizer part of `training_step`, and callbacks (every trainer callback event, the database included).
The first step is excluded (warm-up). Children alternate bare, platform, bare, platform… (`--repeats`).

    python benchmarks/grpo_step.py [--model tiny|PATH] [--steps 6] [--repeats 2] [--max-completion-length 64]

Needs Django settings (DATABASE_URL; SQLite by default) for the platform child's run row.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WORK = ROOT / "var" / "bench" / "grpo-step"
PARTS = ("generation", "reward", "scoring", "backward", "callbacks")


def install_timers(totals: dict[str, list[float]], steps: list[float]) -> None:
    """Wrap TRL/transformers methods with timers (the same wrappers in both children)."""
    from transformers.trainer_callback import CallbackHandler
    from trl import GRPOTrainer

    current: dict[str, float] = defaultdict(float)

    def timed(cls: type, name: str, key: str) -> None:
        original = getattr(cls, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                current[key] += time.perf_counter() - started

        setattr(cls, name, wrapper)

    timed(GRPOTrainer, "_generate", "generation")
    timed(GRPOTrainer, "_calculate_rewards", "reward")
    timed(GRPOTrainer, "_generate_and_score_completions", "generate_and_score")
    timed(GRPOTrainer, "training_step", "training_step")
    call_event = CallbackHandler.call_event
    marks: dict[str, float] = {}

    def event(self: Any, name: str, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        now = time.perf_counter()
        if name in ("on_step_begin", "on_train_end") and "begin" in marks:
            steps.append(now - marks["begin"])
            g, r, gs, ts = (current[k] for k in ("generation", "reward", "generate_and_score", "training_step"))
            totals["generation"].append(g)
            totals["reward"].append(r)
            totals["scoring"].append(gs - g - r)
            totals["backward"].append(ts - gs)
            totals["callbacks"].append(current["callbacks"])
            current.clear()
        if name == "on_step_begin":
            marks["begin"] = now
        try:
            return call_event(self, name, args, state, control, **kwargs)
        finally:
            current["callbacks"] += time.perf_counter() - now

    CallbackHandler.call_event = event


def bare(spec: Any) -> None:
    """What a TRL user would write: config, dataset, reward functions, trainer.train()."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from training.grpo import merged_hyperparameters
    from training.prompts import questions_prompt
    from training.rewards import reward_setup

    hp = merged_hyperparameters(spec.hyperparameters)
    funcs, weights = reward_setup(spec.reward_config)
    k = (spec.reward_config.get("weights") or {}).get("max_questions", 5)
    rows = [{"prompt": questions_prompt(t["masked_task"], k), "masked_task": t["masked_task"],
             "hidden_facts": t["hidden_facts"]} for t in spec.tasks]  # fmt: skip
    config = GRPOConfig(
        output_dir=spec.output_dir, learning_rate=hp["learning_rate"], max_steps=hp["max_steps"],
        num_generations=hp["num_generations"], per_device_train_batch_size=hp["per_device_train_batch_size"],
        gradient_accumulation_steps=hp["gradient_accumulation_steps"],
        max_completion_length=hp["max_completion_length"], beta=hp["beta"], temperature=hp["temperature"],
        seed=hp["seed"], logging_steps=1, save_strategy="no", report_to=[], disable_tqdm=True,
        reward_weights=weights, use_cpu=spec.device == "cpu",
    )  # fmt: skip
    GRPOTrainer(model=spec.model_path, reward_funcs=funcs, args=config, train_dataset=Dataset.from_list(rows)).train()


def child(mode: str, spec_path: str, result_path: str) -> None:
    from training.grpo import TrainingSpec

    spec = TrainingSpec.load(spec_path)
    totals: dict[str, list[float]] = defaultdict(list)
    steps: list[float] = []
    install_timers(totals, steps)
    if mode == "platform":
        import django

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pigplatform.settings")
        django.setup()
        from training.grpo import run

        run(spec)
    else:
        bare(spec)
    Path(result_path).write_text(json.dumps({"steps": steps, "parts": totals}))


def prepare(args: argparse.Namespace) -> tuple[Any, str]:
    """The model, the tasks file, and a TrainingRun row claimed for the platform child."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pigplatform.settings")
    django.setup()
    from django.core.management import call_command

    from training.runs import training_run_claim, training_run_create, training_run_spec, training_run_start

    call_command("migrate", verbosity=0)
    WORK.mkdir(parents=True, exist_ok=True)
    if args.model == "tiny":
        from training.tinymodel import build_tiny_model

        model = str(build_tiny_model(WORK / "tiny-qwen2"))
    else:
        model = str(Path(args.model).resolve())
    demo = (ROOT / "annotation/fixtures/demo/tasks.jsonl").read_text().splitlines()
    tasks = [json.loads(line) for line in demo]
    tasks_file = WORK / "train_tasks.jsonl"
    tasks_file.write_text("".join(json.dumps({"masked_task": t["masked_task"], "hidden_facts": t["hidden_facts"]})
                                  + "\n" for t in tasks if t["split"] == "train"))  # fmt: skip
    hp = {"max_steps": args.steps, "max_completion_length": args.max_completion_length, "save_steps": 10_000}
    run = training_run_create(
        name=f"bench-grpo-step-{int(time.time())}", base_model_path=model, tasks_file=str(tasks_file),
        hyperparameters=hp, reward_config={"terms": {"elicitation": 1.0, "concise": 0.1}},
        device="cpu" if args.device == "cpu" else "auto",
    )  # fmt: skip
    run = training_run_start(run=run, enqueue=False)
    if run.status == "failed":
        raise SystemExit(run.error)
    training_run_claim(run_id=run.pk, attempt=run.attempt)
    spec = training_run_spec(run)
    spec.output_dir = str(WORK / "out")
    return spec, model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny", help="tiny (built in code) or a model directory")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=2, help="bare/platform pairs, alternating")
    parser.add_argument("--max-completion-length", type=int, default=64)
    parser.add_argument("--device", default="cpu", choices=("cpu", "auto"))
    args = parser.parse_args()
    spec, model = prepare(args)
    threads = os.environ.get("PIG_TRAINING_CPU_THREADS") or str(os.cpu_count() or 1)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": threads}
    if args.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    results: dict[str, list[dict]] = defaultdict(list)
    for i in range(args.repeats):
        for mode in ("bare", "platform"):
            out = WORK / f"{mode}-{i}"
            out.mkdir(parents=True, exist_ok=True)
            spec.output_dir = str(out)
            spec_path = spec.save(out / "spec.json")
            result = out / "result.json"
            log = out / "log.txt"
            started = time.monotonic()
            with log.open("w") as fh:
                rc = subprocess.call([sys.executable, __file__, "_child", mode, str(spec_path), str(result)],
                                     cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)  # fmt: skip
            if rc:
                print(log.read_text()[-3000:])
                raise SystemExit(f"{mode} child failed (exit {rc}); log: {log}")
            data = json.loads(result.read_text())
            data["wall"] = time.monotonic() - started
            results[mode].append(data)
    hp = spec.hyperparameters
    from training.grpo import merged_hyperparameters

    merged = merged_hyperparameters(hp)
    prompts = merged["per_device_train_batch_size"] * merged["gradient_accumulation_steps"] // merged["num_generations"]
    print(f"== GRPO step: platform vs bare TRL ({Path(model).name}, {args.device}, {threads} threads) ==")
    gens, length = merged["num_generations"], merged["max_completion_length"]
    print(f"{args.steps} steps × {args.repeats} runs each, first step of each run excluded; a step = {prompts} "
          f"prompts × {gens} completions of ≤ {length} tokens")  # fmt: skip
    print(f"{'path':9s} {'s/step':>7s} " + " ".join(f"{p:>10s}" for p in PARTS))
    medians = {}
    for mode, runs in results.items():
        steps = [s for r in runs for s in r["steps"][1:]]
        parts = {p: statistics.median([v for r in runs for v in r["parts"][p][1:]]) for p in PARTS}
        medians[mode] = statistics.median(steps)
        print(f"{mode:9s} {medians[mode]:7.2f} " + " ".join(f"{parts[p]:10.3f}" for p in PARTS))
    ratio = medians["platform"] / medians["bare"]
    print(f"platform / bare: {ratio:.3f}× (target ≤ 1.15×: {'met' if ratio <= 1.15 else 'NOT met'})")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "_child":
        child(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        main()
