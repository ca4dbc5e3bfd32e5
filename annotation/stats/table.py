"""The judgments table: plain columns in, integer-coded numpy arrays out.

Pure: imports nothing from Django. Every identity column (item, annotator, system, kind, domain) is
coded against its sorted labels, so two tables that hold the same judgments in any row order, with
items numbered differently, give identical figures.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

CHOICES = ("a", "b", "tie")
A, B, TIE = 0, 1, 2
REQUIRED = ("item", "annotator", "system_a", "system_b", "choice")
OPTIONAL = ("kind", "domain", "left", "seconds", "created_at")


class TableError(ValueError):
    """The judgments do not form a valid table; the message says which row and why."""


@dataclass(frozen=True)
class Table:
    item: np.ndarray  # int64 codes; only equality matters
    annotator: np.ndarray
    annotators: tuple[str, ...]
    system_a: np.ndarray  # codes into `systems`, which is sorted, so code order is alphabetical order
    system_b: np.ndarray
    systems: tuple[str, ...]
    choice: np.ndarray  # int8: A, B or TIE relative to system_a / system_b
    kind: np.ndarray
    kinds: tuple[str, ...]
    domain: np.ndarray
    domains: tuple[str, ...]
    left: np.ndarray  # code of the system shown on the left, -1 when unknown
    seconds: np.ndarray  # float, nan when unknown
    created_at: np.ndarray  # float seconds since the epoch, nan when unknown: the arrival order

    def __len__(self) -> int:
        return len(self.choice)

    def subset(self, mask: np.ndarray) -> Table:
        cols = {name: getattr(self, name)[mask] for name in _ROW_ARRAYS}
        return Table(**cols, annotators=self.annotators, systems=self.systems, kinds=self.kinds, domains=self.domains)


_ROW_ARRAYS = ("item", "annotator", "system_a", "system_b", "choice", "kind", "domain", "left", "seconds", "created_at")


def _factorize(values: Sequence[Any] | np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    """Codes against the sorted distinct labels (as text). A dict pass is ~5x faster than np.unique on strings."""
    arr = values if isinstance(values, np.ndarray) else None
    if arr is not None and arr.dtype.kind in "iu":
        uniq, codes = np.unique(arr, return_inverse=True)
        return codes.astype(np.int64), tuple(str(v) for v in uniq)
    seen: dict[Any, int] = {}
    listed = values.tolist() if isinstance(values, np.ndarray) else values
    raw = np.fromiter((seen.setdefault(v, len(seen)) for v in listed), dtype=np.int64, count=len(listed))
    labels = [str(v) for v in seen]
    order = sorted(range(len(labels)), key=labels.__getitem__)
    remap = np.empty(len(labels), dtype=np.int64)
    remap[order] = np.arange(len(labels))
    sorted_labels = [labels[i] for i in order]
    if len(set(sorted_labels)) != len(sorted_labels):  # e.g. 7 and "7" in one column
        return _factorize([str(v) for v in listed])
    return remap[raw], tuple(sorted_labels)


def _code_in(values: Sequence[Any], labels: tuple[str, ...], *, missing: int = -1) -> np.ndarray:
    index = {label: i for i, label in enumerate(labels)}
    return np.fromiter(
        (missing if v in (None, "") else index.get(str(v), -2) for v in values), dtype=np.int64, count=len(values)
    )


def _timestamps(values: Sequence[Any] | np.ndarray) -> np.ndarray:
    """Datetimes, ISO 8601 text (as exports write it) or numbers, to float seconds; nan when empty."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "iuf":
        return values.astype(float)
    out = np.empty(len(values))
    for i, v in enumerate(values):
        if v in (None, ""):
            out[i] = np.nan
        elif isinstance(v, datetime):
            out[i] = (v if v.tzinfo else v.replace(tzinfo=UTC)).timestamp()
        elif isinstance(v, int | float):
            out[i] = float(v)
        else:
            try:
                parsed = datetime.fromisoformat(str(v).strip())
            except ValueError:
                raise TableError(f"row {i + 1}: created_at {v!r} is not an ISO 8601 time") from None
            out[i] = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    return out


