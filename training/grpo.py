"""GRPO training of a questioner with TRL, as a child process started by `accelerate launch`.

    python -m accelerate.commands.launch --num_processes 1 --cpu -m training.grpo --spec spec.json [--run-id N]

The spec (a JSON file, see `TrainingSpec`) holds everything the run needs: model path, tasks, hyperparameters,
reward configuration, output directory. With `--run-id` the process reports to the platform's database through
Django (metrics, step, heartbeat, last completions, cancel flag); without it, it appends metrics to a JSONL
file and stops when a `CANCEL` file appears in the output directory — the mode the GPU check uses without a
database. This module imports nothing from Django at import time.

Exit status 0 also when the run stopped early (cancel requested; or superseded: resumed elsewhere, or its
supervisor died): `accelerate launch` turns every non-zero status into 1, so the reason is written to
<output_dir>/STOPPED and printed instead. 2 is a bad spec, anything else a crash.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .prompts import questions_prompt

EXIT_BAD_SPEC = 2
STOPPED_FILE = "STOPPED"
FINAL_DIR = "final"
FINAL_INFO = "pig_training.json"

logger = logging.getLogger("training.grpo")

DEFAULT_HYPERPARAMETERS: dict[str, Any] = {
    "learning_rate": 1e-5,
    "max_steps": 100,
    # One step = one generation batch of per_device_train_batch_size × processes × gradient_accumulation_steps
    # completions (TRL 1.16), i.e. 8 × 1 × 4 = 32 = 4 prompts × 8 completions: groups of 8 give GRPO something
    # to compare, several prompts per step keep one task from dominating an update.
    "num_generations": 8,
    "per_device_train_batch_size": 8,
    "gradient_accumulation_steps": 4,
    "max_completion_length": 256,
    "beta": 0.0,
    "temperature": 1.0,
    "seed": 42,
    "logging_steps": 1,
    "save_steps": 50,
    "save_total_limit": 2,
    "gradient_checkpointing": False,
    "dtype": "auto",  # auto: bfloat16 on CUDA when supported, float32 on CPU
    "lora": False,
    "lora_r": 16,
    "lora_alpha": 32,
    "lora_dropout": 0.05,
    "lora_target_modules": "all-linear",
    "lora_merge": False,  # save the merged model instead of the adapter (vLLM serving prefers it)
    "use_vllm": "auto",  # auto: on when CUDA is used and vllm is importable
    "vllm_mode": "colocate",  # or "server" (then vllm_server_base_url, a `trl vllm-serve` on another GPU)
    "vllm_server_base_url": "",
    "vllm_gpu_memory_utilization": 0.3,
    "completions_to_keep": 8,
    # Warm start (SFT phase; its steps and example source are fields of the run, see training/sft.py).
    "sft_learning_rate": 1e-4,
    "sft_batch_size": 8,
    "sft_max_length": 1024,
}
_POSITIVE_INTS = (
    "max_steps",
    "num_generations",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "max_completion_length",
    "logging_steps",
    "save_steps",
    "lora_r",
    "completions_to_keep",
    "sft_batch_size",
    "sft_max_length",
)


def merged_hyperparameters(overrides: dict[str, Any] | None) -> dict[str, Any]:
    return {**DEFAULT_HYPERPARAMETERS, **(overrides or {})}


def hyperparameter_problems(overrides: dict[str, Any] | None, *, num_processes: int = 1) -> list[str]:
    """Everything wrong with a run's hyperparameters, checked before any model is loaded."""
    if overrides is not None and not isinstance(overrides, dict):
        return ["hyperparameters must be a JSON object"]
    problems = [f"unknown hyperparameter {k!r}" for k in sorted(set(overrides or {}) - set(DEFAULT_HYPERPARAMETERS))]
    hp = merged_hyperparameters(overrides)
    for key in _POSITIVE_INTS:
        value = hp[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            problems.append(f"{key} must be a positive integer, not {value!r}")
    for key in ("learning_rate", "temperature", "sft_learning_rate"):
        if not _is_number(hp[key]) or hp[key] <= 0:
            problems.append(f"{key} must be a positive number, not {hp[key]!r}")
    if not _is_number(hp["beta"]) or hp["beta"] < 0:
        problems.append(f"beta must be a non-negative number, not {hp['beta']!r}")
    if problems:
        return problems
    if hp["num_generations"] < 2:
        problems.append(
            "num_generations must be at least 2: GRPO compares completions within a group "
            f"(got {hp['num_generations']})"
        )
    effective = hp["per_device_train_batch_size"] * num_processes * hp["gradient_accumulation_steps"]
    if effective % hp["num_generations"]:
        problems.append(
            f"the effective batch (per_device_train_batch_size {hp['per_device_train_batch_size']} × processes "
            f"{num_processes} × gradient_accumulation_steps {hp['gradient_accumulation_steps']} = {effective}) "
            f"must be divisible by num_generations ({hp['num_generations']})"
        )
    if hp["dtype"] not in ("auto", "float32", "bfloat16", "float16"):
        problems.append(f"dtype must be auto, float32, bfloat16 or float16, not {hp['dtype']!r}")
    if hp["use_vllm"] not in ("auto", True, False):
        problems.append('use_vllm must be true, false or "auto"')
    if hp["vllm_mode"] not in ("colocate", "server"):
        problems.append('vllm_mode must be "colocate" or "server"')
    return problems


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def questioner_messages(masked_task: str, max_questions: int = 5) -> list[dict[str, str]]:
    # The same prompt generation uses: the trained policy is then asked exactly as it was trained.
    return questions_prompt(masked_task, max_questions)


@dataclass
class TrainingSpec:
    model_path: str
    tasks: list[dict[str, Any]]  # {"masked_task": str, "hidden_facts": [str]}
    output_dir: str
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    reward_config: dict[str, Any] = field(default_factory=dict)
    reward_spec: dict[str, Any] = field(default_factory=dict)  # the run's frozen RewardSpec; {}: from the config
    # The K in the questioner prompt: what the registered System will be asked with; 0 → the reward spec's K.
    max_questions: int = 0
    device: str = "auto"
    resume: bool = False
    run_id: int | None = None
    attempt: int = 0
    deepspeed_config: str = ""
    metrics_file: str = ""  # file mode: where metrics go when there is no run in a database
    supervisor_pid: int | None = None
    # {"source": "system:NAME" | "study:SLUG", "steps": N, "examples": [{"masked_task", "questions"}]}
    warm_start: dict[str, Any] = field(default_factory=dict)

    def save(self, path: Path | str) -> Path:
        path = Path(path)
        path.write_text(json.dumps(asdict(self), indent=1), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: Path | str) -> TrainingSpec:
        return cls(**json.loads(Path(path).read_text(encoding="utf-8")))


def launch_command(
    spec_path: Path | str,
    *,
    device: str = "auto",
    num_processes: int = 1,
    deepspeed_config: str = "",
    run_id: int | None = None,
    python: str = sys.executable,
    cpu_threads: int = 0,
    module: str = "training.grpo",
) -> list[str]:
    """The `accelerate launch` command line: one process on CPU, N processes (optionally DeepSpeed) on GPUs.
    `module` is the training entry point: `training.grpo` or `training.dpo`."""
    cmd = [python, "-m", "accelerate.commands.launch", "--num_machines", "1", "--dynamo_backend", "no"]
    cmd += ["--num_processes", str(num_processes), "--mixed_precision", "no"]
    if device == "cpu":
        # Small models train several times faster with one thread than with threads fighting over few cores.
        threads = cpu_threads or os.cpu_count() or 1
        cmd += ["--cpu", "--num_cpu_threads_per_process", str(threads)]
    elif deepspeed_config:
        cmd += ["--use_deepspeed", "--deepspeed_config_file", deepspeed_config]
    elif num_processes > 1:
        cmd.append("--multi_gpu")
    cmd += ["-m", module, "--spec", str(spec_path)]
    if run_id is not None:
        cmd += ["--run-id", str(run_id)]
    return cmd


def build_dataset(spec: TrainingSpec):
    from datasets import Dataset

    k = questioner_k(spec)
    rows = [
        {
            "prompt": questioner_messages(task["masked_task"], k),
            "masked_task": task["masked_task"],
            "hidden_facts": list(task["hidden_facts"]),
            "fact_slots": list(task.get("fact_slots") or []),
        }
        for task in spec.tasks
    ]
    return Dataset.from_list(rows)


def resolve_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device is cuda but CUDA is not available to the training process")
    return requested


def vllm_available() -> bool:
    from trl.import_utils import is_vllm_available

    return bool(is_vllm_available())


def grpo_config_kwargs(
    spec: TrainingSpec, *, device: str, has_vllm: bool = False, bf16_supported: bool = False
) -> dict[str, Any]:
    """GRPOConfig arguments from a spec. Pure apart from the facts passed in, so it can be unit-tested."""
    hp = merged_hyperparameters(spec.hyperparameters)
    _, reward_weights = _reward_setup(spec)
    kwargs: dict[str, Any] = {
        "output_dir": spec.output_dir,
        "learning_rate": hp["learning_rate"],
        "max_steps": hp["max_steps"],
        "num_generations": hp["num_generations"],
        "per_device_train_batch_size": hp["per_device_train_batch_size"],
        "gradient_accumulation_steps": hp["gradient_accumulation_steps"],
        "max_completion_length": hp["max_completion_length"],
        "beta": hp["beta"],
        "temperature": hp["temperature"],
        "seed": hp["seed"],
        "logging_steps": hp["logging_steps"],
        "save_strategy": "steps",
        "save_steps": hp["save_steps"],
        "save_total_limit": hp["save_total_limit"],
        "gradient_checkpointing": hp["gradient_checkpointing"],
        "reward_weights": reward_weights,
        "report_to": [],
        "disable_tqdm": True,  # the callback prints one line per logged step; bars only clutter the run log
        "log_completions": False,
    }
    kwargs.update(
        device_kwargs(hp["dtype"], device=device, bf16_supported=bf16_supported, deepspeed=spec.deepspeed_config)
    )
    if device != "cpu" and (hp["use_vllm"] is True or (hp["use_vllm"] == "auto" and has_vllm)):
        kwargs.update(use_vllm=True, vllm_mode=hp["vllm_mode"])
        if hp["vllm_mode"] == "colocate":
            kwargs["vllm_gpu_memory_utilization"] = hp["vllm_gpu_memory_utilization"]
        elif hp["vllm_server_base_url"]:
            kwargs["vllm_server_base_url"] = hp["vllm_server_base_url"]
    return kwargs


def device_kwargs(dtype: str, *, device: str, bf16_supported: bool, deepspeed: str = "") -> dict[str, Any]:
    """Trainer arguments for the device and precision (GRPO and DPO): float32 on CPU; bf16 on CUDA by default."""
    if device == "cpu":
        return {"use_cpu": True, "bf16": False}
    use_bf16 = dtype == "bfloat16" or (dtype == "auto" and bf16_supported)
    kwargs: dict[str, Any] = {"bf16": use_bf16, "fp16": dtype == "float16"}
    if dtype != "float32":
        kwargs["model_init_kwargs"] = {"dtype": "bfloat16" if use_bf16 else "float16"}
    if deepspeed:
        kwargs["deepspeed"] = deepspeed
    return kwargs


def questioner_k(spec: TrainingSpec) -> int:
    """The K of the questioner prompt, in GRPO and in the warm start alike."""
    return spec.max_questions or _reward_spec(spec).k


def _reward_spec(spec: TrainingSpec):
    from .rewards import RewardSpec, spec_for_run

    return RewardSpec.from_dict(spec.reward_spec) if spec.reward_spec else spec_for_run(spec.reward_config)


def _reward_setup(spec: TrainingSpec):
    from .rewards import reward_setup

    return reward_setup(spec.reward_config, _reward_spec(spec))


def peft_config(spec: TrainingSpec):
    hp = merged_hyperparameters(spec.hyperparameters)
    if not hp["lora"]:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=hp["lora_r"],
        lora_alpha=hp["lora_alpha"],
        lora_dropout=hp["lora_dropout"],
        target_modules=hp["lora_target_modules"],
        task_type="CAUSAL_LM",
    )


