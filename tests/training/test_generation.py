from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse

from annotation.models import Candidate
from tests.factories import CandidateFactory, SystemFactory, TaskFactory
from training.generation import (
    auto_eval_run,
    generation_job_cancel,
    generation_job_progress,
    generation_job_run_inline,
    generation_job_start,
)
from training.models import AutoEvalResult, Backend, ChunkStatus, JobStatus
from training.rewards import RewardSpec

from .chat_server import ChatServer, scripted_reply

pytestmark = pytest.mark.django_db


def tasks(n: int):
    return [
        TaskFactory(
            masked_task=f"Write an outline for grant proposal {i}.",
            hidden_facts=["The budget is $5,000.", "The deadline is March 3."],
        )
        for i in range(n)
    ]


def openai_system(url: str, **params):
    return SystemFactory(
        name="chatty",
        backend=Backend.OPENAI,
        endpoint=url,
        model_path="m",
        generation_params={"backoff_s": 0.01, **params},
    )


def test_start_chunks_the_tasks_and_enqueues_on_commit(researcher, django_capture_on_commit_callbacks):
    system = SystemFactory(backend=Backend.TRANSFORMERS, model_path="/models/x", generation_params={"chunk_size": 3})
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = generation_job_start(system=system, tasks=tasks(20), user=researcher)
    assert len(callbacks) == 1
    assert job.total == 20
    assert job.status == JobStatus.QUEUED
    assert job.created_by == researcher
    # chunk_size is clamped to 8..32 tasks per Celery task.
    assert [len(c.task_ids) for c in job.chunks.all()] == [8, 8, 4]


def test_start_refuses_a_static_system_an_unknown_simulator_and_no_tasks():
    with pytest.raises(ValidationError, match="static"):
        generation_job_start(system=SystemFactory(backend=Backend.STATIC), tasks=tasks(1))
    system = SystemFactory(backend=Backend.TRANSFORMERS)
    with pytest.raises(ValidationError, match="unknown simulator"):
        generation_job_start(system=system, tasks=tasks(1), simulator="psychic")
    with pytest.raises(ValidationError, match="no tasks"):
        generation_job_start(system=system, tasks=[])
    assert not system.generation_jobs.exists()


def test_a_job_stores_candidates_skips_existing_ones_and_counts_each_task_once():
    chosen = tasks(10)
    with ChatServer(scripted_reply) as server:
        system = openai_system(server.url)
        CandidateFactory(task=chosen[0], system=system, questions=["Old?"])
        job = generation_job_start(system=system, tasks=chosen, simulator="lexical")
        generation_job_run_inline(job=job)
    job.refresh_from_db()
    assert (job.status, job.done, job.skipped, job.failed) == (JobStatus.SUCCEEDED, 10, 1, 0)
    assert job.tokens == 9 * 14  # 7 completion tokens per call, two calls per task
    assert Candidate.objects.filter(system=system).count() == 10
    assert Candidate.objects.get(task=chosen[0], system=system).questions == ["Old?"]
    fresh = Candidate.objects.get(task=chosen[1], system=system)
    assert fresh.questions[0] == "What is your budget?"
    assert fresh.answers[0] == "The budget is $5,000."
    assert fresh.revealed[:2] == [[0], [1]]
    assert fresh.metadata["generation_job"] == job.pk
    assert fresh.metadata["backend"] == "openai"
    progress = generation_job_progress(job=job)
    assert progress.percent == 100.0
    assert progress.eta_s is None


def test_permanent_failures_are_recorded_per_task():
    chosen = tasks(2)
    with ChatServer(lambda body, n: (400, "context too long")) as server:
        job = generation_job_start(system=openai_system(server.url), tasks=chosen, simulator="lexical")
        generation_job_run_inline(job=job)
    job.refresh_from_db()
    assert (job.status, job.failed, job.done) == (JobStatus.FAILED, 2, 2)
    assert {e["task_key"] for e in job.errors} == {t.key for t in chosen}
    assert "context too long" in job.errors[0]["error"]
    assert not Candidate.objects.exists()


