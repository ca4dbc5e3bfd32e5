"""Preference statistics for pairwise human judgments. Pure: numpy and scipy only, no Django.

table = make_table({"item": [...], "annotator": [...], "system_a": [...], "system_b": [...],
                    "choice": [...], "kind": [...], "domain": [...], "left": [...]})
report = preference_report(table, reference="o3-mini")
"""

from __future__ import annotations

from .proportions import holm, items_needed, sign_test, wilson
from .report import DEFAULT_BOOT, preference_report, sequential_rows
from .table import CHOICES, OPTIONAL, REQUIRED, Table, TableError, make_table, oriented, table_from_rows

__all__ = [
    "CHOICES",
    "DEFAULT_BOOT",
    "OPTIONAL",
    "REQUIRED",
    "Table",
    "TableError",
    "holm",
    "items_needed",
    "make_table",
    "oriented",
    "preference_report",
    "sequential_rows",
    "sign_test",
    "table_from_rows",
    "wilson",
]
