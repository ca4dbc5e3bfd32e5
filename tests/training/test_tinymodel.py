from __future__ import annotations

from pathlib import Path

import pytest


@pytest.mark.slow
def test_the_tiny_model_loads_offline_and_chats(tiny_model_dir: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert model.config.model_type == "qwen2"
    assert model.config.hidden_size // model.config.num_attention_heads == 64
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the budget?"}], tokenize=False, add_generation_prompt=True
    )
    assert prompt.endswith("<|im_start|>assistant\n")
    ids = tokenizer(prompt, return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=5, do_sample=False)
    assert out.shape[1] > ids["input_ids"].shape[1]
    assert tokenizer.decode(tokenizer("Who is the audience?")["input_ids"]) == "Who is the audience?"
