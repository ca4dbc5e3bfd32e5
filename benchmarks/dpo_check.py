"""DPO check: does the platform's DPO path learn noisy human preferences, and how fast does it step?

A synthetic questions study of 540 comparisons (180 tasks × 3 system pairs, 3 simulated annotators each) whose
annotators follow a known rule with noise: they prefer a question set that asks about the budget (the hidden
fact) and, less strongly, one with more questions; 15% of votes are ties and 15% are flipped. Its comparisons go
through the platform's pair builder (`training.preferences.build_pairs`, majority aggregation) and held-out split
(20% of tasks, seeded), then through `python -m training.dpo` under `accelerate launch` (file mode, no
database: the code path of a training run minus the database writes). Prints pairs used and dropped by reason,
held-out preference accuracy of base and trained model with 95% bootstrap intervals over held-out tasks, and
steps per second. No Django, PostgreSQL or Celery needed, so `benchmarks/gpu_check.sh` runs it on a GPU too.

    python benchmarks/dpo_check.py                       # tiny Qwen2 built in code, CPU
    python benchmarks/dpo_check.py --model var/models/smollm2-135m-instruct --steps 30
    python benchmarks/dpo_check.py --gpu                 # on CUDA: a ~0.1B Qwen2 built in code, bf16
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
WORK = Path(os.environ.get("DPO_CHECK_DIR", ROOT / "var" / "dpo-check"))
WARMUP_STEPS = 2
MARKER = "What is the budget?"
OTHERS = (
    "Who is the audience?",
    "When is the deadline?",
    "Which format do you prefer?",
    "How long should it be?",
    "What tone should it have?",
    "Who will review it?",
)
TASKS, SYSTEMS, VOTES, TIE_RATE, FLIP_RATE = 180, ("asker", "lister", "terse"), 3, 0.15, 0.15


def synthetic_study(seed: int = 0):
    """ComparisonVotes as the platform's reader would yield them, plus each comparison's rule-preferred side."""
    from training.preferences import CandidateText, ComparisonVotes

    rng = np.random.default_rng(seed)
    comparisons, rule = [], {}
    for t in range(TASKS):
        others = [OTHERS[i] for i in rng.permutation(len(OTHERS))]
        questions = {
            "asker": [MARKER, others[0]] if rng.random() < 0.9 else [others[0], others[1]],
            "lister": others[1:4] if rng.random() < 0.8 else [MARKER, *others[1:3]],
            "terse": [others[4]],
        }
        score = {s: 2.0 * (MARKER in q) + 0.5 * len(q) for s, q in questions.items()}
        for x, y in itertools.combinations(SYSTEMS, 2):
            if rng.random() < 0.5:
                x, y = y, x
            cid = len(comparisons) + 1
            choices = []
            for _ in range(VOTES):
                roll = rng.random()
                p_x = 1 / (1 + math.exp(-(score[x] - score[y])))
                vote = "a" if rng.random() < p_x else "b"
                choices.append(
                    "tie" if roll < TIE_RATE else ({"a": "b", "b": "a"}[vote] if roll < TIE_RATE + FLIP_RATE else vote)
                )
            comparisons.append(
                ComparisonVotes(
                    comparison=cid,
                    kind="questions",
                    task_key=f"task-{t:04d}",
                    masked_task=f"Write an outline for project {t}: a {('grant', 'event', 'course')[t % 3]} plan.",
                    hidden_facts=[f"The budget is ${1000 + t}."],
                    a=CandidateText(x, questions[x], [], ""),
                    b=CandidateText(y, questions[y], [], ""),
                    choices=choices,
                )
            )
            rule[cid] = "\n".join(questions[x] if score[x] >= score[y] else questions[y])
    return comparisons, rule


def build_pairs_and_split(comparisons, seed: int):
    from training.preferences import PairReport, build_pairs, heldout_task_keys

    report = PairReport()
    heldout_keys = heldout_task_keys({c.task_key for c in comparisons}, share=0.2, seed=seed)
    train, heldout, agree = [], [], []
    for pair in build_pairs(comparisons, config={"aggregation": "majority"}, report=report):
        row = {"prompt": pair.prompt, "chosen": pair.chosen, "rejected": pair.rejected, "task_key": pair.task_key}
        (heldout if pair.task_key in heldout_keys else train).append(row)
        if pair.task_key in heldout_keys:
            agree.append(pair)
    return train, heldout, report, agree


def model_for(args) -> tuple[Path, str]:
    if args.model:
        return Path(args.model), "cuda" if args.gpu else "cpu"
    if args.gpu:
        os.environ.setdefault("GPU_CHECK_DIR", str(WORK))
        from gpu_grpo_check import build_models

        return build_models()
    from training.tinymodel import build_tiny_model

    return build_tiny_model(WORK / "tiny-qwen2"), "cpu"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="", help="a local model directory (default: a tiny Qwen2 built in code)")
    parser.add_argument("--gpu", action="store_true", help="train on CUDA (a ~0.1B Qwen2 unless --model)")
    parser.add_argument("--steps", type=int, default=0, help="DPO steps (default 60 on CPU, 100 on GPU)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--lr", type=float, default=0.0, help="learning rate (default: 5e-4 tiny model, 1e-5 --model, 5e-5 --gpu)"
    )
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    model, device = model_for(args)
    comparisons, rule = synthetic_study(args.seed)
    train, heldout, report, heldout_pairs = build_pairs_and_split(comparisons, args.seed)
    on_gpu = device == "cuda"
    hp = {
        "max_steps": args.steps or (100 if on_gpu else 60),
        "per_device_train_batch_size": 16 if on_gpu else 8,
        "learning_rate": args.lr or (1e-5 if args.model else 5e-5 if on_gpu else 5e-4),
        "beta": 0.1,
        "save_steps": 10_000,
        "seed": args.seed,
        "eval_batch_size": 16 if on_gpu else 8,
        "dtype": "bfloat16" if on_gpu else "auto",
        "max_length": 512,
    }
    out = WORK / f"run-{device}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    from training.dpo import EVAL_FILE, DPOSpec
    from training.grpo import launch_command

    spec = DPOSpec(model_path=str(model), train=train, heldout=heldout, output_dir=str(out), hyperparameters=hp,
                   device=device, metrics_file=str(out / "metrics.jsonl"))  # fmt: skip
    cmd = launch_command(spec.save(out / "spec.json"), device=device, module="training.dpo")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false"}
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    print(f"DPO check: {model.name} on {device}, lr {hp['learning_rate']:g}, β {hp['beta']}; {len(comparisons)} "
          f"comparisons ({TASKS} tasks × 3 system pairs, {VOTES} votes each, {TIE_RATE:.0%} ties, "
          f"{FLIP_RATE:.0%} flipped)", flush=True)  # fmt: skip
    started = time.perf_counter()
    # The child's progress lines (held-out scoring, every step) are shown as they come; the rest is kept for errors.
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tail: list[str] = []
    for line in proc.stdout:
        tail = [*tail[-200:], line]
        if line.startswith(("step ", "held-out", "resuming")):
            print("  " + line.rstrip(), flush=True)
    returncode = proc.wait()
    wall = time.perf_counter() - started
    if returncode != 0 or not (out / EVAL_FILE).is_file():
        print("".join(tail[-60:]))
        print(f"DPO run failed (exit {returncode})")
        return 1
    evaluation = json.loads((out / EVAL_FILE).read_text())
    metrics = [json.loads(line)["values"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [m["step_seconds"] for m in metrics if "step_seconds" in m][WARMUP_STEPS:]
    rule_agreement = sum(p.chosen == rule[p.comparison] for p in heldout_pairs) / max(1, len(heldout_pairs))

    dropped = ", ".join(f"{n} {r}" for r, n in report.as_json()["dropped"].items()) or "none"
    print(f"pairs: {report.pairs} used of {report.comparisons} comparisons ({len(train)} train, {len(heldout)} "
          f"held out over {evaluation['tasks']} tasks); dropped: {dropped}")  # fmt: skip
    print(f"held-out pairs whose human majority agrees with the annotators' rule: {rule_agreement:.3f} "
          "(the ceiling a perfect learner of the rule would reach)")  # fmt: skip
    print(f"held-out preference accuracy, {evaluation['pairs']} pairs, 95% bootstrap over {evaluation['tasks']} tasks:")
    for key, label in (("implicit", "implicit reward β·log(π/π_ref)"), ("likelihood", "log-likelihood log π(y|x)")):
        b, t = evaluation["base"][key], evaluation["trained"][key]
        print(f"  {label:32s} base {b['accuracy']:.3f} [{b['lo']:.3f}, {b['hi']:.3f}]   "
              f"trained {t['accuracy']:.3f} [{t['lo']:.3f}, {t['hi']:.3f}]")  # fmt: skip
    last = metrics[-1]
    final = {k: last.get(k, float("nan")) for k in ("loss", "rewards/accuracies", "rewards/margins")}
    print("last step: " + ", ".join(f"{k} {v:.4f}" for k, v in final.items()))
    if steps:
        median = statistics.median(steps)
        print(f"speed on {device}: median step {median:.3f} s ({1 / median:.2f} steps/s, batch "
              f"{hp['per_device_train_batch_size']} pairs, first {WARMUP_STEPS} steps excluded); "
              f"{hp['max_steps']} steps, wall {wall:.0f} s including model load and both held-out passes")  # fmt: skip
    if on_gpu and "gpu_peak_memory_gb" in last:
        print(f"peak GPU memory: {last['gpu_peak_memory_gb']:.2f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
