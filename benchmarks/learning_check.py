"""Does training make the model ask better questions? Base vs warm start vs warm start + GRPO, held out.

One command, on the demo tasks (annotation/fixtures/demo): the 27 train-split tasks train, the 9 test-split
tasks are held out. The warm start learns from the hand-written `proactive-rl` question sets of the train
tasks, in the questioner format of generation. Every model is then run through the generation pipeline
(questions → simulated answers → outline) on the held-out tasks with the same decoding parameters and seed,
and scored under one reward spec (the evaluation's, `training.rewards.default_spec()`; training rewards with the
same spec). Printed per model: mean elicitation
reward, coverage, the share of tasks with at least one on-topic question, outline coverage; the paired
difference of each trained model from the base with a bootstrap interval over tasks; the GRPO phase's
training reward curve (also written as an SVG).

    python benchmarks/learning_check.py [--model var/models/smollm2-135m-instruct] [--out var/learning-check]
                                        [--warm-steps 40] [--grpo-steps 20] [--fresh]

Resumable: each stage writes its result under --out and a rerun skips finished stages; an interrupted
training phase resumes from its last checkpoint. Needs no database beyond Django's default settings.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEMO = ROOT / "annotation" / "fixtures" / "demo"
MODELS = ("base", "warm", "grpo")
LABELS = {"base": "base", "warm": "after warm start", "grpo": "warm start + GRPO"}
# The base System's decoding (prepare_smollm2's smollm2-135m), used unchanged for every model.
DECODING = {"temperature": 0.7, "top_p": 0.9, "max_new_tokens": 160, "max_questions": 5, "seed": 1234}


def load_demo() -> tuple[list[dict], list[dict], list[dict]]:
    tasks = [json.loads(line) for line in (DEMO / "tasks.jsonl").read_text().splitlines()]
    by_key = {t["key"]: t for t in tasks}
    train = [t for t in tasks if t["split"] == "train"]
    test = [t for t in tasks if t["split"] == "test"]
    examples = []
    for line in (DEMO / "candidates-proactive-rl.jsonl").read_text().splitlines():
        cand = json.loads(line)
        task = by_key.get(cand["key"])
        if task and task["split"] == "train" and cand["questions"]:
            examples.append({"masked_task": task["masked_task"], "questions": cand["questions"]})
    return train, test, examples


def configuration(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "model": str(Path(args.model).resolve()),
        "warm_steps": args.warm_steps,
        "grpo_steps": args.grpo_steps,
        "decoding": DECODING,
        "hyperparameters": {
            "max_steps": args.grpo_steps,
            "num_generations": 8,
            "per_device_train_batch_size": 8,
            "gradient_accumulation_steps": args.prompts_per_step,
            "max_completion_length": args.max_completion_length,
            "learning_rate": 2e-4,
            "temperature": 1.0,
            "beta": 0.0,
            "seed": 42,
            "save_steps": 5,
            "lora": True,
            "lora_r": 16,
            "lora_alpha": 32,
            "lora_target_modules": "all-linear",
            "sft_learning_rate": 5e-4,
            "sft_batch_size": 8,
        },
        # No spec overrides: GRPO rewards with the spec the evaluation below scores with.
        "reward": {"terms": {"elicitation": 1.0, "concise": 0.1}, "concise_chars": 600},
        "reward_spec": default_spec_dict(),
    }


def default_spec_dict() -> dict[str, Any]:
    from training.rewards import default_spec

    return default_spec().as_dict()


def training_task(task: dict) -> dict[str, Any]:
    """A demo task as the training spec carries it: fact texts plus the parallel slot/value list."""
    from training.facts import fact_from_raw

    facts = [fact_from_raw(f) for f in task["hidden_facts"]]
    return {"masked_task": task["masked_task"], "hidden_facts": [f.text for f in facts],
            "fact_slots": [{"slot": f.slot, "value": f.value} for f in facts]}  # fmt: skip


def train(config: dict[str, Any], out: Path, train_tasks: list[dict], examples: list[dict]) -> None:
    from training.grpo import TrainingSpec, launch_command

    run_dir = out / "train"
    if (run_dir / "final" / "pig_training.json").is_file():
        print("training: already finished", flush=True)
        return
    spec = TrainingSpec(
        model_path=config["model"],
        tasks=[training_task(t) for t in train_tasks],
        output_dir=str(run_dir),
        hyperparameters=config["hyperparameters"],
        reward_config=config["reward"],
        reward_spec=config["reward_spec"],
        max_questions=DECODING["max_questions"],
        device="cpu" if os.environ.get("CUDA_VISIBLE_DEVICES") == "" else "auto",
        resume=run_dir.is_dir(),
        warm_start={"source": "system:proactive-rl", "steps": config["warm_steps"], "examples": examples},
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    device = "cpu" if spec.device == "cpu" else "auto"
    cmd = launch_command(spec.save(run_dir / "spec.json"), device=device)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    started = time.monotonic()
    print(f"training: {config['warm_steps']} warm-start + {config['grpo_steps']} GRPO steps "
          f"({'resuming' if spec.resume else 'fresh'}); log: {run_dir / 'log.txt'}", flush=True)  # fmt: skip
    with (run_dir / "log.txt").open("a") as fh:
        rc = subprocess.call(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
    if rc != 0 or not (run_dir / "final" / "pig_training.json").is_file():
        tail = (run_dir / "log.txt").read_text()[-3000:]
        raise SystemExit(f"training failed (exit {rc}); rerun to resume. Log tail:\n{tail}")
    print(f"training: done in {time.monotonic() - started:.0f} s", flush=True)


def model_paths(config: dict[str, Any], out: Path) -> dict[str, str]:
    return {
        "base": config["model"],
        "warm": str(out / "train" / "warm-start" / "final"),
        "grpo": str(out / "train" / "final"),
    }


def evaluate(name: str, path: str, test_tasks: list[dict], out: Path) -> dict[str, Any]:
    """The generation pipeline on the held-out tasks, scored per task; cached in eval-<name>.json."""
    target = out / f"eval-{name}.json"
    if target.is_file():
        return json.loads(target.read_text())
    from training.backends.transformers import TransformersBackend
    from training.facts import fact_from_raw
    from training.pipeline import TaskInput, run_pipeline
    from training.rewards import CandidateInput, RewardSpec, build_simulator, candidates_scores, elicitation_rewards
    from training.simulator import SimulationItem

    started = time.monotonic()
    spec = RewardSpec.from_dict(json.loads((out / "config.json").read_text())["reward_spec"])
    simulator = build_simulator(spec)
    facts = {t["key"]: [fact_from_raw(f) for f in t["hidden_facts"]] for t in test_tasks}
    outputs = run_pipeline(
        [TaskInput(t["key"], t["masked_task"], facts[t["key"]]) for t in test_tasks],
        backend=TransformersBackend(path),
        params=dict(DECODING),
        simulator=simulator,
        simulator_name=spec.label(),
    )
    inputs = [CandidateInput(o.questions, o.outline, t["masked_task"], facts[t["key"]])
              for t, o in zip(test_tasks, outputs, strict=True)]  # fmt: skip
    scores = candidates_scores(inputs, spec=spec, simulator=simulator)
    breakdowns = elicitation_rewards(
        [SimulationItem(i.questions, i.hidden_facts, i.masked_task) for i in inputs], simulator, spec
    )
    rows = []
    for task, output, score, breakdown in zip(test_tasks, outputs, scores, breakdowns, strict=True):
        score["on_topic"] = float(breakdown.on_topic)
        rows.append({"key": task["key"], "questions": output.questions, "outline": output.outline[:2000], **score})
    result = {"model": path, "seconds": round(time.monotonic() - started, 1), "tasks": rows}
    target.write_text(json.dumps(result, indent=1))
    return result


def curve(out: Path) -> list[dict[str, Any]]:
    path = out / "train" / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def report(config: dict[str, Any], results: dict[str, dict], rows: list[dict[str, Any]], out: Path) -> None:
    import numpy as np

    from training.autoeval import bootstrap_mean, paired_difference

    metrics = ("reward", "coverage", "on_topic", "outline_coverage")
    n = len(results["base"]["tasks"])
    print(f"\n== learning check: {Path(config['model']).name}; {config['warm_steps']} warm-start steps, "
          f"{config['grpo_steps']} GRPO steps; {n} held-out tasks; decoding {DECODING} ==")  # fmt: skip
    from training.rewards import RewardSpec

    print(f"reward spec (training and evaluation): {RewardSpec.from_dict(config['reward_spec']).label()}")
    print(f"{'model':20s} " + " ".join(f"{m:>24s}" for m in metrics))
    for name in MODELS:
        if name not in results:
            continue
        tasks = results[name]["tasks"]
        cells = []
        for m in metrics:
            values = [t[m] for t in tasks]
            if m == "on_topic":
                cells.append(f"{int(sum(values))} of {len(values)}")
            else:
                b = bootstrap_mean(values, n_boot=10_000)
                cells.append(f"{b['mean']:+.3f} [{b['lo']:+.3f}, {b['hi']:+.3f}]")
        print(f"{LABELS[name]:20s} " + " ".join(f"{c:>24s}" for c in cells))
    print("paired difference from the base (per-task, bootstrap 95% interval over tasks, 10,000 resamples):")
    base = {t["key"]: t for t in results["base"]["tasks"]}
    for name in ("warm", "grpo"):
        if name not in results:
            continue
        cells = []
        for m in metrics:
            mine = results[name]["tasks"]
            d = paired_difference([t[m] for t in mine], [base[t["key"]][m] for t in mine], n_boot=10_000)
            b = d["difference"]
            excl = "excludes 0" if b["lo"] > 0 or b["hi"] < 0 else "includes 0"
            cells.append(f"{b['mean']:+.3f} [{b['lo']:+.3f}, {b['hi']:+.3f}] {excl}")
        print(f"  {LABELS[name]:18s} " + " | ".join(f"{m}: {c}" for m, c in zip(metrics, cells, strict=True)))
    grpo = [r for r in rows if r.get("phase") == "grpo"]
    warm = [r for r in rows if r.get("phase") == "sft"]
    if warm:
        losses = [r["values"].get("loss") for r in warm]
        print(f"warm-start loss: first {losses[0]:.3f}, last {losses[-1]:.3f} over {len(warm)} steps")
    if grpo:
        key = "rewards/elicitation_reward/mean"
        steps = np.array([r["step"] for r in grpo], dtype=float)
        values = np.array([r["values"].get(key, float("nan")) for r in grpo], dtype=float)
        zero = [r["values"].get("frac_reward_zero_std/elicitation_reward") for r in grpo]
        print("GRPO training reward (train tasks, elicitation reward mean per step):")
        print("  " + " ".join(f"{int(s)}:{v:+.3f}" for s, v in zip(steps, values, strict=True)))
        print("  share of groups with zero elicitation-reward variance: "
              + " ".join(f"{z:.2f}" if isinstance(z, float) else "-" for z in zero))  # fmt: skip
        ok = ~np.isnan(values)
        if ok.sum() >= 2:
            slope = float(np.polyfit(steps[ok], values[ok], 1)[0])
            half = ok.sum() // 2
            first, second = values[ok][:half].mean(), values[ok][half:].mean()
            print(f"  trend: slope {slope:+.4f} per step; mean first half {first:+.3f}, second half {second:+.3f} "
                  f"({'rising' if slope > 0 and second > first else 'not rising'})")  # fmt: skip
        write_curve_svg(grpo, warm, out / "training-curve.svg")
        print(f"  plot: {out / 'training-curve.svg'}")


def write_curve_svg(grpo: list[dict], warm: list[dict], path: Path) -> None:
    from training.views_runs import line_chart_svg

    series = {
        "elicitation reward": [(r["step"], r["values"]["rewards/elicitation_reward/mean"]) for r in grpo
                               if "rewards/elicitation_reward/mean" in r["values"]],
        "coverage": [(r["step"], r["values"]["rewards/coverage/mean"]) for r in grpo
                     if "rewards/coverage/mean" in r["values"]],
    }  # fmt: skip
    markers = [(max(r["step"] for r in warm) + 0.5, "warm start | GRPO")] if warm else []
    path.write_text(line_chart_svg("GRPO training reward (train tasks)", series, width=720, markers=markers))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / "var" / "models" / "smollm2-135m-instruct"))
    parser.add_argument("--out", default=str(ROOT / "var" / "learning-check"))
    parser.add_argument("--warm-steps", type=int, default=40)
    parser.add_argument("--grpo-steps", type=int, default=20)
    parser.add_argument("--prompts-per-step", type=int, default=4, help="GRPO prompts per step (× 8 completions)")
    parser.add_argument("--max-completion-length", type=int, default=128)
    parser.add_argument("--fresh", action="store_true", help="discard earlier results in --out")
    parser.add_argument(
        "--only", choices=MODELS, help="only evaluate this model (e.g. the warm start while GRPO still trains)"
    )
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pigplatform.settings")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import django

    django.setup()
    if not (Path(args.model) / "config.json").is_file():
        raise SystemExit(f"no model in {args.model} (run `python manage.py prepare_smollm2` first)")
    out = Path(args.out)
    config = configuration(args)
    saved = out / "config.json"
    if args.fresh and out.exists():
        import shutil

        shutil.rmtree(out)
    if saved.is_file() and json.loads(saved.read_text()) != config:
        raise SystemExit(f"{out} holds results of another configuration; use --fresh or another --out")
    out.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps(config, indent=1))
    started = time.monotonic()
    train_tasks, test_tasks, examples = load_demo()
    print(f"demo: {len(train_tasks)} train tasks, {len(test_tasks)} held-out tasks, {len(examples)} warm-start "
          "examples (proactive-rl, train split)", flush=True)  # fmt: skip
    if args.only:
        path = model_paths(config, out)[args.only]
        if not (Path(path) / "config.json").is_file() and not (Path(path) / "adapter_config.json").is_file():
            raise SystemExit(f"no {LABELS[args.only]} model in {path} yet")
        print(f"evaluated {LABELS[args.only]} ({evaluate(args.only, path, test_tasks, out)['seconds']} s)")
        return
    results = {"base": evaluate("base", config["model"], test_tasks, out)}
    print(f"evaluated base ({results['base']['seconds']} s)", flush=True)
    train(config, out, train_tasks, examples)
    paths = model_paths(config, out)
    for name in ("warm", "grpo"):
        results[name] = evaluate(name, paths[name], test_tasks, out)
        print(f"evaluated {LABELS[name]} ({results[name]['seconds']} s)", flush=True)
    report(config, results, curve(out), out)
    print(f"total {time.monotonic() - started:.0f} s this invocation (finished stages are reused)")


if __name__ == "__main__":
    main()
