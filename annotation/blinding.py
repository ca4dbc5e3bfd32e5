"""Blinding: find text in which a model names itself or its maker. Pure: no Django.

Annotators must never learn which system wrote a response; a candidate that says "As o3-mini…" or
"I am Qwen" would tell them. Such candidates are flagged when imported or generated, and study building
leaves them out (the study admin shows how many)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

DEFAULT_PATTERNS: tuple[str, ...] = (
    r"\bas an? (?:ai|language model|llm|assistant)\b[^.?!\n]{0,40}\b(?:by|from|developed|trained|created)\b",
    r"\b(?:i am|i'm|as)\s+(?:an?\s+)?(?:chatgpt|gpt-?\d[\w.-]*|o\d(?:-mini)?|claude|gemini|llama|qwen[\w.-]*|mistral"
    r"|smollm[\w.-]*|deepseek[\w.-]*|phi-?\d)\b",
    r"\b(?:openai|anthropic|alibaba cloud|google deepmind|meta ai|mistral ai|hugging ?face)\b",
    r"\b(?:chatgpt|gpt-4[\w.-]*|o3-mini|o1-mini|claude[\w .-]{0,12}|qwen-?\d[\w.-]*|smollm2?[\w.-]*)\b",
)


def _system_pattern(name: str) -> str | None:
    parts = [re.escape(p) for p in re.split(r"[-_\s]+", name.strip()) if p]
    if not parts or len("".join(parts)) < 3:
        return None
    return r"\b" + r"[-_\s]?".join(parts) + r"\b"


class PatternSet(list):  # type: ignore[type-arg]
    """The compiled patterns, plus one alternation of all of them that screens clean text in a single scan
    (most text is clean; the per-pattern scan that lists the snippets runs only where the screen matched)."""

    screen: re.Pattern[str] | None = None


def compile_patterns(system_names: Iterable[str] = (), extra: Sequence[str] = ()) -> PatternSet:
    sources = [*DEFAULT_PATTERNS, *extra, *filter(None, (_system_pattern(n) for n in system_names))]
    patterns = PatternSet(re.compile(p, re.IGNORECASE) for p in sources)
    # Without capturing groups an alternation matches a text exactly when one of its parts does; a pattern
    # with groups (its back-references would be renumbered) leaves the screen off.
    if patterns and all(p.groups == 0 for p in patterns):
        patterns.screen = re.compile("|".join(f"(?:{p})" for p in sources), re.IGNORECASE)
    return patterns


def find_self_identification(texts: Iterable[str], patterns: Sequence[re.Pattern[str]]) -> list[str]:
    """Return the distinct offending snippets found in `texts` (empty when the texts are clean)."""
    texts = list(texts)
    screen = getattr(patterns, "screen", None)
    if screen is not None and not any(screen.search(text or "") for text in texts):
        return []
    found: list[str] = []
    for text in texts:
        for pattern in patterns:
            for match in pattern.finditer(text or ""):
                snippet = match.group(0).strip()
                if snippet.lower() not in (f.lower() for f in found):
                    found.append(snippet)
    return found
