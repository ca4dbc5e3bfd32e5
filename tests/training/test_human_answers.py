"""People's answers scored with the reward's simulator and matcher; outlines written from them by a system."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from annotation.answers import answer_assignment_next, answer_set_submit
from annotation.models import AnnotatorFlag, Candidate
from tests.annotation.answer_support import make_answer_study
from training.generation import auto_eval_run, generation_job_run_inline, human_outlines_start
from training.human_answers import HumanAnswer, HumanAnswerReplay, score_transcript
from training.matching import LexicalMatcher
from training.models import Backend, JobStatus, System
from training.rewards import default_spec

from .chat_server import ChatServer

LEXICAL = default_spec().with_overrides({"matcher": "lexical"})

FACTS = ["The budget is $5,000.", "The audience is first-year students."]
QUESTIONS = ["What is the budget?", "Who is the audience?", "What is the deadline?"]


def test_a_person_reveals_what_the_matcher_links_to_their_words_and_doesnt_say_reveals_nothing():
    replay = HumanAnswerReplay(
        [HumanAnswer("$5,000"), HumanAnswer("", doesnt_say=True), HumanAnswer("first-year students")],
        LexicalMatcher(),
    )
    answers = replay.answer(QUESTIONS, FACTS)
    assert [a.revealed for a in answers] == [[0], [], [1]]
    assert answers[1].text == "No preference / not specified."
    with pytest.raises(ValueError, match="2 human answers for 3 questions"):
        HumanAnswerReplay([HumanAnswer("a"), HumanAnswer("b")], LexicalMatcher()).answer(QUESTIONS, FACTS)


def test_score_transcript_compares_the_reward_from_people_and_from_the_simulator():
    score = score_transcript(
        questions=QUESTIONS,
        masked_task="Write an outline for a grant proposal.",
        hidden_facts=FACTS,
        answers=[HumanAnswer("", doesnt_say=True), HumanAnswer("", doesnt_say=True), HumanAnswer("", doesnt_say=True)],
        matcher=LexicalMatcher(),
    )
    # The simulator hands out both facts; the person, holding the same card, said nothing.
    assert score.simulated_revealed == [[0], [1], []]
    assert score.human_revealed == [[], [], []]
    assert (score.simulated_coverage, score.human_coverage) == (1.0, 0.0)
    assert score.simulated_reward > score.human_reward


def _answered_study(alice, bob):
    study = make_answer_study(tasks=3, systems=1, annotators=(alice, bob), overlap=2, slug="played")
    for person, text in ((alice, "It is $5,000."), (bob, "Bob thinks $9,999.")):
        while (assignment := answer_assignment_next(study=study, annotator=person)) is not None:
            answer_set_submit(
                assignment_id=assignment.pk,
                annotator=person,
                answers=[{"text": text}, {"doesnt_say": True}, {"text": "Next Friday."}],
            )
    return study


@pytest.mark.django_db
def test_a_system_writes_outlines_from_human_answers_as_a_derived_system(alice, bob):
    study = _answered_study(alice, bob)
    source = study.systems.get()
    with pytest.raises(ValidationError, match="static"):
        human_outlines_start(study=study, source=source)
    prompts: list[list[dict]] = []

    def reply(body, n):
        prompts.append(body["messages"])
        return 200, "## Outline from your answers\n- Budget: $5,000"

    with ChatServer(reply) as server:
        System.objects.filter(pk=source.pk).update(backend=Backend.OPENAI, endpoint=server.url, model_path="m")
        source.refresh_from_db()
        job = human_outlines_start(study=study, source=source, simulator="lexical")
        generation_job_run_inline(job=job)
        again = human_outlines_start(study=study, source=source, simulator="lexical")
        generation_job_run_inline(job=again)
    job.refresh_from_db()
    again.refresh_from_db()
    assert (job.status, job.done, job.failed) == (JobStatus.SUCCEEDED, 3, 0)
    assert (again.status, again.skipped) == (JobStatus.SUCCEEDED, 3)  # idempotent: nothing written twice
    assert job.system.name == f"{source.name}-human-answers"
    assert job.system.backend == Backend.OPENAI
    made = Candidate.objects.filter(system=job.system).order_by("task_id")
    assert made.count() == 3
    first = made[0]
    # The first answer set of each task (alice's: she answered first) replaces the simulated answers.
    assert first.answers == ["It is $5,000.", "No preference / not specified.", "Next Friday."]
    assert first.revealed == [[0], [], []]
    assert first.outline.startswith("## Outline from your answers")
    assert first.metadata["source_candidate"] == Candidate.objects.get(task=first.task, system=source).pk
    assert first.metadata["answered_by"] == alice.pk
    transcript_prompt = prompts[0][-1]["content"]
    assert "It is $5,000." in transcript_prompt
    assert "Bob thinks" not in " ".join(m["content"] for p in prompts for m in p)


@pytest.mark.django_db
def test_flagged_annotators_answers_are_not_used_for_outlines(alice, bob):
    study = _answered_study(alice, bob)
    source = study.systems.get()
    AnnotatorFlag.objects.create(study=study, annotator=alice, reason="failed gold")
    with ChatServer(lambda body, n: (200, "## Outline")) as server:
        System.objects.filter(pk=source.pk).update(backend=Backend.OPENAI, endpoint=server.url, model_path="m")
        source.refresh_from_db()
        job = human_outlines_start(study=study, source=source, simulator="lexical")
        generation_job_run_inline(job=job)
    assert {c.metadata["answered_by"] for c in Candidate.objects.filter(system=job.system)} == {bob.pk}


@pytest.mark.django_db
def test_auto_eval_reports_the_reward_from_human_answers_when_they_exist(alice, bob):
    study = _answered_study(alice, bob)
    source = study.systems.get()
    (result,) = auto_eval_run(systems=[source], spec=LEXICAL, n_boot=200)
    human = result.metrics["human_answers"]
    assert human["n_answer_sets"] == 6
    assert human["n_tasks"] == 3
    # alice's "$5,000" reveals the budget (1 of 2 facts); bob's invented "$9,999" reveals nothing.
    assert human["coverage_human"]["mean"] == pytest.approx(0.25)
    assert human["coverage_simulated"]["mean"] == pytest.approx(1.0)
    assert human["optimism"]["mean"] == pytest.approx(0.75)
    other = System.objects.create(name="nobody-answered")
    (plain,) = auto_eval_run(systems=[other], spec=LEXICAL, n_boot=200)
    assert "human_answers" not in plain.metrics


@pytest.mark.django_db
def test_the_auto_eval_page_shows_the_reward_from_human_answers(client, alice, bob, researcher):
    study = _answered_study(alice, bob)
    auto_eval_run(systems=[study.systems.get()], spec=LEXICAL, n_boot=200)
    client.force_login(researcher)
    page = client.get("/generation/auto-eval/").content.decode()
    assert "People&#x27;s answers" in page or "People's answers" in page
    assert "6 · " in page