def test_cancel_stops_the_chunks_that_have_not_started(researcher):
    system = SystemFactory(backend=Backend.TRANSFORMERS, model_path="/nowhere")
    job = generation_job_start(system=system, tasks=tasks(16))
    job = generation_job_cancel(job=job)
    assert job.status == JobStatus.CANCELLED
    assert job.cancel_requested
    assert set(job.chunks.values_list("status", flat=True)) == {ChunkStatus.CANCELLED}


def test_job_page_and_progress_json_are_for_staff_only(client, alice, researcher):
    job = generation_job_start(system=SystemFactory(backend=Backend.TRANSFORMERS), tasks=tasks(3))
    page = reverse("generation:job", args=[job.pk])
    data = reverse("generation:job-progress", args=[job.pk])
    client.force_login(alice)
    assert client.get(data).status_code == 302
    client.force_login(researcher)
    response = client.get(page)
    assert response.status_code == 200
    # The numbers are in the HTML itself; the script only refreshes them.
    assert b'data-k="done">0<' in response.content
    assert b'data-k="total">3<' in response.content
    assert client.get(data).json()["total"] == 3
    client.post(reverse("generation:job-cancel", args=[job.pk]))
    job.refresh_from_db()
    assert job.cancel_requested


def test_generate_candidates_command_runs_inline_with_a_progress_bar(capsys):
    chosen = tasks(3)
    with ChatServer(scripted_reply) as server:
        openai_system(server.url)
        call_command(
            "generate_candidates",
            "--system",
            "chatty",
            "--tasks",
            chosen[0].key,
            chosen[1].key,
            "--inline",
            "--simulator",
            "lexical",
        )
    assert Candidate.objects.count() == 2
    assert "2/2" in capsys.readouterr().out
    with pytest.raises(CommandError, match="unknown task key"):
        call_command("generate_candidates", "--system", "chatty", "--tasks", "nope")


LEXICAL = RewardSpec(matcher="lexical")


def test_auto_eval_scores_systems_against_a_baseline_and_exports(client, researcher):
    asker, mute = SystemFactory(name="asker"), SystemFactory(name="mute")
    for task in tasks(6):
        CandidateFactory(
            task=task,
            system=asker,
            questions=["What is the budget?", "When is the deadline?"],
            outline="- Budget: $5,000.\n- Deadline: March 3.",
        )
        CandidateFactory(task=task, system=mute, questions=["What is the budget?", "What tone?"], outline="- Plan.")
    results = auto_eval_run(systems=[asker, mute], split="test", baseline=mute, spec=LEXICAL, n_boot=200)
    asker_metrics = results[0].metrics
    assert results[0].n_tasks == 6
    assert asker_metrics["coverage"]["mean"] == 1.0
    assert asker_metrics["outline_coverage"]["mean"] == 1.0
    assert results[1].metrics["coverage"]["mean"] == 0.5
    coverage = asker_metrics["vs_baseline"]["coverage"]
    assert coverage["difference"]["mean"] == pytest.approx(0.5)
    assert coverage["relative"]["mean"] == pytest.approx(1.0)  # +100 %: the baseline's 0.5 is clearly above 0
    outline = asker_metrics["vs_baseline"]["outline_coverage"]
    assert outline["relative"] is None  # the baseline conveys no value: no ratio to a zero mean
    assert "not above zero" in outline["relative_note"]
    assert "vs_baseline" not in results[1].metrics
    assert all(r.reward_spec == LEXICAL.as_dict() for r in results)
    client.force_login(researcher)
    csv = client.get(reverse("generation:auto-eval-export", args=["csv"])).content.decode()
    assert csv.splitlines()[0].startswith("id,system,baseline,split,n_tasks")
    assert "asker" in csv
    assert AutoEvalResult.objects.count() == 2


