"""How long must `max_completion_length` be so that GRPO does not cut questions in half?

Samples completions of the questioner prompt (training/prompts.py) on the demo's train tasks at the training
temperature, with a generous token limit, and prints for candidate limits the share of completions that a
limit would cut (still going at the limit) and cut *mid-question* (the truncated text ends inside a line that
is not a finished question).

    python benchmarks/completion_length.py [--model var/models/smollm2-135m-instruct] [--samples 4]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LIMITS = (48, 64, 96, 128, 160, 192)


def cut_mid_question(text: str) -> bool:
    """The last non-empty line of a truncated completion is not a finished question."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return bool(lines) and not lines[-1].endswith("?")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / "var" / "models" / "smollm2-135m-instruct"))
    parser.add_argument("--samples", type=int, default=4, help="completions per task")
    parser.add_argument("--max-tokens", type=int, default=max(LIMITS) + 32)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training.prompts import questions_prompt

    tasks = [json.loads(line) for line in (ROOT / "annotation/fixtures/demo/tasks.jsonl").read_text().splitlines()]
    tasks = [t for t in tasks if t["split"] == "train"]
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    texts = [
        tokenizer.apply_chat_template(questions_prompt(t["masked_task"], 5), tokenize=False, add_generation_prompt=True)
        for t in tasks
    ]
    torch.manual_seed(args.seed)
    started = time.perf_counter()
    token_rows: list[list[int]] = []
    for _ in range(args.samples):
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            out = model.generate(
                **batch, max_new_tokens=args.max_tokens, do_sample=True, temperature=args.temperature, top_p=1.0,
                pad_token_id=tokenizer.pad_token_id,
            )  # fmt: skip
        for row in out[:, batch["input_ids"].shape[1] :].tolist():
            ids = []
            for tok in row:
                if tok in (tokenizer.eos_token_id, tokenizer.pad_token_id):
                    break
                ids.append(tok)
            token_rows.append(ids)
    seconds = time.perf_counter() - started
    lengths = sorted(len(r) for r in token_rows)
    n = len(lengths)
    print(f"model {args.model}: {n} completions ({len(tasks)} train tasks × {args.samples}), "
          f"temperature {args.temperature}, limit {args.max_tokens}, {seconds:.0f} s")  # fmt: skip
    print(f"tokens to EOS: median {lengths[n // 2]}, p90 {lengths[int(n * 0.9)]}, max {lengths[-1]}; "
          f"still going at {args.max_tokens}: {sum(1 for x in lengths if x >= args.max_tokens)}")  # fmt: skip
    print("limit  cut   cut mid-question")
    for limit in LIMITS:
        cut = [r for r in token_rows if len(r) > limit]
        mid = sum(1 for r in cut if cut_mid_question(tokenizer.decode(r[:limit], skip_special_tokens=True)))
        print(f"{limit:5d}  {len(cut) / n:5.1%}  {mid / n:5.1%}")


if __name__ == "__main__":
    main()
