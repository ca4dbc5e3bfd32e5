from __future__ import annotations

import pytest

from training.parsing import parse_questions


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1. What is the budget?\n2. Who reads it?", ["What is the budget?", "Who reads it?"]),
        (
            "- What is the budget?\n* Who reads it?\n• When is it due?",
            ["What is the budget?", "Who reads it?", "When is it due?"],
        ),
        (
            "Sure! Here are my questions:\n\n1) **What is the budget?**\n2) Who reads it?\nHope this helps!",
            ["What is the budget?", "Who reads it?"],
        ),
        (
            "What is the budget? Who reads it? When is it due?",
            ["What is the budget?", "Who reads it?", "When is it due?"],
        ),
        ("Q1: What is the budget?\nQ2: What is the budget?", ["What is the budget?"]),
        (
            "1. What is the budget\n2. Who is the intended audience?\n3. When is it due?",
            ["What is the budget", "Who is the intended audience?", "When is it due?"],
        ),
        ("I will write the outline now.", []),
        ("", []),
    ],
)
def test_questions_are_parsed_from_messy_model_text(text: str, expected: list[str]):
    assert parse_questions(text) == expected
