"""One interface for every way a system produces text. Pure: no Django.

`generate(prompts, params)` takes a batch of chat conversations (lists of {"role", "content"}) and
returns one `GenerationResult` per prompt, in order. Backends that hold a model are created once per
process and cached (`get_backend`), so a Celery worker loads its model for the first chunk only."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class GenerationResult:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # Set when this one prompt failed for good (e.g. an endpoint refused it); the others stand.
    error: str = ""


class BackendError(Exception):
    """Generation failed and retrying will not help (bad configuration, refused request)."""


class TransientBackendError(BackendError):
    """Generation failed for a reason that may pass (rate limit, server error, timeout)."""


class Backend(Protocol):
    name: str
    model: str

    def generate(self, prompts: Sequence[Messages], params: dict[str, Any]) -> list[GenerationResult]: ...


_CACHE: dict[tuple[str, str, str, str], Backend] = {}
_LOCK = threading.Lock()


def get_backend(
    *, backend: str, model_path: str = "", endpoint: str = "", params: dict[str, Any] | None = None
) -> Backend:
    """The process-wide instance for this configuration (models load once per worker process)."""
    params = params or {}
    device = str(params.get("device", "auto"))
    if backend == "vllm":
        device = f"tp{params.get('tensor_parallel_size', 1)}"
    key = (backend, model_path, endpoint, device)
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = _create(backend, model_path, endpoint, params)
        return _CACHE[key]


def _create(backend: str, model_path: str, endpoint: str, params: dict[str, Any]) -> Backend:
    if backend == "transformers":
        from .transformers import TransformersBackend

        return TransformersBackend(
            model_path, device=str(params.get("device", "auto")), threads=int(params.get("torch_threads", 0))
        )
    if backend == "vllm":
        from .vllm import VLLMBackend

        return VLLMBackend(model_path, params)
    if backend == "openai":
        from .openai import OpenAIBackend

        return OpenAIBackend.from_config(model=model_path, endpoint=endpoint, params=params)
    if backend == "static":
        from .static import StaticBackend

        return StaticBackend(model_path)
    raise BackendError(f"unknown backend '{backend}' (choose transformers, vllm, openai or static)")


def clear_cache() -> None:
    with _LOCK:
        _CACHE.clear()


__all__ = [
    "Backend",
    "BackendError",
    "GenerationResult",
    "Messages",
    "TransientBackendError",
    "clear_cache",
    "get_backend",
]
