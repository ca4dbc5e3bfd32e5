"""A tiny Qwen2-architecture chat model built locally: random weights, a byte-level BPE tokenizer
trained on local text, a ChatML template. For tests and offline demos; nothing is downloaded.

head_dim is 64 (hidden 128, 2 heads) so that vLLM's kernels could load it too."""

from __future__ import annotations

import json
from pathlib import Path

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
_FALLBACK_TEXT = (
    "What is the budget? Who is the audience? When is the deadline? Which format do you prefer? "
    "Write an outline for a grant proposal, an incident post-mortem, a course syllabus, a marketing plan. "
    "## Overview\n- Goals\n- Timeline\n- Budget\n- Risks\n"
)


def _corpus() -> list[str]:
    demo = Path(__file__).resolve().parents[1] / "annotation" / "fixtures" / "demo" / "tasks.jsonl"
    texts = [_FALLBACK_TEXT] * 20
    if demo.exists():
        for line in demo.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            facts = [f if isinstance(f, str) else f["text"] for f in row["hidden_facts"]]
            texts += [row["full_task"], row["masked_task"], *facts, row.get("reference_outline", "")]
    return texts


def build_tiny_model(path: Path | str, *, vocab_size: int = 512, layers: int = 2, seed: int = 0) -> Path:
    """Write a loadable model directory (config, safetensors weights, tokenizer) to `path`."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        additional_special_tokens=["<|im_start|>"],
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    tokenizer.padding_side = "left"
    tokenizer.save_pretrained(path)

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=64,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        torch_dtype="float32",
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path)
    return path
