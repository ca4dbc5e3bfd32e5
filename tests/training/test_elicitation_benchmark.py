from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from training.benchmarks.elicitation import DATA_PATH, FAMILIES, load_tasks


def test_the_shipped_file_loads_with_every_family_on_every_task():
    tasks = load_tasks()
    assert tasks
    for task in tasks:
        assert set(task.question_sets) == set(FAMILIES)
        assert 4 <= len(task.facts) <= 6
        assert task.question_sets["EMPTY"] == ()
        assert all(f.value.lower() not in task.masked_task.lower() for f in task.facts)


def test_splits_partition_the_tasks():
    everything = {t.key for t in load_tasks()}
    dev, test = {t.key for t in load_tasks("dev")}, {t.key for t in load_tasks("test")}
    assert dev
    assert test
    assert dev.isdisjoint(test)
    assert dev | test == everything


def test_an_unknown_split_is_refused():
    with pytest.raises(ValueError, match="unknown split"):
        load_tasks("train")


def test_tasks_are_frozen():
    task = load_tasks()[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        task.key = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        task.question_sets["GOOD"] = ()  # type: ignore[index]


def _rows() -> list[dict[str, Any]]:
    return [json.loads(line) for line in DATA_PATH.read_text(encoding="utf-8").splitlines() if line.strip()]


def _set_first_good_asks(row: dict[str, Any]) -> None:
    row["question_sets"]["GOOD"][0]["asks"] = [len(row["facts"])]


def _drop_family(row: dict[str, Any]) -> None:
    del row["question_sets"]["COMPOUND"]


def _three_facts(row: dict[str, Any]) -> None:
    row["facts"] = row["facts"][:3]


def _leak_value(row: dict[str, Any]) -> None:
    row["masked_task"] += " " + row["facts"][0]["value"].upper()


def _bad_split(row: dict[str, Any]) -> None:
    row["split"] = "train"


def _unknown_field(row: dict[str, Any]) -> None:
    row["hidden_facts"] = []


def _good_misses_a_fact(row: dict[str, Any]) -> None:
    row["question_sets"]["GOOD"] = row["question_sets"]["GOOD"][1:]


def _echo_quotes_nothing(row: dict[str, Any]) -> None:
    row["question_sets"]["ECHO"][0]["q"] = "Could you say more about that?"


def _value_in_a_good_question(row: dict[str, Any]) -> None:
    row["question_sets"]["GOOD"][0]["q"] += f" Is it {row['facts'][0]['value']}?"


def _outline_states_an_unlabelled_value(row: dict[str, Any]) -> None:
    empty = next(o for o in row["outlines"] if not o["conveys"])
    empty["text"] += "\n- " + row["facts"][1]["value"]


def _given_but_asks(row: dict[str, Any]) -> None:
    row["question_sets"]["REDUNDANT"][0] = {"q": "What is it about?", "asks": [0], "given": True}


def _boolean_index(row: dict[str, Any]) -> None:
    row["outlines"][0]["conveys"] = [True]


def _duplicate_asks_differ(row: dict[str, Any]) -> None:
    row["question_sets"]["DUPLICATE"][0]["asks"] = []


CORRUPTIONS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "index out of range": (_set_first_good_asks, "outside"),
    "family missing": (_drop_family, "lacks family COMPOUND"),
    "too few facts": (_three_facts, "4–6"),
    "value left in masked": (_leak_value, "still in masked_task"),
    "bad split": (_bad_split, "split must be"),
    "unknown field": (_unknown_field, "unknown field"),
    "GOOD misses a fact": (_good_misses_a_fact, "GOOD must ask for every fact"),
    "ECHO quotes nothing": (_echo_quotes_nothing, "quotes no hidden value"),
    "value in a GOOD question": (_value_in_a_good_question, "contains hidden value"),
    "outline value unlabelled": (_outline_states_an_unlabelled_value, "conveys omits"),
    "given but asks": (_given_but_asks, "marked given"),
    "boolean index": (_boolean_index, "list of integers"),
    "DUPLICATE asks differ": (_duplicate_asks_differ, "DUPLICATE"),
}


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_a_corrupted_line_is_refused_with_its_line_number(tmp_path: Path, name: str):
    corrupt, message = CORRUPTIONS[name]
    rows = _rows()
    bad = copy.deepcopy(rows[1])
    corrupt(bad)
    path = tmp_path / "tasks.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [rows[0], bad, *rows[2:]]) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 2: ") as raised:
        load_tasks(path=path)
    assert message in str(raised.value)


def test_bad_json_and_repeated_keys_name_their_line(tmp_path: Path):
    rows = _rows()
    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps(rows[0]) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 2: bad JSON"):
        load_tasks(path=path)
    path.write_text(json.dumps(rows[0]) + "\n" + json.dumps(rows[0]) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 2: duplicate key"):
        load_tasks(path=path)


def test_the_unchanged_copy_loads(tmp_path: Path):
    path = tmp_path / "tasks.jsonl"
    path.write_text(DATA_PATH.read_text(encoding="utf-8"), encoding="utf-8")
    assert [t.key for t in load_tasks(path=path)] == [t.key for t in load_tasks()]
