from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from annotation.models import Candidate, Task
from annotation.services import ValidationFailed, candidates_import, tasks_import
from tests import factories
from training.models import System

pytestmark = pytest.mark.django_db


def task_row(i: int, **over: object) -> dict:
    row = {
        "key": f"t-{i:03d}",
        "domain": ["grant proposal", "legal memo"][i % 2],
        "full_task": f"Draft an outline for project {i}; the deadline is in May.",
        "masked_task": f"Draft an outline for project {i}.",
        "hidden_facts": ["The deadline is in May."],
        "split": "train" if i % 3 else "test",
    }
    row.update(over)
    return row


def to_bytes(lines: list[object]) -> list[bytes]:
    return [(line if isinstance(line, bytes) else json.dumps(line).encode()) + b"\n" for line in lines]


def test_a_good_file_imports_every_row():
    report = tasks_import(lines=to_bytes([task_row(i) for i in range(50)]))
    assert report.created == 50
    assert Task.objects.count() == 50
    task = Task.objects.get(key="t-003")
    assert task.hidden_facts == ["The deadline is in May."]
    assert task.split == "test"


def test_three_bad_lines_among_fifty_good_are_reported_and_nothing_is_written():
    lines = to_bytes([task_row(i) for i in range(50)])
    lines.insert(7, b"{not json\n")  # line 8
    lines.insert(20, json.dumps(task_row(99, hidden_facts="one fact")).encode() + b"\n")  # line 21
    lines.insert(40, json.dumps({k: v for k, v in task_row(98).items() if k != "masked_task"}).encode())  # 41
    with pytest.raises(ValidationFailed) as exc:
        tasks_import(lines=lines)
    assert [e.line for e in exc.value.errors] == [8, 21, 41]
    assert "bad JSON" in str(exc.value.errors[0])
    assert "hidden_facts" in str(exc.value.errors[1])
    assert "missing field 'masked_task'" in str(exc.value.errors[2])
    assert not Task.objects.exists()


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"\xff\xfe broken\n", "not valid UTF-8"),
        (json.dumps(task_row(1, full_task="   ")).encode(), "field 'full_task' is empty"),
        (json.dumps(task_row(1, domain=7)).encode(), "must be a string"),
        (json.dumps(task_row(1, split="dev")).encode(), "split"),
        (json.dumps([1, 2]).encode(), "expected a JSON object"),
        (("[" * 5000 + "]" * 5000).encode(), "JSON"),
        (
            json.dumps(task_row(1, hidden_facts=[{"slot": "budget"}])).encode(),
            "hidden fact 1 needs a non-empty string 'value'",
        ),
        (
            json.dumps(task_row(1, hidden_facts=["ok", {"slot": "x", "value": "y", "size": 3}])).encode(),
            "hidden fact 2 has unknown field",
        ),
        (
            json.dumps(task_row(1, hidden_facts=["ok", 5])).encode(),
            "hidden fact 2 must be a string or a {slot, value} object",
        ),
        (json.dumps(task_row(1, hidden_facts=[])).encode(), "'hidden_facts' must be a non-empty list"),
    ],
)
def test_each_kind_of_bad_line_gets_a_reason(line: bytes, reason: str):
    with pytest.raises(ValidationFailed) as exc:
        tasks_import(lines=[json.dumps(task_row(0)).encode(), line])
    assert exc.value.errors[0].line == 2
    assert reason in exc.value.errors[0].message


def test_hidden_facts_may_be_sentences_or_slot_value_objects():
    facts = [
        "The deadline is in May.",
        {"slot": "budget", "value": "$35,000", "text": "The budget is $35,000."},
        {"slot": "audience", "value": "city council members"},
    ]
    tasks_import(lines=to_bytes([task_row(1, hidden_facts=facts)]))
    task = Task.objects.get(key="t-001")
    assert task.hidden_facts == [
        "The deadline is in May.",
        "The budget is $35,000.",
        "The audience is city council members.",
    ]
    assert task.fact_slots == [
        {"slot": "deadline", "value": "in May"},  # derived from the sentence
        {"slot": "budget", "value": "$35,000"},
        {"slot": "audience", "value": "city council members"},
    ]


def test_the_demo_tasks_carry_explicit_slots_for_every_hidden_fact():
    path = Path(__file__).resolve().parents[2] / "annotation" / "fixtures" / "demo" / "tasks.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(rows) == 36
    for row in rows:
        for fact in row["hidden_facts"]:
            assert isinstance(fact, dict), row["key"]
            assert fact["slot"], row["key"]
            assert fact["text"], row["key"]
            assert fact["value"].lower() in row["full_task"].lower(), (row["key"], fact["value"])
            assert fact["value"].lower() not in row["masked_task"].lower(), (row["key"], fact["value"])


