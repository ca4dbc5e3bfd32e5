"""Any OpenAI-compatible chat-completions endpoint (`vllm serve`, hosted APIs for baselines).

Base URL and model come from the System (endpoint, model_path; `OPENAI_BASE_URL` when the endpoint is
empty); the key from the environment (`OPENAI_API_KEY`, or the variable named by the system's `api_key_env`
parameter), read by settings.py and handed in by the caller, so no secret is stored in the database.
Only rate limits (429), server errors (5xx), timeouts and dropped connections are retried, with
exponential backoff and jitter, a bounded number of times."""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

import requests

from . import BackendError, GenerationResult, Messages, OnResult, TransientBackendError

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


class OpenAIBackend:
    name = "openai"
    reports_each_result = True

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str = "",
        timeout: float = 60.0,
        max_retries: int = 4,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        concurrency: int = 8,
    ) -> None:
        if not base_url:
            raise BackendError("the openai backend needs the system's endpoint (e.g. http://127.0.0.1:8001/v1)")
        if not model:
            raise BackendError("the openai backend needs the model name in the system's model_path")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.concurrency = max(1, concurrency)
        self.session = requests.Session()

    @classmethod
    def from_config(cls, *, model: str, endpoint: str, params: dict[str, Any], api_key: str = "") -> OpenAIBackend:
        return cls(
            base_url=endpoint,
            model=model,
            api_key=api_key,
            timeout=float(params.get("timeout_s", 60)),
            max_retries=int(params.get("max_retries", 4)),
            backoff_s=float(params.get("backoff_s", 1.0)),
            max_backoff_s=float(params.get("max_backoff_s", 30.0)),
            concurrency=int(params.get("concurrency", 8)),
        )

    def _body(self, messages: Messages, params: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": list(messages)}
        if "max_new_tokens" in params:
            # Reasoning models (o-series) take max_completion_tokens; others still read max_tokens.
            key = "max_completion_tokens" if params.get("reasoning_model") else "max_tokens"
            body[key] = int(params["max_new_tokens"])
        for name in ("temperature", "top_p", "seed"):
            if name in params and not params.get("reasoning_model"):
                body[name] = params[name]
        return body

    def _wait(self, attempt: int, retry_after: str | None) -> None:
        delay = min(self.max_backoff_s, self.backoff_s * 2**attempt)
        if retry_after:
            with contextlib.suppress(ValueError):
                delay = min(self.max_backoff_s, max(delay, float(retry_after)))
        time.sleep(delay * (0.5 + random.random() / 2))  # jitter: retries from many workers spread out

    def _one(self, messages: Messages, params: dict[str, Any]) -> GenerationResult:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last = ""
        for attempt in range(self.max_retries + 1):
            try:
                response = self.session.post(
                    f"{self.base_url}/chat/completions",
                    json=self._body(messages, params),
                    headers=headers,
                    timeout=self.timeout,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                last = f"{type(exc).__name__}: {exc}"
                retry_after = None
            else:
                if response.status_code == 200:
                    return _parse(response)
                last = f"HTTP {response.status_code}: {response.text[:300]}"
                if response.status_code not in RETRY_STATUS:
                    # A refused request (bad key, unknown model, prompt too long) fails the same way again.
                    return GenerationResult("", error=last)
                retry_after = response.headers.get("Retry-After")
            if attempt < self.max_retries:
                self._wait(attempt, retry_after)
        raise TransientBackendError(f"{self.base_url} still failing after {self.max_retries + 1} attempts: {last}")

    def generate(
        self, prompts: Sequence[Messages], params: dict[str, Any], on_result: OnResult | None = None
    ) -> list[GenerationResult]:
        if not prompts:
            return []
        report = on_result or (lambda index: None)
        if self.concurrency == 1 or len(prompts) == 1:
            results = []
            for index, messages in enumerate(prompts):
                results.append(self._one(messages, params))
                report(index)
            return results
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(prompts))) as pool:
            futures = {pool.submit(self._one, messages, params): i for i, messages in enumerate(prompts)}
            done: dict[int, GenerationResult] = {}
            # Reported from this thread as each request finishes (the callback may use the database).
            for future in as_completed(futures):
                done[futures[future]] = future.result()
                report(futures[future])
        return [done[i] for i in range(len(prompts))]


def _parse(response: requests.Response) -> GenerationResult:
    try:
        data = response.json()
        text = data["choices"][0]["message"]["content"] or ""
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        return GenerationResult("", error=f"malformed chat-completions response: {exc!r}")
    usage = data.get("usage") or {}
    return GenerationResult(
        str(text).strip(), int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    )
