"""DPO training on human preference pairs with TRL, as a child process started by `accelerate launch`.

    python -m accelerate.commands.launch --num_processes 1 --cpu -m training.dpo --spec spec.json [--run-id N]

The same machinery as `training.grpo`: a JSON spec (`DPOSpec`: model path, the train and held-out pairs built by
`training.preferences`, hyperparameters, output directory), `RunProgressCallback` for metrics, heartbeat and
cancel, checkpoints and resume, exit status 0 also when stopped early. Before training and after it, the
held-out pairs are scored: the share where the implicit reward β·log(π/π_ref) — and, as a second view, the
policy's own log-likelihood — ranks the human-preferred response higher, with a 95% bootstrap interval over
held-out tasks. This module imports nothing from Django at import time.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
import sys
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from .grpo import FINAL_INFO, child_main, device_kwargs, peft_config, save_final, train_resumable
from .preferences import ranked, task_bootstrap_accuracy

logger = logging.getLogger("training.dpo")
EVAL_FILE = "heldout_eval.json"

DEFAULT_DPO_HYPERPARAMETERS: dict[str, Any] = {
    "learning_rate": 5e-6,
    "max_steps": 100,
    "per_device_train_batch_size": 4,
    "gradient_accumulation_steps": 1,
    "beta": 0.1,
    "loss_type": "sigmoid",  # or a list, combined with loss_weights (TRL's MPO-style mixtures)
    "loss_weights": None,
    "label_smoothing": 0.0,
    "max_length": 1024,
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
    "lora_merge": False,
    "eval_batch_size": 4,
    "bootstrap_rounds": 2000,
}
_POSITIVE_INTS = (
    "max_steps",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "max_length",
    "logging_steps",
    "save_steps",
    "lora_r",
    "eval_batch_size",
    "bootstrap_rounds",
)


def merged_dpo_hyperparameters(overrides: dict[str, Any] | None) -> dict[str, Any]:
    return {**DEFAULT_DPO_HYPERPARAMETERS, **(overrides or {})}


@cache
def dpo_loss_types() -> tuple[str, ...]:
    """The loss types the installed TRL's `DPOConfig` documents for `loss_type` (its field metadata lists
    them; the trainer refuses anything else only once a model is loaded, which is too late to tell a researcher)."""
    from trl import DPOConfig

    help_text = {f.name: f for f in dataclasses.fields(DPOConfig)}["loss_type"].metadata.get("help", "")
    return tuple(re.findall(r"`'([a-z_]+)'`", help_text.split("If multiple")[0]))


def dpo_hyperparameter_problems(overrides: Any) -> list[str]:
    """Everything wrong with a DPO run's hyperparameters, found before any model is loaded."""
    if overrides is not None and not isinstance(overrides, dict):
        return ["hyperparameters must be a JSON object"]
    unknown = sorted(set(overrides or {}) - set(DEFAULT_DPO_HYPERPARAMETERS))
    problems = [f"unknown hyperparameter {k!r} for DPO" for k in unknown]
    hp = merged_dpo_hyperparameters(overrides)
    for key in _POSITIVE_INTS:
        if not isinstance(hp[key], int) or isinstance(hp[key], bool) or hp[key] < 1:
            problems.append(f"{key} must be a positive integer, not {hp[key]!r}")
    for key in ("learning_rate", "beta"):
        if not _is_number(hp[key]) or hp[key] <= 0:
            problems.append(f"{key} must be a positive number, not {hp[key]!r}")
    if not _is_number(hp["label_smoothing"]) or not 0 <= hp["label_smoothing"] < 0.5:
        problems.append(f"label_smoothing must be a number in [0, 0.5), not {hp['label_smoothing']!r}")
    losses = [hp["loss_type"]] if isinstance(hp["loss_type"], str) else hp["loss_type"]
    if not isinstance(losses, list) or not losses or not all(isinstance(x, str) for x in losses):
        problems.append(f"loss_type must be a name or a list of names, not {hp['loss_type']!r}")
    else:
        known = dpo_loss_types()
        for name in losses:
            if name not in known:
                problems.append(f"unknown loss type {name!r}: TRL's DPOConfig accepts {', '.join(known)}")
        if "exo_pair" in losses and not hp["label_smoothing"]:
            problems.append("loss type exo_pair needs label_smoothing > 0 (the EXO paper suggests 0.001)")
        weights = hp["loss_weights"]
        if weights is not None and (
            not isinstance(weights, list) or len(weights) != len(losses) or not all(_is_number(w) for w in weights)
        ):
            problems.append(f"loss_weights must be a list of {len(losses)} number(s), one per loss type")
    if hp["dtype"] not in ("auto", "float32", "bfloat16", "float16"):
        problems.append(f"dtype must be auto, float32, bfloat16 or float16, not {hp['dtype']!r}")
    for key in ("lora", "lora_merge", "gradient_checkpointing"):
        if not isinstance(hp[key], bool):
            problems.append(f"{key} must be true or false, not {hp[key]!r}")
    return problems


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def chat_template_problems(model_path: str, prompt: list[dict[str, str]]) -> list[str]:
    """Can the base model's tokenizer render this prompt and a reply? Loads the tokenizer only, not the model."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
    except (OSError, ValueError) as exc:
        return [f"the base model's tokenizer cannot be loaded: {exc}"]
    if not getattr(tokenizer, "chat_template", None):
        return ["the base model has no chat template, so it cannot render the chat prompt of the pairs"]
    try:
        tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        tokenizer.apply_chat_template([*prompt, {"role": "assistant", "content": "ok"}], tokenize=False)
    except Exception as exc:  # jinja raises anything (TemplateError, TypeError, its own exceptions)
        return [f"the base model's chat template cannot render the prompt: {type(exc).__name__}: {exc}"]
    return []


@dataclass
class DPOSpec:
    model_path: str
    train: list[dict[str, Any]]  # {"prompt": [messages], "chosen": str, "rejected": str, "task_key": str}
    heldout: list[dict[str, Any]]
    output_dir: str
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    device: str = "auto"
    resume: bool = False
    run_id: int | None = None
    attempt: int = 0
    deepspeed_config: str = ""
    metrics_file: str = ""
    supervisor_pid: int | None = None
    max_questions: int = 5
    pair_summary: dict[str, Any] = field(default_factory=dict)  # pairs used and dropped, by reason

    def save(self, path: Path | str) -> Path:
        path = Path(path)
        path.write_text(json.dumps(asdict(self), indent=1), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: Path | str) -> DPOSpec:
        return cls(**json.loads(Path(path).read_text(encoding="utf-8")))


def preference_dataset(pairs: list[dict[str, Any]]):
    """TRL's conversational preference format: prompt messages, chosen and rejected as one assistant turn."""
    from datasets import Dataset

    return Dataset.from_list(
        [
            {
                "prompt": p["prompt"],
                "chosen": [{"role": "assistant", "content": p["chosen"]}],
                "rejected": [{"role": "assistant", "content": p["rejected"]}],
                "task_key": p["task_key"],
            }
            for p in pairs
        ]
    )


