"""One interface for every way a system produces text. Pure: no Django.

`generate(prompts, params)` takes a batch of chat conversations (lists of {"role", "content"}) and
returns one `GenerationResult` per prompt, in order. Backends that hold a model are created once per
process and cached (`get_backend`), so a Celery worker loads its model for the first chunk only."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Sequence
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


# Called with a prompt's index as soon as that prompt's result is final (before the whole batch returns),
# so a job can count progress per task although the batch runs as one call.
OnResult = Callable[[int], None]


class Backend(Protocol):
    name: str
    model: str

    def generate(self, prompts: Sequence[Messages], params: dict[str, Any]) -> list[GenerationResult]: ...


def generate_reporting(
    backend: Backend, prompts: Sequence[Messages], params: dict[str, Any], on_result: OnResult | None
) -> list[GenerationResult]:
    """`backend.generate`, reporting each prompt as it finishes where the backend can tell (those that set
    `reports_each_result`), else all of them when the batch returns."""
    if on_result is not None and getattr(backend, "reports_each_result", False):
        return backend.generate(prompts, params, on_result=on_result)  # type: ignore[call-arg]
    results = backend.generate(prompts, params)
    if on_result is not None:
        for index in range(len(results)):
            on_result(index)
    return results


def backend_needs_loading(backend: Backend) -> bool:
    """True while a backend that holds a model has not loaded it yet in this process."""
    return callable(getattr(backend, "load", None)) and not getattr(backend, "loaded", True)


# The generation params each backend's client is built from. Only these reach the constructor, and all of
# them are in the cache key, so two systems share a client exactly when it would be built identically
# (per-call options such as temperature or max_new_tokens go to generate() and do not split the cache).
CLIENT_PARAMS: dict[str, tuple[str, ...]] = {
    "transformers": ("device", "torch_threads"),
    "vllm": ("tensor_parallel_size", "dtype", "gpu_memory_utilization", "max_model_len", "seed", "enforce_eager"),
    "openai": ("api_key_env", "timeout_s", "max_retries", "backoff_s", "max_backoff_s", "concurrency"),
    "static": (),
}

_CACHE: dict[tuple[str, ...], Backend] = {}
_LOCK = threading.Lock()


def client_params(backend: str, params: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (params or {}).items() if k in CLIENT_PARAMS.get(backend, ())}


def cache_key(
    *, backend: str, model_path: str, endpoint: str, params: dict[str, Any] | None, api_key: str
) -> tuple[str, ...]:
    shaping = json.dumps(client_params(backend, params), sort_keys=True, default=str)
    # The key itself is not kept in the cache key, only a digest: two keys, two clients.
    key_digest = hashlib.sha256(api_key.encode()).hexdigest() if api_key else ""
    return (backend, model_path, endpoint, shaping, key_digest)


def get_backend(
    *,
    backend: str,
    model_path: str = "",
    endpoint: str = "",
    params: dict[str, Any] | None = None,
    api_key: str = "",
) -> Backend:
    """The process-wide instance for this configuration (models load once per worker process).

    `api_key` is resolved by the caller (from settings), so this package never reads the environment."""
    key = cache_key(backend=backend, model_path=model_path, endpoint=endpoint, params=params, api_key=api_key)
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = _create(backend, model_path, endpoint, client_params(backend, params), api_key)
        return _CACHE[key]


def _create(backend: str, model_path: str, endpoint: str, params: dict[str, Any], api_key: str) -> Backend:
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

        return OpenAIBackend.from_config(model=model_path, endpoint=endpoint, params=params, api_key=api_key)
    if backend == "static":
        from .static import StaticBackend

        return StaticBackend(model_path)
    raise BackendError(f"unknown backend '{backend}' (choose transformers, vllm, openai or static)")


__all__ = [
    "Backend",
    "BackendError",
    "GenerationResult",
    "Messages",
    "OnResult",
    "TransientBackendError",
    "backend_needs_loading",
    "cache_key",
    "client_params",
    "generate_reporting",
    "get_backend",
]
