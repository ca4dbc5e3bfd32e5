"""Local Hugging Face models: one left-padded forward batch for many prompts, on CPU or CUDA."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import BackendError, GenerationResult, Messages, OnResult


def sampling_kwargs(params: dict[str, Any]) -> dict[str, Any]:
    temperature = float(params.get("temperature", 0.0))
    kwargs: dict[str, Any] = {"max_new_tokens": int(params.get("max_new_tokens", 256))}
    if temperature > 0:
        kwargs.update(do_sample=True, temperature=temperature, top_p=float(params.get("top_p", 1.0)))
        if params.get("top_k"):
            kwargs["top_k"] = int(params["top_k"])
    else:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    if params.get("min_new_tokens"):
        kwargs["min_new_tokens"] = int(params["min_new_tokens"])
    if params.get("repetition_penalty"):
        kwargs["repetition_penalty"] = float(params["repetition_penalty"])
    return kwargs


class TransformersBackend:
    name = "transformers"
    reports_each_result = True

    def __init__(self, model_path: str, device: str = "auto", threads: int = 0) -> None:
        self.model = model_path
        self.device_request = device
        # On a shared CPU box, OpenMP threads that spin while others hold the cores can make generation
        # an order of magnitude slower; `torch_threads` (e.g. 1 per worker process) avoids that.
        self.threads = threads
        self._loaded: tuple[Any, Any, str] | None = None
        # A worker thread pool may share this instance; loading and generate() are not re-entrant.
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._loaded is not None

    def load(self) -> None:
        """Load the model now (a job shows "loading model…" meanwhile), instead of inside the first batch."""
        with self._lock:
            self._load()

    def _load(self) -> tuple[Any, Any, str]:
        if self._loaded is None:
            if not self.model or not Path(self.model).is_dir():
                raise BackendError(f"model directory not found: '{self.model}' (set the system's model_path)")
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            if self.threads:
                torch.set_num_threads(self.threads)
            device = self.device_request
            if device == "auto":
                device = "cuda" if torch.cuda.is_available() else "cpu"
            tokenizer = AutoTokenizer.from_pretrained(self.model)
            tokenizer.padding_side = "left"  # generation appends on the right, so pad on the left
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
            model = AutoModelForCausalLM.from_pretrained(self.model, dtype=dtype).to(device)
            model.eval()
            self._loaded = (tokenizer, model, device)
        return self._loaded

    def generate(
        self, prompts: Sequence[Messages], params: dict[str, Any], on_result: OnResult | None = None
    ) -> list[GenerationResult]:
        if not prompts:
            return []
        import torch

        with self._lock:
            tokenizer, model, device = self._load()
            texts = [
                tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
                for messages in prompts
            ]
            batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            if "seed" in params:
                torch.manual_seed(int(params["seed"]))
            prompt_len = batch["input_ids"].shape[1]
            eos_ids = _as_set(model.generation_config.eos_token_id) | _as_set(tokenizer.eos_token_id)
            watch = _FinishedRows(prompt_len, eos_ids, on_result) if on_result is not None else None
            with torch.inference_mode():
                output = model.generate(
                    **batch,
                    **sampling_kwargs(params),
                    pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=model.generation_config.eos_token_id or tokenizer.eos_token_id,
                    **({"stopping_criteria": [watch]} if watch is not None else {}),
                )
            if watch is not None:
                watch.finish(len(prompts))  # rows that ran to max_new_tokens without an end token
        results = []
        for row, mask in zip(output, batch["attention_mask"], strict=True):
            new = row[prompt_len:].tolist()
            n_new = len(new)
            for i, token in enumerate(new):
                if token in eos_ids:
                    n_new = i + 1
                    break
            text = tokenizer.decode(new[:n_new], skip_special_tokens=True)
            results.append(GenerationResult(text.strip(), int(mask.sum()), n_new))
        return results


class _FinishedRows:
    """A stopping criterion that never stops anything: it watches which rows of the batch have produced an
    end token and reports each one once, so progress moves per prompt while the batch stays one call."""

    def __init__(self, prompt_len: int, eos_ids: set[int], on_result: OnResult) -> None:
        self.prompt_len = prompt_len
        self.eos_ids = sorted(eos_ids)
        self.on_result = on_result
        self.reported: set[int] = set()

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        new = input_ids[:, self.prompt_len :]
        if new.shape[1] and self.eos_ids:
            ended = torch.isin(new, torch.tensor(self.eos_ids, device=new.device)).any(dim=1)
            for row in ended.nonzero().flatten().tolist():
                self._report(row)
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    def finish(self, n: int) -> None:
        for row in range(n):
            self._report(row)

    def _report(self, row: int) -> None:
        if row not in self.reported:
            self.reported.add(row)
            self.on_result(row)


def _as_set(value: Any) -> set[int]:
    if value is None:
        return set()
    return {int(v) for v in value} if isinstance(value, (list, tuple)) else {int(value)}