def dpo_config_kwargs(spec: DPOSpec, *, device: str, bf16_supported: bool = False) -> dict[str, Any]:
    """DPOConfig arguments from a spec. Pure apart from the facts passed in, so it can be unit-tested."""
    hp = merged_dpo_hyperparameters(spec.hyperparameters)
    kwargs: dict[str, Any] = {
        "output_dir": spec.output_dir,
        "learning_rate": hp["learning_rate"],
        "max_steps": hp["max_steps"],
        "per_device_train_batch_size": hp["per_device_train_batch_size"],
        "gradient_accumulation_steps": hp["gradient_accumulation_steps"],
        "beta": hp["beta"],
        "loss_type": [hp["loss_type"]] if isinstance(hp["loss_type"], str) else list(hp["loss_type"]),
        "loss_weights": hp["loss_weights"],
        "label_smoothing": hp["label_smoothing"],
        "max_length": hp["max_length"],
        "seed": hp["seed"],
        "logging_steps": hp["logging_steps"],
        "save_strategy": "steps",
        "save_steps": hp["save_steps"],
        "save_total_limit": hp["save_total_limit"],
        "gradient_checkpointing": hp["gradient_checkpointing"],
        "report_to": [],
        "disable_tqdm": True,
        "eval_strategy": "no",  # the held-out pairs are scored by `heldout_evaluation`, per pair, before and after
    }
    return kwargs | device_kwargs(
        hp["dtype"], device=device, bf16_supported=bf16_supported, deepspeed=spec.deepspeed_config
    )


def build_trainer(spec: DPOSpec, callbacks: list | None = None):
    import torch
    from trl import DPOConfig, DPOTrainer

    from .grpo import resolve_device

    device = resolve_device(spec.device)
    bf16 = device == "cuda" and torch.cuda.is_bf16_supported()
    config = DPOConfig(**dpo_config_kwargs(spec, device=device, bf16_supported=bf16))
    return DPOTrainer(
        model=spec.model_path,
        args=config,
        train_dataset=preference_dataset(spec.train),
        # Tokenised by DPOTrainer exactly as the training pairs are; scored by `sequence_logps`, never by
        # Trainer.evaluate (which only gives batch means, not the per-pair outcomes a task bootstrap needs).
        eval_dataset=preference_dataset(spec.heldout) if spec.heldout else None,
        peft_config=peft_config(spec),
        callbacks=callbacks or [],
    )


