from __future__ import annotations

import json

import pytest

from annotation.blinding import compile_patterns, find_self_identification
from annotation.models import Candidate
from annotation.selectors import study_blinding_excluded_count
from annotation.services import candidates_clear_blinding_flags, candidates_import, study_build_comparisons
from tests import factories


@pytest.mark.parametrize(
    "text",
    [
        "As o3-mini, I would first ask about scope.",
        "I am Qwen, created by Alibaba Cloud.",
        "I'm ChatGPT.",
        "This outline was written by our proactive-rl system.",
    ],
)
def test_self_identifying_text_is_found(text: str):
    patterns = compile_patterns(["proactive-rl"])
    assert find_self_identification([text], patterns)


def test_ordinary_questions_are_clean():
    patterns = compile_patterns(["proactive-rl", "base-instruct"])
    texts = ["What is the budget?", "Who reads the memo?", "## Plan\n- Instruct staff on the base camp"]
    assert find_self_identification(texts, patterns) == []


@pytest.mark.django_db
def test_flagged_candidates_are_left_out_of_studies_until_a_researcher_clears_them():
    task = factories.TaskFactory(key="k1")
    line = {"key": "k1", "questions": ["As o3-mini, may I ask the budget?"], "answers": ["x"], "outline": "## O"}
    report = candidates_import(lines=[json.dumps(line).encode()], system_name="o3-mini")
    assert "name a system or vendor" in report.notes[-1]
    flagged = Candidate.objects.get(system__name="o3-mini")
    assert "As o3-mini" in flagged.blinding_flags
    other = factories.CandidateFactory(task=task)
    study = factories.StudyFactory()
    study.systems.add(flagged.system, other.system)

    assert study_build_comparisons(study=study) == 0
    assert study_blinding_excluded_count(study=study) == 1

    assert candidates_clear_blinding_flags(candidate_ids=[flagged.pk]) == 1
    assert study_build_comparisons(study=study) == 1
    assert study_blinding_excluded_count(study=study) == 0
