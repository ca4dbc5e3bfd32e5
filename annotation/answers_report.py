"""Reads that turn human transcripts into the simulator-fidelity report and the `answers` export.

Every transcript is scored by `training.human_answers.score_transcript` (the reward's simulator and
matcher); the statistics are pure (annotation/stats/fidelity.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Max

from training.facts import facts_of
from training.human_answers import HumanAnswer, TranscriptScore, score_transcript
from training.matching import Matcher

from .answers_selectors import study_transcripts
from .models import AnnotatorFlag, HumanTranscript, Study
from .stats.fidelity import DEFAULT_ROUNDS, TranscriptRecord, fidelity_report

CACHE_SECONDS = 7 * 24 * 3600


def fidelity_matcher(name: str | None = None) -> Matcher:
    from training.human_answers import matcher_named

    return matcher_named(name or settings.PIG_FIDELITY_MATCHER)


def human_answers_of(transcript: HumanTranscript) -> list[HumanAnswer]:
    return [HumanAnswer(str(a.get("text", "")), bool(a.get("doesnt_say"))) for a in transcript.answers]


def transcript_score(transcript: HumanTranscript, matcher: Matcher) -> TranscriptScore:
    task = transcript.candidate.task
    # One spec for every system (the evaluation spec): never each system's own K.
    return score_transcript(
        questions=list(transcript.questions),
        masked_task=task.masked_task,
        hidden_facts=facts_of([str(f) for f in task.hidden_facts or []], task.fact_slots),
        answers=human_answers_of(transcript),
        matcher=matcher,
    )


def _scores(transcripts: list[HumanTranscript], matcher: Matcher, matcher_name: str) -> list[TranscriptScore]:
    """Scores of the transcripts, from the cache where possible: a transcript is immutable, so its score under
    one matcher never changes, and a new answer set costs one scoring instead of the whole study's."""
    keys = {t.pk: f"pig:fidelity:score:v1:{matcher_name}:{t.pk}" for t in transcripts}
    known = cache.get_many(list(keys.values()))
    fresh = {keys[t.pk]: transcript_score(t, matcher) for t in transcripts if keys[t.pk] not in known}
    if fresh:
        cache.set_many(fresh, CACHE_SECONDS)
    return [known.get(keys[t.pk]) or fresh[keys[t.pk]] for t in transcripts]


def study_fidelity_records(
    *, study: Study, exclude_flagged: bool = True, matcher_name: str | None = None
) -> list[TranscriptRecord]:
    matcher_name = matcher_name or settings.PIG_FIDELITY_MATCHER
    matcher = fidelity_matcher(matcher_name)
    transcripts = list(study_transcripts(study=study, exclude_flagged=exclude_flagged))
    records = []
    for t, score in zip(transcripts, _scores(transcripts, matcher, matcher_name), strict=True):
        records.append(
            TranscriptRecord(
                transcript_id=t.pk,
                task=t.candidate.task.key,
                system=t.candidate.system.name,
                questions=list(t.questions),
                facts=[str(f) for f in t.candidate.task.hidden_facts or []],
                human_answers=[a.as_text for a in human_answers_of(t)],
                simulated_answers=score.simulated_answers,
                human_revealed=score.human_revealed,
                simulated_revealed=score.simulated_revealed,
                human_reward=score.human_reward,
                simulated_reward=score.simulated_reward,
                human_coverage=score.human_coverage,
                simulated_coverage=score.simulated_coverage,
            )
        )
    return records


def answer_stats_version(*, study: Study) -> str:
    """Changes whenever the report could: a new transcript (immutable, ids only grow) or an annotator flag."""
    t = HumanTranscript.objects.filter(item__study=study).aggregate(n=Count("id"), last=Max("id"))
    f = AnnotatorFlag.objects.filter(study=study).aggregate(n=Count("id"), last=Max("id"))
    return f"{t['n']}-{t['last']}-{f['n']}-{f['last']}-{settings.PIG_FIDELITY_MATCHER}"


def study_fidelity(
    *, study: Study, exclude_flagged: bool = True, rounds: int = DEFAULT_ROUNDS, seed: int = 0
) -> dict[str, Any]:
    """The report for the study as it is now; cached per version (scoring runs the matcher on every answer)."""
    key = f"pig:fidelity:v1:{study.pk}:{int(exclude_flagged)}:{rounds}:{seed}:{answer_stats_version(study=study)}"
    report = cache.get(key)
    if report is None:
        report = fidelity_report(
            study_fidelity_records(study=study, exclude_flagged=exclude_flagged), rounds=rounds, seed=seed
        )
        report["matcher"] = settings.PIG_FIDELITY_MATCHER
        report["excluded_flagged"] = exclude_flagged
        cache.set(key, report, CACHE_SECONDS)
    return report


ANSWER_COLUMNS = (
    "transcript_id",
    "task",
    "domain",
    "system",
    "annotator",
    "question_index",
    "question",
    "human_answer",
    "doesnt_say",
    "simulated_answer",
    "human_revealed",
    "simulated_revealed",
    "seconds",
    "transcript_seconds",
)


def study_answer_rows(*, study: Study, real_usernames: bool = False) -> Iterator[dict[str, Any]]:
    """One row per answered question (researcher-only: names the system). Revealed facts are given as
    fact texts joined by " | ", as scored by the reward's matcher; `seconds` is the client's time on that
    question (empty when unknown), `transcript_seconds` the server's time for the whole set."""
    from .selectors_stats import annotator_pseudonym

    matcher = fidelity_matcher()
    for t in study_transcripts(study=study, exclude_flagged=False).iterator(chunk_size=500):
        score = transcript_score(t, matcher)
        facts = [str(f) for f in t.candidate.task.hidden_facts or []]
        # The candidate's own simulated answers, unless it was re-imported with other questions since.
        same = list(t.candidate.questions or []) == list(t.questions)
        stored = list(t.candidate.answers or []) if same else []
        per_q = list(t.question_seconds or [])
        for i, (question, answer) in enumerate(zip(t.questions, human_answers_of(t), strict=True)):
            yield {
                "transcript_id": t.pk,
                "task": t.candidate.task.key,
                "domain": t.candidate.task.domain,
                "system": t.candidate.system.name,
                "annotator": t.annotator.get_username() if real_usernames else annotator_pseudonym(t.annotator_id),
                "question_index": i,
                "question": question,
                "human_answer": answer.as_text,
                "doesnt_say": answer.doesnt_say,
                # The answer the candidate's own simulator gave when it was generated, if it kept one.
                "simulated_answer": stored[i] if i < len(stored) else score.simulated_answers[i],
                "human_revealed": " | ".join(facts[j] for j in score.human_revealed[i]),
                "simulated_revealed": " | ".join(facts[j] for j in score.simulated_revealed[i]),
                "seconds": per_q[i] if i < len(per_q) else None,
                "transcript_seconds": round(t.seconds, 3),
            }
