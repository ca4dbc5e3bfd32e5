"""Reading a judgments file (the CSV that export_judgments writes, or any CSV with the input columns)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from .table import OPTIONAL, REQUIRED, Table, TableError, make_table

_TRUE = {"true", "1", "yes"}


def read_judgments_csv(path: str | Path, *, exclude_flagged: bool = False, include_gold: bool = False) -> Table:
    """Gold rows (is_gold true) are quality checks, not evidence, and are dropped unless asked for;
    rows of flagged annotators (annotator_flagged true) are dropped with `exclude_flagged`."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        missing = [name for name in REQUIRED if name not in header]
        if missing:
            raise TableError(f"{path}: missing column(s): {', '.join(missing)}")
        if exclude_flagged and "annotator_flagged" not in header:
            raise TableError(f"{path}: --exclude-flagged needs an annotator_flagged column")
        names = [name for name in (*REQUIRED, *OPTIONAL) if name in header]
        columns: dict[str, list[Any]] = {name: [] for name in names}
        for row in reader:
            if not include_gold and str(row.get("is_gold", "")).lower() in _TRUE:
                continue
            if exclude_flagged and str(row["annotator_flagged"]).lower() in _TRUE:
                continue
            for name in names:
                columns[name].append(row[name])
    return make_table(columns)
