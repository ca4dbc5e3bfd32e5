"""vLLM's offline engine: loaded once per worker process, tensor-parallel across the worker's GPUs.

vllm is imported lazily and only exists where the `gpu` extra is installed (CUDA machines)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from . import BackendError, GenerationResult, Messages


class VLLMBackend:
    name = "vllm"

    def __init__(self, model_path: str, params: dict[str, Any]) -> None:
        self.model = model_path
        self.engine_params = params
        self._llm: Any = None
        self._lock = threading.Lock()

    def _engine(self) -> Any:
        if self._llm is None:
            try:
                from vllm import LLM
            except ImportError as exc:
                raise BackendError(
                    "the vllm backend needs the vllm package on a CUDA machine: pip install '.[gpu]' "
                    "(or use the transformers backend on CPU)"
                ) from exc
            p = self.engine_params
            self._llm = LLM(
                model=self.model,
                tensor_parallel_size=int(p.get("tensor_parallel_size", 1)),
                dtype=str(p.get("dtype", "auto")),
                gpu_memory_utilization=float(p.get("gpu_memory_utilization", 0.85)),
                max_model_len=p.get("max_model_len"),
                seed=int(p.get("seed", 0)),
                enforce_eager=bool(p.get("enforce_eager", False)),
            )
        return self._llm

    def generate(self, prompts: Sequence[Messages], params: dict[str, Any]) -> list[GenerationResult]:
        if not prompts:
            return []
        with self._lock:
            llm = self._engine()
            from vllm import SamplingParams

            sampling = SamplingParams(
                temperature=float(params.get("temperature", 0.0)),
                top_p=float(params.get("top_p", 1.0)),
                top_k=int(params.get("top_k", -1) or -1),
                max_tokens=int(params.get("max_new_tokens", 256)),
                min_tokens=int(params.get("min_new_tokens", 0)),
                seed=params.get("seed"),
            )
            outputs = llm.chat([list(m) for m in prompts], sampling, use_tqdm=False)
        return [
            GenerationResult(o.outputs[0].text.strip(), len(o.prompt_token_ids or []), len(o.outputs[0].token_ids))
            for o in outputs
        ]