def zero_std_share(rewards: list[float | None], group_size: int) -> float | None:
    """Share of GRPO groups (consecutive runs of `group_size` completions of one prompt) whose rewards are all
    equal: such a group has zero advantage everywhere and teaches nothing."""
    groups = [rewards[i : i + group_size] for i in range(0, len(rewards) - group_size + 1, group_size)]
    scored = [[r for r in g if r is not None] for g in groups]
    scored = [g for g in scored if g]
    if not scored:
        return None
    return sum(1 for g in scored if max(g) - min(g) <= 1e-8) / len(scored)


def with_zero_std_logging(func: Any, group_size: int) -> Any:
    """Log `frac_reward_zero_std/<name>` for one reward function (TRL logs it only for the weighted sum, where a
    dense shaping term can hide that the elicitation reward itself gives no signal).

    TRL hands each process whole groups when per-process completions are a multiple of num_generations (the
    default configuration), so the local share is the share of the step."""
    name = func.__name__

    def logged(*args: Any, **kwargs: Any) -> list[float | None]:
        rewards = func(*args, **kwargs)
        log_metric = kwargs.get("log_metric")
        share = zero_std_share(list(rewards), group_size)
        if log_metric is not None and share is not None:
            log_metric(f"frac_reward_zero_std/{name}", share)
        return rewards

    logged.__name__ = name
    return logged


