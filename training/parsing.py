"""Parse clarification questions out of free model text. Pure: no Django.

Models answer in many shapes: numbered or bulleted lists, several questions on one line, a chatty
preamble ("Sure! Here are a few questions:"), markdown bold. We keep what reads as a question."""

from __future__ import annotations

import re

_LIST_MARKER = re.compile(r"^\s*(?:[-*•·]+|\(?\d{1,2}[.):]|\(?[a-zA-Z][.)]|Q\d{1,2}[.:)]?|Question\s*\d{1,2}[.:)]?)\s+")
_QUESTION_SPLIT = re.compile(r"(?<=\?)\s+(?=[A-Z\"'(])")
_MARKDOWN = re.compile(r"(\*\*|__|`|^#+\s*)")


def _clean(line: str) -> str:
    line = _MARKDOWN.sub("", line.strip())
    while True:
        stripped = _LIST_MARKER.sub("", line, count=1)
        if stripped == line:
            break
        line = stripped
    return line.strip().strip('"').strip()


def parse_questions(text: str) -> list[str]:
    """Return the questions in `text`, in order, without exact repeats.

    A line counts if it ends with a question mark; list items without one count too when the text is a
    list of questions (most of its items end with '?'), since models often drop the final '?'."""
    items: list[tuple[str, bool]] = []
    for raw in text.replace("\r", "\n").split("\n"):
        if not raw.strip():
            continue
        listed = bool(_LIST_MARKER.match(raw))
        line = _clean(raw)
        if not line:
            continue
        for part in _QUESTION_SPLIT.split(line):
            items.append((part.strip(), listed))
    listed_items = [text for text, listed in items if listed]
    listed_questions = sum(1 for t in listed_items if t.endswith("?"))
    lenient = bool(listed_items) and listed_questions * 2 >= len(listed_items)
    questions: list[str] = []
    seen: set[str] = set()
    for item, listed in items:
        if item.endswith(":"):
            continue  # a preamble or heading ("Here are my questions:")
        is_question = item.endswith("?") or (lenient and listed and len(item.split()) >= 3)
        if not is_question:
            continue
        if "?" in item[:-1] and not item.endswith("?"):
            item = item[: item.rindex("?") + 1]
        key = re.sub(r"\W+", " ", item.lower()).strip()
        if key and key not in seen:
            seen.add(key)
            questions.append(item)
    return questions
