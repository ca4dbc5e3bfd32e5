"""Warm start: a supervised phase (TRL `SFTTrainer`) of a training run, before GRPO, in the same process.

A small instruct model rarely asks an on-topic question at first, so every completion of a GRPO group scores
the same elicitation reward and the group carries no learning signal. A few supervised steps on question sets
that are known to be good (a System's train-split candidates, or a study's human-preferred ones) give GRPO
something to compare.

The examples use exactly the prompt and output format of generation (`training/prompts.py`): the questioner
prompt, and the questions one per line. The phase writes to `<output_dir>/warm-start/` (its own checkpoints,
so cancel and resume work inside it) and ends with a full model in `<output_dir>/warm-start/final` (a LoRA
adapter is merged into its base), from which GRPO starts. Imports nothing from Django."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .prompts import questions_completion, questions_prompt

if TYPE_CHECKING:
    from .grpo import TrainingSpec

WARM_START_DIR = "warm-start"
DONE_FILE = "pig_warm_start.json"


def sft_rows(examples: list[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """Conversational prompt–completion rows: TRL then computes the loss on the completion only."""
    rows = []
    for example in examples:
        questions = [q.strip() for q in example["questions"] if q and q.strip()][:k]
        if not questions:
            continue
        rows.append(
            {
                "prompt": questions_prompt(example["masked_task"], k),
                "completion": [{"role": "assistant", "content": questions_completion(questions)}],
            }
        )
    return rows


def warm_start_steps(spec: TrainingSpec) -> int:
    return int((spec.warm_start or {}).get("steps", 0) or 0)


def warm_start_root(spec: TrainingSpec) -> Path:
    return Path(spec.output_dir) / WARM_START_DIR


def finished_warm_start(spec: TrainingSpec) -> Path | None:
    """The warm-started model when the phase has finished (a resumed run goes straight to GRPO)."""
    final = warm_start_root(spec) / "final"
    return final if (final / DONE_FILE).is_file() else None


def sft_config_kwargs(spec: TrainingSpec, *, device: str, bf16_supported: bool = False) -> dict[str, Any]:
    from .grpo import merged_hyperparameters

    hp = merged_hyperparameters(spec.hyperparameters)
    kwargs: dict[str, Any] = {
        "output_dir": str(warm_start_root(spec)),
        "max_steps": warm_start_steps(spec),
        "learning_rate": hp["sft_learning_rate"],
        "per_device_train_batch_size": hp["sft_batch_size"],
        "gradient_accumulation_steps": 1,
        "seed": hp["seed"],
        "logging_steps": 1,
        "save_strategy": "steps",
        "save_steps": hp["save_steps"],
        "save_total_limit": hp["save_total_limit"],
        "gradient_checkpointing": hp["gradient_checkpointing"],
        "max_length": hp["sft_max_length"],
        "report_to": [],
        "disable_tqdm": True,
        "dataset_num_proc": None,
    }
    if device == "cpu":
        kwargs.update(use_cpu=True, bf16=False)
    else:
        dtype = hp["dtype"]
        use_bf16 = dtype == "bfloat16" or (dtype == "auto" and bf16_supported)
        kwargs.update(bf16=use_bf16, fp16=dtype == "float16")
        if dtype != "float32":
            kwargs["model_init_kwargs"] = {"dtype": "bfloat16" if use_bf16 else "float16"}
        if spec.deepspeed_config:
            kwargs["deepspeed"] = spec.deepspeed_config
    return kwargs


def build_sft_trainer(spec: TrainingSpec, callbacks: list | None = None):
    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from .grpo import peft_config, questioner_k, resolve_device

    device = resolve_device(spec.device)
    bf16 = device == "cuda" and torch.cuda.is_bf16_supported()
    rows = sft_rows(spec.warm_start.get("examples", []), questioner_k(spec))
    if not rows:
        raise ValueError("the warm start has no examples with questions")
    config = SFTConfig(**sft_config_kwargs(spec, device=device, bf16_supported=bf16))
    return SFTTrainer(
        model=spec.model_path,
        args=config,
        train_dataset=Dataset.from_list(rows),
        peft_config=peft_config(spec),
        callbacks=callbacks or [],
    )


def save_warm_start(trainer, spec: TrainingSpec) -> Path:
    """A full model GRPO can start from: a LoRA adapter is merged into its base first."""
    final = warm_start_root(spec) / "final"
    model = trainer.accelerator.unwrap_model(trainer.model)
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    if trainer.accelerator.is_main_process:
        model.save_pretrained(final)
        trainer.processing_class.save_pretrained(final)
        info = {"source": spec.warm_start.get("source", ""), "steps": trainer.state.global_step,
                "examples": len(spec.warm_start.get("examples", [])), "base_model_path": spec.model_path}  # fmt: skip
        # Written last: its presence means the phase finished and the weights beside it are complete.
        (final / DONE_FILE).write_text(json.dumps(info, indent=1), encoding="utf-8")
    return final