def test_auto_eval_uses_one_k_for_every_system_whatever_their_own_max_questions(researcher):
    many = [f"Question {i} about the plan?" for i in range(8)]
    strict = SystemFactory(name="strict", generation_params={"max_questions": 3})
    loose = SystemFactory(name="loose", generation_params={"max_questions": 15})
    task = tasks(1)[0]
    CandidateFactory(task=task, system=strict, questions=many, outline="")
    CandidateFactory(task=task, system=loose, questions=many, outline="")
    results = auto_eval_run(systems=[strict, loose], spec=LEXICAL, n_boot=50)
    assert results[0].metrics["reward"]["mean"] == results[1].metrics["reward"]["mean"]
    assert results[0].metrics["reward"]["mean"] == pytest.approx(-0.1 * (8 - LEXICAL.k))


def test_auto_eval_takes_the_baselines_spec_when_none_is_given(researcher):
    base = SystemFactory(name="base", backend=Backend.TRANSFORMERS, model_path="/models/x")
    other = SystemFactory(name="other")
    task = tasks(1)[0]
    generation_job_start(system=base, tasks=[task], spec=LEXICAL.with_overrides({"k": 2}))
    CandidateFactory(task=task, system=base, questions=["What is the budget?"], outline="")
    CandidateFactory(task=task, system=other, questions=["What is the budget?"], outline="")
    [result] = auto_eval_run(systems=[other], baseline=base, n_boot=50)
    assert result.reward_spec["k"] == 2
    assert result.reward_spec["matcher"] == "lexical"


def test_auto_eval_command_prints_a_table_with_paired_differences(capsys):
    asker, mute = SystemFactory(name="asker"), SystemFactory(name="mute")
    for task in tasks(3):
        CandidateFactory(task=task, system=asker, questions=["What is the budget?"])
        CandidateFactory(task=task, system=mute, questions=["What tone?"])
    call_command("auto_eval", "--systems", "asker", "--baseline", "mute", "--matcher", "lexical")
    out = capsys.readouterr().out
    assert "asker" in out
    assert "reward spec: reward-v2 lexical" in out
    assert "difference +0.500" in out  # coverage: 1 of 2 facts against none
    assert "not above zero" in out  # no relative change against a baseline at zero
    with pytest.raises(CommandError, match="unknown system"):
        call_command("auto_eval", "--systems", "ghost")


def test_admin_lists_jobs_and_the_task_action_leads_to_the_generation_form(client, researcher):
    chosen = tasks(2)
    generation_job_start(system=SystemFactory(backend=Backend.TRANSFORMERS), tasks=chosen)
    client.force_login(researcher)
    assert client.get(reverse("admin:training_generationjob_changelist")).status_code == 200
    assert client.get(reverse("admin:training_autoevalresult_changelist")).status_code == 200
    response = client.post(
        reverse("admin:annotation_task_changelist"),
        {"action": "generate_candidates", "_selected_action": [t.pk for t in chosen]},
    )
    assert response.status_code == 302
    form = client.get(response["Location"])
    assert form.status_code == 200
    assert b"2 tasks selected" in form.content


def test_the_judges_verdicts_live_in_the_shared_cache():
    from training.generation import DjangoCacheMapping

    verdicts = DjangoCacheMapping()
    with pytest.raises(KeyError):
        verdicts["never-asked"]
    verdicts["asked"] = True
    verdicts["refused"] = False
    assert DjangoCacheMapping()["asked"] is True
    assert DjangoCacheMapping().get("refused") is False


def test_the_auto_eval_form_scores_every_system_under_one_spec(client, researcher):
    asker, mute = SystemFactory(name="asker"), SystemFactory(name="mute")
    for task in tasks(2):
        CandidateFactory(task=task, system=asker, questions=["What is the budget?"])
        CandidateFactory(task=task, system=mute, questions=["What tone?"])
    client.force_login(researcher)
    url = reverse("generation:auto-eval")
    response = client.post(
        url, {"systems": [asker.pk, mute.pk], "split": "test", "baseline": mute.pk, "matcher": "lexical"}
    )
    assert response.status_code == 302
    results = list(AutoEvalResult.objects.all())
    assert len(results) == 2
    assert {r.reward_spec["matcher"] for r in results} == {"lexical"}
    page = client.get(url).content.decode()
    assert "reward-v2 lexical" in page
    assert "not above zero" in page  # the baseline asks nothing useful: no relative change is printed
