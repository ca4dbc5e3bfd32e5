"""Line-numbered validation of JSON Lines uploads. Pure: no Django imports.

Every problem is collected (not just the first), so a researcher fixes a file in one pass."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

MAX_LINE_BYTES = 1_000_000
MAX_JSON_DEPTH = 20


@dataclass(frozen=True)
class LineError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class ValidationFailed(Exception):
    def __init__(self, errors: list[LineError]) -> None:
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors[:20]) + (" …" if len(errors) > 20 else ""))


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_JSON_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("a number too large to store")
    return value


def _unstorable(value: Any) -> str | None:
    """Why the database could not store this parsed value, or None. Valid JSON can still carry text
    PostgreSQL refuses (a \\u0000 escape, an unpaired surrogate) or a number that overflowed to inf."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            if "\x00" in item:
                return "contains a NUL character (\\u0000), which cannot be stored"
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return "contains an unpaired surrogate (\\ud800-\\udfff), which is not valid Unicode"
        elif isinstance(item, float) and not math.isfinite(item):
            return "contains a number too large to store"
    return None


def parse_jsonl(raw_lines: Iterable[bytes]) -> tuple[list[tuple[int, dict[str, Any]]], list[LineError]]:
    """Decode and parse each non-blank line; returns (line number, object) pairs and errors."""
    rows: list[tuple[int, dict[str, Any]]] = []
    errors: list[LineError] = []
    for number, raw in enumerate(raw_lines, start=1):
        if len(raw) > MAX_LINE_BYTES:
            errors.append(LineError(number, f"line longer than {MAX_LINE_BYTES} bytes"))
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            errors.append(LineError(number, f"not valid UTF-8 (byte {exc.start})"))
            continue
        text = text.strip().lstrip("\ufeff")
        if not text:
            continue
        try:
            obj = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
        except RecursionError:
            errors.append(LineError(number, "bad JSON: nested too deeply"))
            continue
        except ValueError as exc:  # JSONDecodeError, NaN/Infinity, integers over Python's digit limit
            errors.append(LineError(number, f"bad JSON: {getattr(exc, 'msg', str(exc))}"))
            continue
        if not isinstance(obj, dict):
            errors.append(LineError(number, f"expected a JSON object, got {type(obj).__name__}"))
            continue
        # The walks below only where they can find something (they cost as much as the parse): nesting
        # needs brackets, and NUL or a lone surrogate can only come from a \u escape in valid UTF-8.
        if text.count("[") + text.count("{") > MAX_JSON_DEPTH and _depth(obj) > MAX_JSON_DEPTH:
            errors.append(LineError(number, f"JSON nested deeper than {MAX_JSON_DEPTH} levels"))
            continue
        reason = _unstorable(obj) if "\\u" in text else None
        if reason:
            errors.append(LineError(number, reason))
            continue
        rows.append((number, obj))
    return rows, errors


def require_text(obj: dict[str, Any], field: str, *, optional: bool = False) -> str | None:
    """Return the field's stripped text; raise ValueError with a readable reason."""
    if field not in obj or obj[field] is None:
        if optional:
            return None
        raise ValueError(f"missing field '{field}'")
    value = obj[field]
    if not isinstance(value, str):
        raise ValueError(f"field '{field}' must be a string, got {type(value).__name__}")
    if not value.strip() and not optional:
        raise ValueError(f"field '{field}' is empty")
    return value.strip()


def require_text_list(obj: dict[str, Any], field: str, *, allow_empty: bool = False) -> list[str]:
    if field not in obj:
        if allow_empty:
            return []
        raise ValueError(f"missing field '{field}'")
    value = obj[field]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"field '{field}' must be a list of strings")
    cleaned = [v.strip() for v in value]
    if any(not v for v in cleaned):
        raise ValueError(f"field '{field}' contains an empty string")
    if not cleaned and not allow_empty:
        raise ValueError(f"field '{field}' is an empty list")
    return cleaned


def validate_rows(
    rows: list[tuple[int, dict[str, Any]]],
    errors: list[LineError],
    clean: Callable[[dict[str, Any]], dict[str, Any]],
    *,
    key_field: str = "key",
) -> list[tuple[int, dict[str, Any]]]:
    """Apply `clean` to each row, reporting its ValueError and keys repeated within the file."""
    cleaned: list[tuple[int, dict[str, Any]]] = []
    first_seen: dict[str, int] = {}
    for number, obj in rows:
        try:
            row = clean(obj)
        except ValueError as exc:
            errors.append(LineError(number, str(exc)))
            continue
        key = row[key_field]
        if key in first_seen:
            errors.append(LineError(number, f"duplicate key '{key}' (first on line {first_seen[key]})"))
            continue
        first_seen[key] = number
        cleaned.append((number, row))
    errors.sort(key=lambda e: e.line)
    return cleaned