def test_a_key_repeated_in_the_file_is_reported_with_both_lines():
    with pytest.raises(ValidationFailed) as exc:
        tasks_import(lines=to_bytes([task_row(1), task_row(2), task_row(1)]))
    assert str(exc.value.errors[0]) == "line 3: duplicate key 't-001' (first on line 1)"


def test_reimporting_is_idempotent_and_updates_changed_tasks_in_place():
    tasks_import(lines=to_bytes([task_row(i) for i in range(5)]))
    ids = dict(Task.objects.values_list("key", "id"))
    again = tasks_import(lines=to_bytes([task_row(i) for i in range(5)]))
    assert (again.created, again.updated, again.unchanged) == (0, 0, 5)
    changed = tasks_import(lines=to_bytes([task_row(0, domain="travel itinerary")]))
    assert (changed.created, changed.updated) == (0, 1)
    assert Task.objects.get(key="t-000").domain == "travel itinerary"
    assert dict(Task.objects.values_list("key", "id")) == ids


def test_candidates_for_unknown_tasks_are_refused():
    factories.TaskFactory(key="known")
    lines = to_bytes(
        [
            {"key": "known", "questions": ["Q?"], "answers": ["A."], "outline": "## O"},
            {"key": "missing", "questions": ["Q?"], "answers": ["A."], "outline": "## O"},
        ]
    )
    with pytest.raises(ValidationFailed) as exc:
        candidates_import(lines=lines, system_name="new-system")
    assert str(exc.value.errors[0]) == "line 2: unknown task key 'missing'"
    assert not System.objects.filter(name="new-system").exists()
    assert not Candidate.objects.exists()


def test_candidates_need_one_answer_per_question():
    factories.TaskFactory(key="known")
    line = {"key": "known", "questions": ["Q1?", "Q2?"], "answers": ["A."], "outline": "## O"}
    with pytest.raises(ValidationFailed, match="1 answers for 2 questions"):
        candidates_import(lines=to_bytes([line]), system_name="s")


def test_candidates_import_creates_a_static_system_and_is_idempotent():
    factories.TaskFactory(key="k1")
    lines = to_bytes([{"key": "k1", "questions": ["Budget?"], "answers": ["$5k"], "outline": "## Plan"}])
    first = candidates_import(lines=lines, system_name="baseline")
    second = candidates_import(lines=lines, system_name="baseline")
    assert (first.created, second.created, second.unchanged) == (1, 0, 1)
    assert System.objects.get(name="baseline").backend == "static"
    assert Candidate.objects.count() == 1


def test_a_judged_candidate_cannot_be_changed_by_reimport(alice):
    from annotation.models import Judgment
    from tests.annotation.test_models import _assignment

    comparison = factories.ComparisonFactory()
    Judgment.objects.create(
        assignment=_assignment(comparison, alice), comparison=comparison, annotator=alice, choice="a", seconds=1
    )
    cand = comparison.candidate_a
    line = {"key": cand.task.key, "questions": ["Different?"], "answers": ["x"], "outline": "## new"}
    with pytest.raises(ValidationFailed, match="already judged"):
        candidates_import(lines=to_bytes([line]), system_name=cand.system.name)
    cand.refresh_from_db()
    assert cand.questions != ["Different?"]


def test_import_tasks_command_reports_line_numbers_and_exits_nonzero(tmp_path: Path):
    path = tmp_path / "tasks.jsonl"
    path.write_bytes(b"".join(to_bytes([task_row(0), {"key": "x"}])))
    with pytest.raises(CommandError) as exc:
        call_command("import_tasks", str(path))
    assert f"{path}: line 2: missing field 'domain'" in str(exc.value)
    assert not Task.objects.exists()


def test_import_commands_load_good_files(tmp_path: Path):
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_bytes(b"".join(to_bytes([task_row(i) for i in range(3)])))
    cands = tmp_path / "cands.jsonl"
    cands.write_bytes(
        b"".join(
            to_bytes(
                [{"key": f"t-{i:03d}", "questions": ["Q?"], "answers": ["A"], "outline": "## O"} for i in range(3)]
            )
        )
    )
    out = io.StringIO()
    call_command("import_tasks", str(tasks), stdout=out)
    call_command("import_candidates", str(cands), "--system", "sys-one", stdout=out)
    assert "3 created" in out.getvalue()
    assert Candidate.objects.filter(system__name="sys-one").count() == 3