def build_trainer(spec: TrainingSpec, callbacks: list | None = None, *, model_path: str | None = None):
    """The GRPO trainer; `model_path` (the warm-started model) overrides the spec's base model."""
    import torch
    from trl import GRPOConfig, GRPOTrainer

    device = resolve_device(spec.device)
    bf16 = device == "cuda" and torch.cuda.is_bf16_supported()
    config = GRPOConfig(**grpo_config_kwargs(spec, device=device, has_vllm=vllm_available(), bf16_supported=bf16))
    reward_funcs, _ = _reward_setup(spec)
    reward_funcs = [with_zero_std_logging(f, config.num_generations) for f in reward_funcs]
    return GRPOTrainer(
        model=model_path or spec.model_path,
        reward_funcs=reward_funcs,
        args=config,
        train_dataset=build_dataset(spec),
        peft_config=peft_config(spec),
        callbacks=callbacks or [],
    )


def save_final(trainer, spec: TrainingSpec, *, base_model_path: str | None = None) -> Path:
    """Write the finished model (or LoRA adapter) with its tokenizer to <output_dir>/final."""
    hp = merged_hyperparameters(spec.hyperparameters)
    final = Path(spec.output_dir) / FINAL_DIR
    adapter = bool(hp["lora"]) and not hp["lora_merge"]
    if hp["lora"] and hp["lora_merge"]:
        merged = trainer.accelerator.unwrap_model(trainer.model).merge_and_unload()
        if trainer.accelerator.is_main_process:
            merged.save_pretrained(final)
    else:
        trainer.save_model(str(final))
    if trainer.accelerator.is_main_process:
        trainer.processing_class.save_pretrained(final)
        info = {
            "run_id": spec.run_id,
            # An adapter's base: the warm-started model when there was a warm start.
            "base_model_path": base_model_path or spec.model_path,
            "initial_model_path": spec.model_path,
            "adapter": adapter,
            "steps": trainer.state.global_step,
            "warm_start_steps": int((getattr(spec, "warm_start", None) or {}).get("steps", 0) or 0),
            "warm_start_source": (getattr(spec, "warm_start", None) or {}).get("source", ""),
        }
        (final / FINAL_INFO).write_text(json.dumps(info, indent=1), encoding="utf-8")
    return final


WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors", "pytorch_model.bin")


def checkpoint_is_complete(path: Path) -> bool:
    # The Trainer writes weights and optimizer first and trainer_state.json last, straight into the final
    # folder: a worker killed mid-save leaves a folder that looks like the newest checkpoint but is not one.
    return (path / "trainer_state.json").is_file() and any((path / name).is_file() for name in WEIGHT_FILES)


def last_complete_checkpoint(output_dir: str | Path) -> str | None:
    """The newest complete `checkpoint-N`; incomplete ones are renamed `incomplete-checkpoint-N` so that
    neither resuming nor the Trainer's rotation of old checkpoints trips over them."""
    root = Path(output_dir)
    if not root.is_dir():
        return None
    found = sorted(
        (p for p in root.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()),
        key=lambda p: int(p.name.split("-")[-1]),
        reverse=True,
    )
    for path in found:
        if checkpoint_is_complete(path):
            return str(path)
        path.rename(path.with_name(f"incomplete-{path.name}-{os.getpid()}"))
    return None


EXIT_SUPERVISOR_GONE = 3
WATCHDOG_SECONDS = 1.0


def watch_supervisor(pid: int | None, *, every: float = WATCHDOG_SECONDS) -> threading.Thread | None:
    """Exit this process as soon as its supervisor is gone (the worker was killed, or bin/demo stopped it).

    The progress callback notices too, but only when a step ends, and a step can take minutes on a CPU: an
    orphaned run would keep the machine busy and its output folder open for that long."""
    from .callbacks import _process_alive

    if not pid:
        return None

    def watch() -> None:
        while _process_alive(pid):
            time.sleep(every)
        print(f"supervisor {pid} is gone: stopping at once", file=sys.stderr, flush=True)
        os._exit(EXIT_SUPERVISOR_GONE)

    thread = threading.Thread(target=watch, name="supervisor-watchdog", daemon=True)
    thread.start()
    return thread


def _stop(trainer, callback, stopped: Path, phase: str) -> int:
    if trainer.accelerator.is_main_process and callback.stop_reason == "cancelled":
        stopped.write_text(callback.stop_reason, encoding="utf-8")
    print(f"stopped: {callback.stop_reason} at step {trainer.state.global_step} of the {phase}", flush=True)
    return 0


