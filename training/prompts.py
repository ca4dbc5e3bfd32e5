"""The questioner's prompt, shared by generation and RL training so a model is trained on the prompt it is
later asked with. Pure: no Django, no torch."""

from __future__ import annotations

QUESTIONS_PROMPT_VERSION = "questions-v2"

QUESTIONS_SYSTEM = (
    "You help users with writing and planning requests. Before answering, you ask clarification "
    "questions about the information that is missing from the request and that you need to do a good job."
)


def questions_prompt(masked_task: str, k: int) -> list[dict[str, str]]:
    # v2: small instruct models (SmolLM2-135M) tend to write the outline at once unless told not to yet.
    user = (
        f"{masked_task}\n\nDo not write anything else yet. First, what clarification questions would you ask me? "
        f"List up to {k} short questions, one per line, each ending with a question mark."
    )
    return [{"role": "system", "content": QUESTIONS_SYSTEM}, {"role": "user", "content": user}]


def questions_completion(questions: list[str]) -> str:
    """The questioner's answer format: the questions one per line, as the prompt asks (warm-start targets)."""
    return "\n".join(q.strip() for q in questions if q.strip())
