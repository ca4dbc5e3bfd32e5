"""Preference pairs: the one builder behind the `trl` export and DPO, its drops, prompts, split and bootstrap."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

from annotation.models import AnnotatorFlag, Judgment
from tests import factories
from tests.factories_preferences import MARKER, marker_preference_study
from training.models import Algorithm
from training.pipeline import OUTLINE_SYSTEM
from training.preference_sources import training_run_preference_pairs
from training.preferences import (
    CandidateText,
    ComparisonVotes,
    PairReport,
    comparison_pairs,
    heldout_task_keys,
    pairs_from_trl_file,
    task_bootstrap_accuracy,
)
from training.prompts import questions_prompt
from training.runs import training_run_create


def _votes(choices: list[str], kind: str = "questions") -> ComparisonVotes:
    return ComparisonVotes(
        comparison=7,
        kind=kind,
        task_key="t1",
        masked_task="Plan a workshop.",
        hidden_facts=["The budget is $900.", "It is for 12 nurses.", "It is in May."],
        a=CandidateText("ours", ["What is the budget?", "Who attends?"], [[0], [1]], "## A"),
        b=CandidateText("base", ["When is it?"], [[2]], "## B"),
        choices=choices,
    )


def test_a_questions_pair_is_the_questioner_prompt_and_one_question_per_line():
    (pair,) = comparison_pairs(_votes(["a", "a", "b"]), max_questions=4)
    assert pair.prompt == questions_prompt("Plan a workshop.", 4)
    assert pair.chosen == "What is the budget?\nWho attends?"
    assert pair.rejected == "When is it?"
    assert (pair.system_chosen, pair.votes, pair.judgments) == ("ours", 2, 3)


def test_an_outline_pair_shares_one_prompt_with_the_facts_either_candidate_revealed():
    (pair,) = comparison_pairs(_votes(["b"], kind="outline"))
    assert pair.prompt[0] == {"role": "system", "content": OUTLINE_SYSTEM}
    user = pair.prompt[1]["content"]
    assert user.startswith("Plan a workshop.")
    for fact in ("The budget is $900.", "It is for 12 nurses.", "It is in May."):
        assert f"- {fact}" in user
    assert (pair.chosen, pair.rejected) == ("## B", "## A")


@pytest.mark.parametrize(
    ("choices", "aggregation", "min_votes", "pairs", "reason"),
    [
        (["a", "tie", "tie"], "majority", 1, 0, "tie"),
        (["a", "b"], "majority", 1, 0, "split"),
        (["a", "tie"], "majority", 1, 0, "split"),
        (["a"], "majority", 2, 0, "too_few_votes"),
        ([], "majority", 1, 0, "no_judgments"),
        (["a", "b", "tie"], "per_judgment", 1, 2, "tie_judgments"),
    ],
)
def test_undecided_comparisons_are_dropped_and_counted_by_reason(choices, aggregation, min_votes, pairs, reason):
    report = PairReport()
    built = comparison_pairs(_votes(choices), aggregation=aggregation, min_votes=min_votes, report=report)
    assert len(built) == pairs == report.pairs
    assert report.dropped[reason] == 1
    if aggregation == "per_judgment":
        assert {(p.chosen, p.rejected) for p in built} == {
            ("What is the budget?\nWho attends?", "When is it?"),
            ("When is it?", "What is the budget?\nWho attends?"),
        }


def test_the_held_out_split_is_by_task_seeded_and_stable():
    keys = [f"task-{i}" for i in range(50)]
    heldout = heldout_task_keys(keys, share=0.2, seed=3)
    assert len(heldout) == 10
    assert heldout == heldout_task_keys(reversed(keys), share=0.2, seed=3)
    assert heldout != heldout_task_keys(keys, share=0.2, seed=4)
    assert heldout_task_keys(keys, share=0, seed=3) == set()


def test_the_bootstrap_resamples_tasks_not_pairs():
    one_big_task = [("t0", 1.0)] * 30 + [(f"t{i}", 0.0) for i in range(1, 4)]
    result = task_bootstrap_accuracy(one_big_task, n_boot=2000, seed=0)
    assert result["accuracy"] == pytest.approx(30 / 33)
    assert (result["n_pairs"], result["n_tasks"]) == (33, 4)
    # Over tasks, (3/4)^4 ≈ 32% of resamples hold no t0 at all: the interval reaches down to 0 (a bootstrap over
    # the 33 pairs would pretend they were independent and give a narrow interval around 0.91).
    assert result["lo"] == 0.0
    assert result["hi"] == pytest.approx(90 / 91)  # three draws of t0 and one other task


@pytest.mark.django_db
def test_the_trl_export_and_a_dpo_run_give_the_same_pairs_and_split(alice, bob, charlie, tmp_path):
    study = marker_preference_study(annotators=[alice, bob, charlie], tasks=12, tie_rate=0.2, flip_rate=0.2)
    AnnotatorFlag.objects.create(study=study, annotator=charlie, reason="failed gold")
    path = tmp_path / "prefs.jsonl"
    out = io.StringIO()
    args = ["--format", "trl", "--prompt", "chat", "--split", "0.25", "--seed", "5", "--exclude-flagged"]
    call_command("export_judgments", "--study", study.slug, "-o", str(path), *args, stdout=out)
    exported = [json.loads(line) for line in path.read_text().splitlines()]
    assert {r["split"] for r in exported} == {"train", "heldout"}

    run = training_run_create(
        name="alice-dpo",
        base_model_path="unused",
        algorithm=Algorithm.DPO,
        preference_studies=[study],
        preference_config={"heldout_share": 0.25, "seed": 5},
    )
    pairs = training_run_preference_pairs(run)
    from_run = {
        (p["task_key"], split): p for split, rows in (("train", pairs.train), ("heldout", pairs.heldout)) for p in rows
    }
    assert len(from_run) == len(exported)
    for record in exported:
        pair = from_run[(record["task_key"], record["split"])]
        assert record["prompt"] == pair["prompt"]
        assert record["chosen"] == [{"role": "assistant", "content": pair["chosen"]}]
        assert record["rejected"] == [{"role": "assistant", "content": pair["rejected"]}]
    assert pairs.report.dropped["flagged_judgments"] == Judgment.objects.filter(annotator=charlie).count() == 12


def test_a_trl_file_is_read_line_by_line_and_a_text_prompt_is_refused(tmp_path):
    good = {"prompt": [{"role": "user", "content": "Plan."}], "chosen": "Q1?", "rejected": "Q2?", "task_key": "t"}
    path = tmp_path / "prefs.jsonl"
    path.write_text(
        json.dumps(good) + "\nnot json\n" + json.dumps({**good, "prompt": "Plan."}) + "\n"
        + json.dumps({**good, "chosen": ""}) + "\n"
    )  # fmt: skip
    rows, problems = pairs_from_trl_file(path)
    assert len(rows) == 1
    assert problems[0].startswith("preferences file line 2: bad JSON")
    assert len(problems) == 3
    assert "line 3: prompt is plain text" in problems[1]
    assert "line 4: chosen and rejected must not be empty" in problems[2]


@pytest.mark.django_db
def test_the_text_export_keeps_the_masked_request_as_prompt(alice, bob, tmp_path):
    study = marker_preference_study(annotators=[alice, bob], tasks=3)
    factories.UserFactory(username="dora")
    path = tmp_path / "prefs.jsonl"
    call_command("export_judgments", "--study", study.slug, "--format", "trl", "-o", str(path), stdout=io.StringIO())
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 3
    assert all(r["prompt"].startswith("Write an outline for project") and "split" not in r for r in rows)
    assert all(r["chosen"].splitlines()[0] == MARKER for r in rows)
