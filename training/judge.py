"""An LLM as the matcher: asked per (question, topic) whether the question asks about it. Pure: no Django.

Any backend will do (an OpenAI-compatible endpoint in real use). The prompt is fixed and versioned, decoding
is greedy (temperature 0, a few tokens), and every verdict is cached under a hash of (prompt version, model,
question, topic): a reward computed twice asks the model once, and a changed prompt never reuses old
verdicts. The cache is any mutable mapping; the platform passes one backed by its shared cache."""

from __future__ import annotations

import hashlib
import json
from collections.abc import MutableMapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .matching import match_at_threshold

if TYPE_CHECKING:
    from .backends import Backend

JUDGE_PROMPT_VERSION = "judge-v1"
JUDGE_SYSTEM = (
    "You check clarification questions. Given a topic and a question, decide whether the question asks the "
    "user for information about that topic. A question that only mentions the topic in passing, or asks for "
    "something else, does not. Reply with exactly one word: yes or no."
)
JUDGE_PARAMS = {"temperature": 0.0, "max_new_tokens": 3, "seed": 0}


def judge_prompt(question: str, topic: str) -> list[dict[str, str]]:
    user = f"Topic: {topic}\nQuestion: {question}\nDoes the question ask for information about the topic?"
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]


def parse_verdict(text: str) -> bool:
    return text.strip().strip("*\"'.").lower().startswith("yes")


class LLMJudgeMatcher:
    """Scores are 1.0 (yes) or 0.0 (no); one batched backend call per `similarities` for the uncached pairs."""

    name = "llm"
    threshold = 0.5

    def __init__(
        self, backend: Backend, *, cache: MutableMapping[str, bool] | None = None, batch_size: int = 64
    ) -> None:
        self.backend = backend
        self.batch_size = batch_size  # prompts per backend call: a local model runs each call as one batch
        self.cache: MutableMapping[str, bool] = cache if cache is not None else {}
        self.calls = 0  # model calls made (cache misses), for cost reports

    def _key(self, question: str, topic: str) -> str:
        model = f"{getattr(self.backend, 'name', '')}:{getattr(self.backend, 'model', '')}"
        raw = json.dumps([JUDGE_PROMPT_VERSION, model, question, topic], ensure_ascii=False)
        return hashlib.sha256(raw.encode("utf-8")).hexdigest()

    def similarities(self, questions: Sequence[str], targets: Sequence[str]) -> Any:
        scores = np.zeros((len(questions), len(targets)))
        pairs = [(i, j, self._key(q, t)) for i, q in enumerate(questions) for j, t in enumerate(targets)]
        verdicts: dict[str, bool] = {}
        todo: dict[str, tuple[str, str]] = {}
        for i, j, key in pairs:
            cached = self.cache.get(key)
            if cached is None:
                todo.setdefault(key, (questions[i], targets[j]))
            else:
                verdicts[key] = bool(cached)
        keys = list(todo)
        for start in range(0, len(keys), self.batch_size):
            batch = keys[start : start + self.batch_size]
            results = self.backend.generate([judge_prompt(*todo[k]) for k in batch], dict(JUDGE_PARAMS))
            self.calls += len(batch)
            for key, result in zip(batch, results, strict=True):
                if result.error:
                    raise RuntimeError(f"the judge model failed: {result.error}")
                verdicts[key] = parse_verdict(result.text)
                self.cache[key] = verdicts[key]
        for i, j, key in pairs:
            scores[i, j] = 1.0 if verdicts[key] else 0.0
        return scores

    def match(self, questions: Sequence[str], targets: Sequence[str]) -> list[list[int]]:
        return match_at_threshold(self.similarities(questions, targets), self.threshold)
