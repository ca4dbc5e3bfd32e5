"""The demo's hand-written systems under auto_eval: the reward must order them as intended."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from training.autoeval import auto_eval_run
from training.models import System
from training.rewards import DEFAULT_SPEC

pytestmark = pytest.mark.django_db


def test_proactive_rl_beats_base_instruct_with_intervals_under_the_evaluation_spec():
    call_command("demo_setup", verbosity=0)
    proactive, base = System.objects.get(name="proactive-rl"), System.objects.get(name="base-instruct")
    [result] = auto_eval_run(systems=[proactive], baseline=base, n_boot=1000)
    assert result.reward_spec == DEFAULT_SPEC.as_dict()
    assert result.n_tasks == 36
    vs = result.metrics["vs_baseline"]
    for metric in ("reward", "coverage", "outline_coverage"):
        assert vs[metric]["difference"]["lo"] > 0, metric  # the whole 95% interval above zero
    assert vs["reward"]["baseline"]["lo"] > 0
    assert vs["reward"]["relative"]["mean"] > 0