def _release(trainer) -> None:
    # The warm-start model must not stay in (GPU) memory beside the GRPO policy.
    import gc

    import torch

    trainer.accelerator.free_memory()
    del trainer
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_warm_start(spec: TrainingSpec, sink: Any, stopped: Path) -> str | int:
    """The SFT phase (steps 1..S of the run's curve): the warm-started model's path, or an exit status."""
    from .callbacks import RunProgressCallback
    from .sft import build_sft_trainer, finished_warm_start, save_warm_start, warm_start_root

    done = finished_warm_start(spec)
    if done is not None:
        print(f"warm start already finished: {done}", flush=True)
        return str(done)
    callback = RunProgressCallback(sink, completions_to_keep=0, phase="sft")
    trainer = build_sft_trainer(spec, callbacks=[callback])
    callback.trainer = trainer
    checkpoint = last_complete_checkpoint(warm_start_root(spec)) if spec.resume else None
    print(f"warm start: {trainer.args.max_steps} SFT steps on {len(trainer.train_dataset)} examples"
          + (f", resuming from {Path(checkpoint).name}" if checkpoint else ""), flush=True)  # fmt: skip
    trainer.train(resume_from_checkpoint=checkpoint)
    if callback.stop_reason is not None:
        return _stop(trainer, callback, stopped, "warm start")
    final = save_warm_start(trainer, spec)
    print(f"warm start finished: {final}", flush=True)
    _release(trainer)
    return str(final)


def run(spec: TrainingSpec) -> int:
    from .callbacks import RunProgressCallback, sink_for
    from .sft import warm_start_steps

    watch_supervisor(spec.supervisor_pid)
    sink = sink_for(spec)
    stopped = Path(spec.output_dir) / STOPPED_FILE
    stopped.unlink(missing_ok=True)
    offset, model_path = 0, spec.model_path
    if warm_start_steps(spec):
        result = run_warm_start(spec, sink, stopped)
        if isinstance(result, int):
            return result
        offset, model_path = warm_start_steps(spec), result
    keep = merged_hyperparameters(spec.hyperparameters)["completions_to_keep"]
    callback = RunProgressCallback(sink, completions_to_keep=keep, step_offset=offset, phase="grpo")
    trainer = build_trainer(spec, callbacks=[callback], model_path=model_path)
    callback.trainer = trainer
    if not train_resumable(trainer, spec, callback):
        return 0
    final = save_final(trainer, spec, base_model_path=model_path)
    print(f"saved final model to {final}", flush=True)
    return 0


def train_resumable(trainer: Any, spec: Any, callback: Any) -> bool:
    """Train (from the last complete checkpoint when resuming); False when the run stopped early (cancelled:
    a STOPPED file says so; superseded: the output directory is left alone). Shared by GRPO and DPO."""
    checkpoint = last_complete_checkpoint(spec.output_dir) if spec.resume else None
    if spec.resume:
        note = f"resuming from {Path(checkpoint).name}" if checkpoint else "no checkpoint found: starting afresh"
        print(note, flush=True)
    stopped = Path(spec.output_dir) / STOPPED_FILE
    stopped.unlink(missing_ok=True)
    trainer.train(resume_from_checkpoint=checkpoint)
    if callback.stop_reason is None:
        return True
    _stop(trainer, callback, stopped, "training")
    return False


def main(argv: list[str] | None = None) -> int:
    return child_main(argv, prog="python -m training.grpo", doc=__doc__, load=TrainingSpec.load, run=run)


def child_main(argv: list[str] | None, *, prog: str, doc: str, load: Any, run: Any) -> int:
    """The command line of a training child process (`training.grpo`, `training.dpo`): read the spec, set up
    Django when it reports to a run, train."""
    parser = argparse.ArgumentParser(prog=prog, description=doc.split("\n\n")[0])
    parser.add_argument("--spec", required=True, help="JSON file written by the supervisor or by hand")
    parser.add_argument("--run-id", type=int, default=None, help="report to this TrainingRun through Django")
    args = parser.parse_args(argv)
    try:
        spec = load(args.spec)
    except (OSError, TypeError, ValueError) as exc:
        print(f"bad spec {args.spec}: {exc}", file=sys.stderr)
        return EXIT_BAD_SPEC
    if args.run_id is not None:
        spec.run_id = args.run_id
    if spec.run_id is not None:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pigplatform.settings")
        import django

        django.setup()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run(spec)


if __name__ == "__main__":
    sys.exit(main())
