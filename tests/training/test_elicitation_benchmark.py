from __future__ import annotations

import copy
import dataclasses
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from training.benchmarks.elicitation import DATA_PATH, FAMILIES, BenchTask, load_tasks


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


def test_the_benchmark_is_big_and_balanced_enough():
    tasks = load_tasks()
    assert len(tasks) >= 16
    by_domain: dict[str, set[str]] = {}
    for task in tasks:
        by_domain.setdefault(task.domain, set()).add(task.split)
    assert len(by_domain) >= 8
    assert all(splits == {"dev", "test"} for splits in by_domain.values())  # every domain in both splits


def test_the_split_rule_holds():
    # Fixed before any tuning: <domain>-01 is dev, <domain>-02 is test. Changing it invalidates reported figures.
    for task in load_tasks():
        assert task.split == {"01": "dev", "02": "test"}[task.key.rsplit("-", 1)[1]], task.key


def test_no_demo_domain_is_reused():
    demo = Path(__file__).resolve().parents[2] / "annotation" / "fixtures" / "demo" / "tasks.jsonl"
    demo_domains = {json.loads(line)["domain"] for line in demo.read_text(encoding="utf-8").splitlines() if line}
    assert demo_domains
    assert demo_domains.isdisjoint({t.domain for t in load_tasks()})


def _coverage(task: BenchTask, family: str) -> float:
    return len({i for q in task.question_sets[family] for i in q.asks}) / len(task.facts)


def test_families_have_their_documented_shape():
    for task in load_tasks():
        sets, n = task.question_sets, len(task.facts)
        assert len(sets["GOOD"]) == n, task.key
        assert all(len(q.asks) == 1 for q in sets["GOOD"] + sets["PARTIAL"] + sets["DUPLICATE"]), task.key
        assert 0.3 <= _coverage(task, "PARTIAL") <= 0.7, task.key
        assert 3 <= len(sets["REDUNDANT"]) <= 4, task.key
        assert all(q.given for q in sets["REDUNDANT"]), task.key
        assert len(sets["DUPLICATE"]) == 4, task.key
        assert 12 <= len(sets["SHOTGUN"]) <= 15, task.key
        assert any(q.asks for q in sets["SHOTGUN"]), task.key
        assert any(not q.asks for q in sets["SHOTGUN"]), task.key
        assert 4 <= len(sets["TEMPLATE"]) <= 5, task.key
        assert 1 <= len(sets["COMPOUND"]) <= 2, task.key
        assert all(len(q.asks) >= 2 for q in sets["COMPOUND"]), task.key
        assert len(sets["GIBBERISH"]) == 3, task.key


def test_a_perfect_matcher_would_order_the_families_as_intended():
    # With the labels themselves as the matcher, coverage must already order the families; otherwise an
    # ordering violation in the audit could be the data's fault rather than the matcher's.
    for task in load_tasks():
        good, partial = _coverage(task, "GOOD"), _coverage(task, "PARTIAL")
        assert good == 1.0, task.key
        assert partial < good, task.key
        for weaker in ("REDUNDANT", "DUPLICATE", "TEMPLATE", "GIBBERISH", "EMPTY"):
            assert _coverage(task, weaker) < partial, (task.key, weaker)
        for bounded in ("SHOTGUN", "COMPOUND", "ECHO"):
            assert _coverage(task, bounded) <= good, (task.key, bounded)


def test_outlines_cover_all_none_and_about_half():
    for task in load_tasks():
        shares = [len(o.conveys) / len(task.facts) for o in task.outlines]
        assert 1.0 in shares, task.key
        assert 0.0 in shares, task.key
        assert any(0.3 <= s <= 0.7 for s in shares), task.key


def test_the_loader_is_pure():
    code = "import sys, training.benchmarks.elicitation as b; b.load_tasks(); print('django' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
