"""What an answer study produces for researchers: the `answers` export and `preference_stats --json`."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from annotation.answers import answer_assignment_next, answer_set_submit
from annotation.exports import ExportError, export_to_file
from tests.annotation.answer_support import SYSTEM_NAMES, make_answer_study
from tests.annotation.judging_support import make_study

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _lexical_matcher(settings):
    settings.PIG_FIDELITY_MATCHER = "lexical"


def _answer_all(study, person) -> int:
    n = 0
    while (assignment := answer_assignment_next(study=study, annotator=person)) is not None:
        answer_set_submit(
            assignment_id=assignment.pk,
            annotator=person,
            answers=[{"text": "The budget is $5,000."}, {"doesnt_say": True}, {"text": "Soon,\nI hope."}],
            question_seconds=[4, 2, 3],
        )
        n += 1
    return n


def test_export_answers_writes_one_row_per_answered_question(tmp_path, alice, capsys):
    study = make_answer_study(tasks=2, annotators=(alice,))
    assert _answer_all(study, alice) == 4
    target = tmp_path / "answers.csv"
    call_command("export_judgments", "--study", study.slug, "--format", "answers", "-o", str(target))
    rows = list(csv.DictReader(target.open(encoding="utf-8")))
    assert len(rows) == 4 * 3
    assert {r["system"] for r in rows} == set(SYSTEM_NAMES)
    first = rows[0]
    assert first["question"] == "What is the budget?"
    assert first["human_answer"] == "The budget is $5,000."
    assert first["human_revealed"] == "The budget is $5,000."
    assert first["simulated_revealed"] == "The budget is $5,000."
    assert first["seconds"] == "4.0"
    second = rows[1]
    assert (second["doesnt_say"], second["human_answer"]) == ("True", "No preference / not specified.")
    assert second["human_revealed"] == ""
    assert second["simulated_revealed"] == "The audience is first-year students."
    assert rows[2]["human_answer"] == "Soon,\nI hope."
    assert first["annotator"] != "alice"  # pseudonymous unless asked
    assert "12 rows" in capsys.readouterr().out


def test_answers_format_is_refused_for_a_pairwise_study_and_judgment_formats_for_an_answer_study(tmp_path):
    pairwise = make_study(comparisons=1)
    answer = make_answer_study(tasks=1, slug="answering")
    with pytest.raises(ExportError, match="does not apply"):
        export_to_file(study=pairwise, fmt="answers", path=tmp_path / "x.csv")
    with pytest.raises(CommandError, match="does not apply"):
        call_command("export_judgments", "--study", answer.slug, "--format", "csv", "-o", str(tmp_path / "y.csv"))
    assert list(tmp_path.iterdir()) == []


def test_answers_download_streams_for_staff(client, alice, researcher):
    study = make_answer_study(tasks=1, annotators=(alice,))
    _answer_all(study, alice)
    client.force_login(researcher)
    response = client.get(reverse("results:download", args=[study.slug, "answers"]))
    assert response.status_code == 200
    assert response["Content-Disposition"].endswith('-answers.answers.csv"')
    body = b"".join(response.streaming_content).decode()
    assert len(list(csv.DictReader(io.StringIO(body)))) == 6
    assert client.get(reverse("results:download", args=[study.slug, "csv"])).status_code == 404


def test_preference_stats_json_carries_the_simulator_report(alice, capsys):
    study = make_answer_study(tasks=3, annotators=(alice,))
    _answer_all(study, alice)
    call_command("preference_stats", "--study", study.slug, "--json")
    report = json.loads(capsys.readouterr().out)
    sim = report["simulator"]
    assert sim["n_transcripts"] == 6
    assert sim["matcher"] == "lexical"
    overall = sim["overall"]
    # Per transcript, the person revealed the budget and the simulator the budget and the audience.
    assert overall["human_coverage"]["mean"] == pytest.approx(0.5)
    assert overall["simulated_coverage"]["mean"] == pytest.approx(1.0)
    assert overall["optimism"]["mean"] == pytest.approx(0.5)
    assert overall["false_reveals"] == 6
    assert overall["misses"] == 0
    assert {s["system"] for s in sim["systems"]} == set(SYSTEM_NAMES)
    assert sim["ranking"]["kendall_tau"]["mean"] is None  # both systems asked the same: ranks are tied
    call_command("preference_stats", "--study", study.slug)
    text = capsys.readouterr().out
    assert "simulator fidelity (6 answer sets" in text
    assert "optimism 0.500" in text


def test_preference_stats_of_a_pairwise_study_has_no_simulator_key(capsys):
    study = make_study(comparisons=1)
    call_command("preference_stats", "--study", study.slug, "--json")
    assert "simulator" not in json.loads(capsys.readouterr().out)


def test_a_new_answer_set_costs_one_scoring_not_the_whole_studys(alice, bob, monkeypatch):
    from django.core.cache import cache

    from annotation import answers_report

    cache.clear()
    study = make_answer_study(tasks=3, annotators=(alice, bob), overlap=2)
    _answer_all(study, alice)
    scored: list[int] = []
    real = answers_report.transcript_score
    monkeypatch.setattr(answers_report, "transcript_score", lambda t, m: scored.append(t.pk) or real(t, m))
    first = answers_report.study_fidelity(study=study, rounds=1000)
    assert len(scored) == 6
    assignment = answer_assignment_next(study=study, annotator=bob)
    answer_set_submit(assignment_id=assignment.pk, annotator=bob, answers=[{"doesnt_say": True}] * 3)
    second = answers_report.study_fidelity(study=study, rounds=1000)
    assert len(scored) == 7  # only bob's new set was scored
    assert (first["n_transcripts"], second["n_transcripts"]) == (6, 7)
    assert answers_report.study_fidelity(study=study, rounds=1000) == second  # cached as a whole