def make_table(columns: Mapping[str, Sequence[Any] | np.ndarray]) -> Table:
    """Build a table from columns (name -> sequence). Raises TableError on any invalid row."""
    missing = [name for name in REQUIRED if name not in columns]
    if missing:
        raise TableError(f"missing column(s): {', '.join(missing)}")
    n = len(columns["choice"])
    for name in (*REQUIRED, *OPTIONAL):
        if name in columns and len(columns[name]) != n:
            raise TableError(f"column {name} has {len(columns[name])} values, expected {n}")

    choice_raw = columns["choice"]
    choice_codes, choice_labels = _factorize(choice_raw)
    bad = [label for label in choice_labels if label not in CHOICES]
    if bad:
        row = next(i for i, v in enumerate(choice_raw) if str(v) == bad[0])
        raise TableError(f"row {row + 1}: choice {bad[0]!r} is not one of a, b, tie")
    choice = np.array([CHOICES.index(label) for label in choice_labels], dtype=np.int8)[choice_codes]

    item, _ = _factorize(columns["item"])
    annotator, annotators = _factorize(columns["annotator"])
    both = np.concatenate(
        [np.asarray(columns["system_a"], dtype=object), np.asarray(columns["system_b"], dtype=object)]
    )
    sys_codes, systems = _factorize(both)
    system_a, system_b = sys_codes[:n], sys_codes[n:]
    same = np.flatnonzero(system_a == system_b)
    if len(same):
        raise TableError(f"row {same[0] + 1}: system_a and system_b are the same system ({systems[system_a[same[0]]]})")

    kind, kinds = _factorize(columns["kind"]) if "kind" in columns else (np.zeros(n, np.int64), ("",))
    domain, domains = _factorize(columns["domain"]) if "domain" in columns else (np.zeros(n, np.int64), ("",))
    if "left" in columns:
        left = _code_in(columns["left"], systems)
        wrong = np.flatnonzero((left == -2) | ((left >= 0) & (left != system_a) & (left != system_b)))
        if len(wrong):
            raise TableError(f"row {wrong[0] + 1}: left must be system_a or system_b")
    else:
        left = np.full(n, -1, dtype=np.int64)
    seconds = (
        np.array([np.nan if v in (None, "") else float(v) for v in columns["seconds"]], dtype=float)
        if "seconds" in columns and not isinstance(columns["seconds"], np.ndarray)
        else np.asarray(columns.get("seconds", np.full(n, np.nan)), dtype=float)
    )
    created_at = _timestamps(columns["created_at"]) if "created_at" in columns else np.full(n, np.nan)
    return Table(
        item=item,
        annotator=annotator,
        annotators=annotators,
        system_a=system_a,
        system_b=system_b,
        systems=systems,
        choice=choice,
        kind=kind,
        kinds=kinds,
        domain=domain,
        domains=domains,
        left=left,
        seconds=seconds,
        created_at=created_at,
    )


def table_from_rows(rows: Iterable[Mapping[str, Any]]) -> Table:
    """Rows are dicts with the REQUIRED keys and any OPTIONAL ones (the first row decides which)."""
    columns: dict[str, list[Any]] = {}
    for i, row in enumerate(rows):
        if i == 0:
            columns = {name: [] for name in (*REQUIRED, *OPTIONAL) if name in row}
        for name, col in columns.items():
            col.append(row.get(name))
    if not columns:
        columns = {name: [] for name in REQUIRED}
    return make_table(columns)


def oriented(table: Table, reference: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, choice) per row, with x < y alphabetically, or y the reference system when it is in the pair."""
    flip = table.system_a > table.system_b
    if reference is not None and reference in table.systems:
        ref = table.systems.index(reference)
        flip = np.where(table.system_a == ref, True, np.where(table.system_b == ref, False, flip))
    x = np.where(flip, table.system_b, table.system_a)
    y = np.where(flip, table.system_a, table.system_b)
    swap = np.array([B, A, TIE], dtype=np.int8)
    choice = np.where(flip, swap[table.choice], table.choice).astype(np.int8)
    return x, y, choice
