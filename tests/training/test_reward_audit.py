"""The reward audit on the labelled elicitation benchmark, with bounds on its figures (regressions fail here).

Figures at the time of writing (reward-v2, offline matcher): DEV question→fact precision 0.843, recall 0.840;
TEST precision 0.845, recall 0.786; outline→fact F1 0.913 / 0.900; 1 (DEV) and 2 (TEST) violated orderings among
GOOD, PARTIAL, DUPLICATE, REDUNDANT and GIBBERISH. The issue's targets (precision ≥ 0.85, recall ≥ 0.80, no such
violation) are not met; `test_the_issue_targets` records that as a strict expected failure."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from training.audit import AuditReport, audit_split, tune
from training.rewards import DEFAULT_SPEC

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def reports() -> dict[str, AuditReport]:
    return {split: audit_split(split, DEFAULT_SPEC) for split in ("dev", "test")}


@pytest.mark.parametrize("split", ["dev", "test"])
def test_question_to_fact_matching_stays_within_its_bounds(reports, split):
    report = reports[split]
    assert report.questions.precision >= 0.82
    assert report.questions.recall >= 0.76


@pytest.mark.parametrize("split", ["dev", "test"])
def test_outline_coverage_checks_values_within_its_bounds(reports, split):
    assert reports[split].outlines.precision >= 0.93
    assert reports[split].outlines.recall >= 0.84


@pytest.mark.parametrize("split", ["dev", "test"])
def test_family_orderings_stay_within_their_bounds(reports, split):
    report = reports[split]
    assert len(report.targeted_violations) <= 2
    assert len(report.violations) <= 8
    assert report.label_violations == []  # the reward formula itself orders the labelled families as intended
    rewards = report.family_reward
    assert rewards["GIBBERISH"] == rewards["EMPTY"] == 0.0
    assert rewards["GOOD"] > rewards["PARTIAL"] > max(rewards[f] for f in ("REDUNDANT", "DUPLICATE", "GIBBERISH"))
    assert rewards["ECHO"] < rewards["GOOD"]  # quoting the hidden value elicits nothing
    assert rewards["SHOTGUN"] < rewards["GOOD"]


@pytest.mark.xfail(strict=True, reason="measured: DEV P 0.843 R 0.840, 1 targeted violation; TEST P 0.845 R 0.786, 2")
@pytest.mark.parametrize("split", ["dev", "test"])
def test_the_issue_targets(reports, split):
    assert reports[split].meets_targets()


def test_tuning_refuses_the_test_split():
    with pytest.raises(ValueError, match="DEV split only"):
        tune(DEFAULT_SPEC, split="test")


def test_the_command_prints_figures_violations_and_family_rewards(capsys):
    call_command("reward_audit", "--matcher", "lexical", "--split", "dev")
    out = capsys.readouterr().out
    assert "reward spec: reward-v2 lexical" in out
    assert "== DEV (9 tasks) ==" in out
    assert "question→fact      precision" in out
    assert "outline→fact" in out
    assert "GIBBERISH  +0.000" in out
    assert "ordering violations:" in out
    with pytest.raises(CommandError, match="judge_system"):
        call_command("reward_audit", "--matcher", "llm")