def sequence_logps(trainer: Any, batch_size: int) -> list[tuple[str, float, float]]:
    """(task_key, log π(chosen | x), log π(rejected | x)) for every held-out pair under the trainer's current
    model: summed over the completion tokens, as DPO's implicit reward uses them."""
    import torch

    dataset = trainer.eval_dataset
    if dataset is None or len(dataset) == 0:
        return []
    model = trainer.accelerator.unwrap_model(trainer.model)
    was_training = model.training
    model.eval()  # no dropout: the before and after scores must be deterministic
    device = next(model.parameters()).device
    out: list[tuple[str, float, float]] = []
    try:
        with torch.no_grad():
            for start in range(0, len(dataset), batch_size):
                rows = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
                batch = trainer.data_collator(
                    [{k: r[k] for k in ("prompt_ids", "chosen_ids", "rejected_ids")} for r in rows]
                )
                ids = batch["input_ids"].to(device)
                logits = model(input_ids=ids, attention_mask=batch["attention_mask"].to(device)).logits[:, :-1]
                logps = torch.log_softmax(logits.float(), dim=-1).gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
                sums = (logps * batch["completion_mask"][:, 1:].to(device)).sum(dim=1).tolist()
                n = len(rows)
                out += [(r["task_key"], sums[i], sums[n + i]) for i, r in enumerate(rows)]
    finally:
        model.train(was_training)
    return out


def heldout_accuracies(
    base: list[tuple[str, float, float]],
    trained: list[tuple[str, float, float]] | None,
    *,
    beta: float,
    n_boot: int,
    seed: int,
) -> dict[str, Any]:
    """Held-out preference accuracy of the base model and, when given, the trained policy. Pure.

    `implicit`: β·[(log π − log π_ref)(chosen) − (log π − log π_ref)(rejected)] > 0, ties half. For the base
    model π = π_ref, every pair is a tie and the accuracy is 0.5: chance, by construction.
    `likelihood`: log π(chosen) > log π(rejected): which response the model itself finds likelier."""

    def boot(outcomes: list[tuple[str, float]]) -> dict[str, Any]:
        return task_bootstrap_accuracy(outcomes, n_boot=n_boot, seed=seed)

    def scores(policy: list[tuple[str, float, float]]) -> dict[str, Any]:
        implicit = [
            (k, ranked(beta * ((pc - bc) - (pr - br)))) for (k, pc, pr), (_, bc, br) in zip(policy, base, strict=True)
        ]
        return {"implicit": boot(implicit), "likelihood": boot([(k, ranked(pc - pr)) for k, pc, pr in policy])}

    result: dict[str, Any] = {"beta": beta, "pairs": len(base), "tasks": len({k for k, _, _ in base})}
    result["base"] = scores(base)
    if trained is not None:
        result["trained"] = scores(trained)
    return result


def _report_eval(spec: DPOSpec, result: dict[str, Any]) -> None:
    (Path(spec.output_dir) / EVAL_FILE).write_text(json.dumps(result, indent=1), encoding="utf-8")
    if spec.run_id is not None:
        from .runs import training_run_record_preference_eval

        training_run_record_preference_eval(run_id=spec.run_id, attempt=spec.attempt, result=result)
    line = " ".join(
        f"{phase}: implicit {scores['implicit']['accuracy']:.3f} likelihood {scores['likelihood']['accuracy']:.3f}"
        for phase in ("base", "trained")
        if (scores := result.get(phase))
    )
    print(f"held-out preference accuracy ({result['pairs']} pairs, {result['tasks']} tasks): {line}", flush=True)


def run(spec: DPOSpec) -> int:
    from .callbacks import RunProgressCallback, sink_for

    hp = merged_dpo_hyperparameters(spec.hyperparameters)
    callback = RunProgressCallback(sink_for(spec))
    trainer = build_trainer(spec, callbacks=[callback])
    is_main = trainer.accelerator.is_main_process
    Path(spec.output_dir).mkdir(parents=True, exist_ok=True)
    if is_main and spec.run_id is not None and spec.pair_summary:
        from .runs import training_run_record_preference_eval

        training_run_record_preference_eval(
            run_id=spec.run_id, attempt=spec.attempt, result={"source": spec.pair_summary}
        )
    # Before train(): a resumed run loads its checkpoint only inside train(), so this is the base model.
    base = sequence_logps(trainer, hp["eval_batch_size"])
    eval_args = {"beta": hp["beta"], "n_boot": hp["bootstrap_rounds"], "seed": hp["seed"]}
    if base and is_main:
        _report_eval(spec, heldout_accuracies(base, None, **eval_args))
    if not train_resumable(trainer, spec, callback):
        return 0
    if base:
        trained = sequence_logps(trainer, hp["eval_batch_size"])
        if is_main:
            _report_eval(spec, heldout_accuracies(base, trained, **eval_args))
    final = save_final(trainer, spec)
    if is_main:
        info_path = final / FINAL_INFO
        info = json.loads(info_path.read_text(encoding="utf-8"))
        info.update(algorithm="dpo", max_questions=spec.max_questions)
        info_path.write_text(json.dumps(info, indent=1), encoding="utf-8")
    print(f"saved final model to {final}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    return child_main(argv, prog="python -m training.dpo", doc=__doc__, load=DPOSpec.load, run=run)


if __name__ == "__main__":
    sys.exit(main())
