"""Generated tokens/s: one batched call vs one prompt at a time.

CPU (default): SmolLM2-135M-Instruct through the transformers backend (run `manage.py prepare_smollm2`
first). GPU (`--gpu`, on a CUDA machine with the gpu extra): vLLM's offline engine vs transformers on
the same prompts. Prints numbers; asserts nothing.

    python benchmarks/generation_throughput.py [--model DIR] [--prompts 16] [--max-new-tokens 64] [--gpu]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from training.pipeline import questions_prompt  # noqa: E402

TASKS = [
    "Write an outline for a grant proposal on urban beekeeping.",
    "Plan a one-week trip to Japan for a family.",
    "Draft a syllabus for an introductory statistics course.",
    "Create a marketing plan for a small bakery.",
    "Prepare an incident post-mortem for a database outage.",
    "Outline a wedding speech for my sister.",
    "Design a training plan for a first marathon.",
    "Write a business plan for a bicycle repair shop.",
]


def prompts(n: int) -> list[list[dict[str, str]]]:
    return [questions_prompt(TASKS[i % len(TASKS)] + f" (case {i})", 5) for i in range(n)]


def timed(backend, batch, params) -> tuple[float, int]:
    started = time.perf_counter()
    results = backend.generate(batch, params)
    return time.perf_counter() - started, sum(r.completion_tokens for r in results)


def run(backend, label: str, batch, params, sequential: bool = True) -> dict[str, float]:
    backend.generate(batch[:2], {**params, "max_new_tokens": 4, "min_new_tokens": 0})  # load + warm up
    seconds, tokens = timed(backend, batch, params)
    out = {"batched_tok_s": tokens / seconds, "batched_s": seconds, "batched_tokens": tokens}
    print(
        f"{label:28} batched    {len(batch):3d} prompts: {tokens:6d} tokens in {seconds:7.1f}s"
        f" = {tokens / seconds:8.1f} tok/s"
    )
    if sequential:
        seconds = tokens = 0
        for prompt in batch:
            s, t = timed(backend, [prompt], params)
            seconds, tokens = seconds + s, tokens + t
        out.update(seq_tok_s=tokens / seconds, seq_s=seconds)
        print(
            f"{label:28} one-by-one {len(batch):3d} prompts: {tokens:6d} tokens in {seconds:7.1f}s"
            f" = {tokens / seconds:8.1f} tok/s"
        )
        print(f"{label:28} speed-up from batching: {out['batched_tok_s'] / out['seq_tok_s']:.1f}x")
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=str(ROOT / "var" / "models" / "smollm2-135m-instruct"))
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--gpu", action="store_true", help="vLLM vs transformers on CUDA")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    if not Path(args.model, "config.json").exists():
        sys.exit(f"no model at {args.model}: run `python manage.py prepare_smollm2` first")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from training.backends.transformers import TransformersBackend

    batch = prompts(args.prompts)
    # min_new_tokens = max_new_tokens: equal work per prompt, so the comparison is about batching only.
    params = {"temperature": 0.0, "max_new_tokens": args.max_new_tokens, "min_new_tokens": args.max_new_tokens}
    print(f"model {args.model}, torch threads {torch.get_num_threads()}, {args.max_new_tokens} new tokens per prompt")
    if not args.gpu:
        backend = TransformersBackend(args.model, device="cpu")
        run(backend, "transformers (cpu)", batch, params)
        return
    if not torch.cuda.is_available():
        sys.exit("--gpu needs CUDA")
    from training.backends.vllm import VLLMBackend

    hf = run(
        TransformersBackend(args.model, device="cuda"), "transformers (cuda, bf16)", batch, params, sequential=False
    )
    vl = run(VLLMBackend(args.model, {"gpu_memory_utilization": 0.5}), "vllm (cuda)", batch, params, sequential=False)
    print(f"vllm / transformers (batched): {vl['batched_tok_s'] / hf['batched_tok_s']:.1f}x")


if __name__ == "__main__":
    main()
