"""GRPO on a GPU: the platform's code path (training.grpo under accelerate launch, file mode, no database)
against a bare TRL GRPOTrainer script on the same model, data, rewards and settings. Prints step time,
peak GPU memory and the platform's overhead. Falls back to a tiny CPU run when there is no CUDA.

    python benchmarks/gpu_grpo_check.py            # orchestrates both runs and prints the summary
    python benchmarks/gpu_grpo_check.py bare SPEC  # (internal) the bare TRL run, started by accelerate
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WORK = Path(os.environ.get("GPU_CHECK_DIR", ROOT / "var" / "gpu-check"))
WARMUP_STEPS = 2


def build_models() -> tuple[Path, str]:
    """The tiny model, and on CUDA a bigger Qwen2 (same tokenizer, ~0.1B) so step time is measurable."""
    import torch

    from training.tinymodel import build_tiny_model

    tiny = build_tiny_model(WORK / "tiny-qwen2")
    if not torch.cuda.is_available():
        return tiny, "cpu"
    from transformers import Qwen2Config, Qwen2ForCausalLM

    big = WORK / "qwen2-small"
    if not (big / "model.safetensors").exists():
        cfg = Qwen2Config.from_pretrained(tiny)
        shape = {"hidden_size": 768, "intermediate_size": 2048, "num_hidden_layers": 12}
        cfg.update({**shape, "num_attention_heads": 12, "num_key_value_heads": 4, "head_dim": 64})
        # layer_types is per layer: it must grow with num_hidden_layers.
        cfg.layer_types = ["full_attention"] * cfg.num_hidden_layers
        torch.manual_seed(0)
        Qwen2ForCausalLM(cfg).save_pretrained(big)
        for f in tiny.iterdir():
            if f.name.startswith(("tokenizer", "chat_template", "special_tokens")):
                (big / f.name).write_bytes(f.read_bytes())
    return big, "cuda"


def make_spec(model: Path, device: str, name: str):
    from training.grpo import TrainingSpec

    tasks = [json.loads(line) for line in (ROOT / "training" / "configs" / "demo_tasks.jsonl").read_text().splitlines()]
    if device == "cuda":
        hp = {"max_steps": int(os.environ.get("GPU_CHECK_STEPS", 12)), "num_generations": 8,
              "per_device_train_batch_size": 8, "max_completion_length": 128, "learning_rate": 1e-5,
              "save_steps": 10_000, "dtype": "bfloat16",
              "use_vllm": os.environ.get("GPU_CHECK_VLLM", "0") == "1"}  # fmt: skip
    else:
        hp = {"max_steps": 4, "num_generations": 2, "per_device_train_batch_size": 2, "max_completion_length": 16,
              "learning_rate": 1e-4, "save_steps": 10_000}  # fmt: skip
    out = WORK / name
    if out.exists():
        import shutil

        shutil.rmtree(out)
    out.mkdir(parents=True)
    spec = TrainingSpec(model_path=str(model), tasks=tasks, output_dir=str(out), hyperparameters=hp,
                        reward_config={"terms": {"elicitation": 1.0, "concise": 0.1}}, device=device)  # fmt: skip
    return spec, spec.save(out / "spec.json")


def bare(spec_path: str) -> None:
    """Plain TRL: GRPOConfig + GRPOTrainer, same rewards and data; timing by a minimal callback only."""
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from training.grpo import TrainingSpec, grpo_config_kwargs, questioner_messages
    from training.rewards import reward_setup

    spec = TrainingSpec.load(spec_path)
    device = "cuda" if torch.cuda.is_available() and spec.device != "cpu" else "cpu"
    has_vllm = spec.hyperparameters.get("use_vllm") is True
    kwargs = grpo_config_kwargs(spec, device=device, has_vllm=has_vllm, bf16_supported=device == "cuda")
    kwargs["output_dir"] = str(Path(spec.output_dir))
    rows = [{"prompt": questioner_messages(t["masked_task"]), "masked_task": t["masked_task"],
             "hidden_facts": t["hidden_facts"]} for t in spec.tasks]  # fmt: skip
    funcs, _ = reward_setup(spec.reward_config)
    times: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            times.append(time.perf_counter() - self.t)

    trainer = GRPOTrainer(model=spec.model_path, reward_funcs=funcs, args=GRPOConfig(**kwargs),
                          train_dataset=Dataset.from_list(rows), callbacks=[Timer()])  # fmt: skip
    trainer.train()
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else 0.0
    if trainer.accelerator.is_main_process:
        (Path(spec.output_dir) / "bare.json").write_text(json.dumps({"step_seconds": times, "peak_gb": peak}))


def launch(spec_path: Path, device: str, *, bare_run: bool) -> float:
    from training.grpo import launch_command

    cmd = launch_command(spec_path, device=device)
    if bare_run:  # same launcher, the bare script instead of the platform module
        i = cmd.index("-m", 3)
        cmd = [*cmd[:i], str(Path(__file__).resolve()), "bare", str(spec_path)]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    started = time.monotonic()
    log = Path(spec_path).parent / "log.txt"
    with log.open("w") as fh:
        rc = subprocess.call(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
    if rc != 0:
        print(log.read_text()[-4000:])
        raise SystemExit(f"{'bare' if bare_run else 'platform'} run failed (exit {rc}); log: {log}")
    return time.monotonic() - started


def median_after_warmup(values: list[float]) -> float:
    tail = values[WARMUP_STEPS:] or values
    return statistics.median(tail)


def main() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    model, device = build_models()
    import torch

    gpu = torch.cuda.get_device_name(0) if device == "cuda" else "none (CPU fallback)"
    results = {}
    for name, is_bare in (("bare", True), ("platform", False)):
        spec, path = make_spec(model, device, name)
        wall = launch(path, device, bare_run=is_bare)
        if is_bare:
            data = json.loads((Path(spec.output_dir) / "bare.json").read_text())
            steps, peak = data["step_seconds"], data["peak_gb"]
        else:
            lines = [json.loads(x) for x in (Path(spec.output_dir) / "metrics.jsonl").read_text().splitlines()]
            steps = [x["values"]["step_seconds"] for x in lines]
            peak = max((x["values"].get("gpu_peak_memory_gb", 0.0) for x in lines), default=0.0)
        results[name] = {"median_step_s": median_after_warmup(steps), "steps": len(steps), "peak_gb": peak,
                         "wall_s": wall}  # fmt: skip
    b, p = results["bare"], results["platform"]
    overhead = (p["median_step_s"] / b["median_step_s"] - 1) * 100
    print("== GRPO GPU check ==")
    print(f"device: {gpu}; model: {model.name}; torch {torch.__version__}")
    for name, r in results.items():
        print(f"{name:9s} median step {r['median_step_s']:.3f} s over {r['steps']} steps (first {WARMUP_STEPS} "
              f"excluded), peak GPU memory {r['peak_gb']:.2f} GiB, wall {r['wall_s']:.0f} s")  # fmt: skip
    verdict = "OK" if overhead < 5 else "OVER TARGET"
    print(f"platform overhead per step: {overhead:+.1f}% (target < 5%: {verdict})")


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "bare":
        bare(sys.argv[2])
    else:
        main()
