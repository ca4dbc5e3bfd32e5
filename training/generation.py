"""Candidate generation: job lifecycle (start, run a chunk, cancel), progress, and automatic evaluation.

Writes are services (keyword-only, atomic). A job is split into chunks; each chunk is one Celery task
(`generation.run_chunk`) that runs the batched pipeline and stores the results in one transaction."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from annotation.blinding import compile_patterns, find_self_identification
from annotation.models import Candidate, Task
from pigplatform.queueing import enqueue_on_commit

from .backends import Backend, backend_needs_loading, get_backend
from .matching import LexicalMatcher, Matcher, split_sentences
from .models import (
    FINISHED_STATUSES,
    AutoEvalJob,
    AutoEvalResult,
    ChunkStatus,
    GenerationChunk,
    GenerationJob,
    JobStatus,
    System,
)
from .models import Backend as BackendChoice
from .pipeline import TaskInput, run_pipeline
from .rewards import RewardWeights, elicitation_reward
from .simulator import LLMSimulator, MatcherSimulator, UserSimulator

SIMULATORS = ("embedding", "lexical", "llm")
DEFAULT_CHUNK_SIZE = 16
MIN_CHUNK, MAX_CHUNK = 8, 32
# Shown on the job page while a worker loads the system's model for its first chunk.
STAGE_LOADING = "loading model…"


def system_backend(system: System) -> Backend:
    params = system.generation_params or {}
    endpoint = system.endpoint
    api_key = ""
    if system.backend == BackendChoice.OPENAI:
        endpoint = endpoint or settings.PIG["OPENAI_BASE_URL"]
        api_key = settings.PIG_API_KEYS.get(str(params.get("api_key_env") or "OPENAI_API_KEY"), "")
    return get_backend(
        backend=system.backend, model_path=system.model_path, endpoint=endpoint, params=params, api_key=api_key
    )


def make_matcher(name: str, params: dict[str, Any] | None = None) -> Matcher:
    params = params or {}
    if name == "embedding":
        from .embedding import DEFAULT_THRESHOLD, EmbeddingMatcher

        return EmbeddingMatcher(threshold=float(params.get("similarity_threshold", DEFAULT_THRESHOLD)))
    if name == "lexical":
        return LexicalMatcher()
    raise ValueError(f"unknown matcher '{name}' (choose embedding or lexical)")


def make_simulator(name: str, system: System) -> UserSimulator:
    params = system.generation_params or {}
    if name in ("embedding", "lexical"):
        return MatcherSimulator(make_matcher(name, params))
    if name == "llm":
        # The user may be played by another system (e.g. a stronger model); by default the same one.
        sim_name = params.get("simulator_system")
        sim_system = System.objects.get(name=sim_name) if sim_name else system
        matcher = make_matcher(params.get("simulator_matcher", "lexical"), params)
        return LLMSimulator(system_backend(sim_system), params.get("simulator_params"), matcher=matcher)
    raise ValueError(f"unknown simulator '{name}' (choose {', '.join(SIMULATORS)})")


def _chunk_size(system: System, override: int | None) -> int:
    size = override or int((system.generation_params or {}).get("chunk_size", DEFAULT_CHUNK_SIZE))
    return max(MIN_CHUNK, min(MAX_CHUNK, size))


def system_register(
    *,
    name: str,
    backend: str,
    model_path: str = "",
    endpoint: str = "",
    params: dict[str, Any] | None = None,
    description: str = "",
) -> System:
    """Create or update a system by name (idempotent)."""
    system, _ = System.objects.get_or_create(name=name)
    system.backend = backend
    system.model_path = model_path
    system.endpoint = endpoint
    system.generation_params = params or {}
    system.description = description or system.description
    system.full_clean()
    system.save()
    return system


def tasks_without_candidate(*, system: System, tasks: Iterable[Task]) -> list[Task]:
    tasks = list(tasks)
    have = set(
        Candidate.objects.filter(system=system, task_id__in=[t.pk for t in tasks]).values_list("task_id", flat=True)
    )
    return [t for t in tasks if t.pk not in have]


def generation_job_start(
    *,
    system: System,
    tasks: Iterable[Task],
    simulator: str = "embedding",
    user: AbstractBaseUser | None = None,
    chunk_size: int | None = None,
) -> GenerationJob:
    """Create a job for the tasks that still lack a candidate from `system` and enqueue its chunks."""
    if system.backend == BackendChoice.STATIC:
        raise ValidationError(f"system '{system.name}' is static (imported outputs): it cannot generate")
    if simulator not in SIMULATORS:
        raise ValidationError(f"unknown simulator '{simulator}' (choose {', '.join(SIMULATORS)})")
    task_ids = sorted({t.pk for t in tasks})
    if not task_ids:
        raise ValidationError("no tasks chosen")
    size = _chunk_size(system, chunk_size)
    with transaction.atomic():
        job = GenerationJob.objects.create(
            system=system,
            task_ids=task_ids,
            simulator=simulator,
            total=len(task_ids),
            created_by=user if user is not None and user.is_authenticated else None,
        )
        chunks = GenerationChunk.objects.bulk_create(
            GenerationChunk(job=job, index=i, task_ids=task_ids[start : start + size])
            for i, start in enumerate(range(0, len(task_ids), size))
        )
        chunk_ids = [c.pk for c in chunks] or list(job.chunks.values_list("pk", flat=True))

        _enqueue_chunks(job.pk, chunk_ids)
    return job


def _enqueue_chunks(job_id: int, chunk_ids: list[int]) -> None:
    def send() -> None:
        from .generation_tasks import run_chunk

        for chunk_id in chunk_ids:
            run_chunk.delay(chunk_id)

    def record(error: str) -> None:
        GenerationJob.objects.filter(pk=job_id).update(error=error)

    enqueue_on_commit(send, record)


def generation_job_reenqueue(*, job: GenerationJob) -> int:
    """Send the job's still-queued chunks again (after a broker outage). Safe to repeat: a chunk is claimed
    by compare-and-set and settles once, so an extra message only finds nothing to do."""
    with transaction.atomic():
        chunk_ids = list(job.chunks.filter(status=ChunkStatus.QUEUED).values_list("pk", flat=True))
        GenerationJob.objects.filter(pk=job.pk).update(error="")
        if chunk_ids:
            _enqueue_chunks(job.pk, chunk_ids)
    return len(chunk_ids)


def generation_job_cancel(*, job: GenerationJob) -> GenerationJob:
    """Stop a job between chunks: chunks not yet started are cancelled; a running chunk finishes."""
    with transaction.atomic():
        GenerationJob.objects.filter(pk=job.pk).update(cancel_requested=True)
        job.chunks.filter(status=ChunkStatus.QUEUED).update(status=ChunkStatus.CANCELLED)
    _finish_if_settled(job.pk)
    job.refresh_from_db()
    return job


def generation_jobs_abandon(*, reason: str) -> list[int]:
    """Settle every unfinished job as cancelled, running chunks included. Only for when no worker is left
    (bin/demo after stopping its workers): a chunk a killed worker was running would otherwise keep its job
    "running" for ever. A message delivered later finds its chunk settled and does nothing."""
    ids = list(
        GenerationJob.objects.filter(status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).values_list("pk", flat=True)
    )
    for job_id in ids:
        with transaction.atomic():
            GenerationJob.objects.filter(pk=job_id).update(cancel_requested=True, error=reason)
            GenerationChunk.objects.filter(job_id=job_id, status__in=[ChunkStatus.QUEUED, ChunkStatus.RUNNING]).update(
                status=ChunkStatus.CANCELLED, stage=""
            )
        _finish_if_settled(job_id)
    return ids


class ChunkAlreadySettled(Exception):
    """Another delivery of the same chunk got there first."""


def generation_chunk_claim(*, chunk_id: int) -> GenerationChunk | None:
    """Mark the chunk running (a redelivered or retried chunk may be claimed again). None: nothing to do."""
    now = timezone.now()
    claimed = GenerationChunk.objects.filter(pk=chunk_id, status__in=[ChunkStatus.QUEUED, ChunkStatus.RUNNING]).update(
        status=ChunkStatus.RUNNING, attempts=F("attempts") + 1, progress=0, stage=""
    )
    if not claimed:
        return None
    chunk = GenerationChunk.objects.select_related("job__system").get(pk=chunk_id)
    if chunk.job.cancel_requested:
        GenerationChunk.objects.filter(pk=chunk_id, status=ChunkStatus.RUNNING).update(status=ChunkStatus.CANCELLED)
        _finish_if_settled(chunk.job_id)
        return None
    GenerationJob.objects.filter(pk=chunk.job_id, started_at=None).update(started_at=now)
    GenerationJob.objects.filter(pk=chunk.job_id, status=JobStatus.QUEUED).update(status=JobStatus.RUNNING)
    return chunk


def generation_chunk_run(*, chunk: GenerationChunk) -> None:
    """Generate for the chunk's tasks that lack a candidate and store everything in one transaction.

    Backend errors propagate (the Celery task retries transient ones, then calls
    `generation_chunk_fail`); per-task failures from the backend are recorded on the job."""
    job = chunk.job
    system = job.system
    existing = set(
        Candidate.objects.filter(system=system, task_id__in=chunk.task_ids).values_list("task_id", flat=True)
    )
    tasks = list(Task.objects.filter(pk__in=chunk.task_ids).exclude(pk__in=existing).order_by("pk"))
    params = dict(system.generation_params or {})
    params.setdefault("seed", job.pk)
    outputs = []
    if tasks and job.answers_study_id:
        outputs = _outlines_from_human_answers(job, tasks, params)
    elif tasks:
        backend = system_backend(system)
        if backend_needs_loading(backend):
            _chunk_report(chunk.pk, stage=STAGE_LOADING)
            backend.load()  # type: ignore[attr-defined]
        outputs = run_pipeline(
            [TaskInput(t.key, t.masked_task, list(t.hidden_facts or [])) for t in tasks],
            backend=backend,
            params=params,
            simulator=make_simulator(job.simulator, system),
            simulator_name=job.simulator,
            on_progress=lambda stage, finished: _chunk_report(chunk.pk, stage=stage, progress=finished),
        )
    by_key = {t.key: t for t in tasks}
    present = existing | {t.pk for t in tasks}
    try:
        with transaction.atomic():
            created = skipped = 0
            errors = [{"task_key": f"#{pk}", "error": "task was deleted"} for pk in chunk.task_ids if pk not in present]
            # Lock the tasks and compare them with what was generated from: re-masking (tasks_mask) takes
            # FOR UPDATE on them and refuses tasks with candidates, so either it sees these candidates, or
            # this sees its rewrite and stores nothing for a masked task that no longer exists.
            current = {
                t["pk"]: (t["masked_task"], t["hidden_facts"])
                for t in Task.objects.select_for_update(no_key=True)
                .filter(pk__in=[t.pk for t in tasks])
                .order_by("pk")
                .values("pk", "masked_task", "hidden_facts")
            }
            tokens = 0
            # Output that names a system or vendor would unblind annotators: flag it (studies leave it out).
            patterns = compile_patterns(
                System.objects.values_list("name", flat=True), getattr(settings, "PIG_BLINDING_PATTERNS", ())
            )
            for out in outputs:
                task = by_key[out.key]
                if out.error:
                    errors.append({"task_key": out.key, "error": out.error[:500]})
                    continue
                if task.pk not in current:
                    errors.append({"task_key": out.key, "error": "task was deleted"})
                    continue
                if current[task.pk] != (task.masked_task, task.hidden_facts):
                    errors.append({"task_key": out.key, "error": "the task changed while generating; generate again"})
                    continue
                tokens += int(out.metadata.get("completion_tokens", 0))
                try:
                    # A savepoint: a concurrent job may have created this pair meanwhile.
                    with transaction.atomic():
                        Candidate.objects.create(
                            task=by_key[out.key],
                            system=system,
                            questions=out.questions,
                            answers=out.answers,
                            revealed=out.revealed,
                            outline=out.outline,
                            metadata={**out.metadata, "generation_job": job.pk},
                            blinding_flags=find_self_identification(
                                [*out.questions, *out.answers, out.outline], patterns
                            ),
                        )
                    created += 1
                except IntegrityError:
                    skipped += 1
            skipped += len(existing)
            _settle_chunk(chunk, ChunkStatus.DONE, created, skipped, errors, tokens)
    except ChunkAlreadySettled:
        return
    _finish_if_settled(job.pk)


def _chunk_report(chunk_id: int, *, stage: str, progress: int | None = None) -> None:
    # Autocommitted as it goes, for the job page; only a running chunk's live view is touched.
    fields: dict[str, Any] = {"stage": stage}
    if progress is not None:
        fields["progress"] = progress
    GenerationChunk.objects.filter(pk=chunk_id, status=ChunkStatus.RUNNING).update(**fields)


HUMAN_ANSWERS_SUFFIX = "-human-answers"


def human_answers_system(*, source: System) -> System:
    """The system that receives `source`'s outlines written from people's answers: same backend and model, its
    own name, so an outline study can pair it with `source` (blind, as every system)."""
    name = f"{source.name[: 100 - len(HUMAN_ANSWERS_SUFFIX)]}{HUMAN_ANSWERS_SUFFIX}"
    system, _ = System.objects.get_or_create(
        name=name,
        defaults={
            "backend": source.backend,
            "model_path": source.model_path,
            "endpoint": source.endpoint,
            "generation_params": dict(source.generation_params or {}),
            "description": f"Outlines by {source.name} written from people's answers in answer studies "
            f"(questions by {source.name}).",
        },
    )
    return system


def _usable_transcripts(study_id: int, source_id: int) -> Any:
    from django.db.models import Exists, OuterRef

    from annotation.models import AnnotatorFlag, HumanTranscript

    flagged = AnnotatorFlag.objects.filter(study_id=study_id, annotator=OuterRef("annotator"))
    return (
        HumanTranscript.objects.filter(item__study_id=study_id, item__is_gold=False, candidate__system_id=source_id)
        .filter(~Exists(flagged))
        .order_by("pk")
    )


def human_outlines_start(
    *,
    study: Any,
    source: System,
    simulator: str = "embedding",
    user: AbstractBaseUser | None = None,
    chunk_size: int | None = None,
) -> GenerationJob:
    """Have `source` write outlines from the answer study's human transcripts of its questions, as a generation
    job of the derived "<source>-human-answers" system. One outline per task, from the task's first answer set
    by an annotator in good standing; tasks that already have one are skipped (idempotent)."""
    if source.backend == BackendChoice.STATIC:
        raise ValidationError(f"system '{source.name}' is static (imported outputs): it cannot write outlines")
    if simulator not in ("embedding", "lexical"):
        raise ValidationError("choose the embedding or lexical matcher to score the human answers")
    task_ids = sorted(set(_usable_transcripts(study.pk, source.pk).values_list("candidate__task_id", flat=True)))
    if not task_ids:
        raise ValidationError(f"no human answers to {source.name}'s questions in study '{study.slug}' yet")
    target = human_answers_system(source=source)
    size = _chunk_size(target, chunk_size)
    with transaction.atomic():
        job = GenerationJob.objects.create(
            system=target,
            task_ids=task_ids,
            simulator=simulator,
            total=len(task_ids),
            answers_study=study,
            answers_source=source,
            created_by=user if user is not None and user.is_authenticated else None,
        )
        chunks = GenerationChunk.objects.bulk_create(
            GenerationChunk(job=job, index=i, task_ids=task_ids[start : start + size])
            for i, start in enumerate(range(0, len(task_ids), size))
        )
        _enqueue_chunks(job.pk, [c.pk for c in chunks] or list(job.chunks.values_list("pk", flat=True)))
    return job


def _outlines_from_human_answers(job: GenerationJob, tasks: list[Task], params: dict[str, Any]) -> list[Any]:
    from training.human_answers import AnsweredTask, HumanAnswer, HumanAnswerReplay, write_outlines
    from training.pipeline import PipelineOutput

    first: dict[int, Any] = {}
    for t in _usable_transcripts(job.answers_study_id, job.answers_source_id).filter(
        candidate__task_id__in=[t.pk for t in tasks]
    ):
        first.setdefault(t.candidate.task_id, t)
    missing = [PipelineOutput(key=t.key, error="no human answers for this task") for t in tasks if t.pk not in first]
    ready = [t for t in tasks if t.pk in first]
    items = [
        AnsweredTask(
            key=t.key,
            masked_task=t.masked_task,
            questions=list(first[t.pk].questions),
            answers=[HumanAnswer(str(a.get("text", "")), bool(a.get("doesnt_say"))) for a in first[t.pk].answers],
        )
        for t in ready
    ]
    outputs = write_outlines(items, backend=system_backend(job.system), params=params)
    matcher = make_matcher(job.simulator)
    for task, item, out in zip(ready, items, outputs, strict=True):
        transcript = first[task.pk]
        replay = HumanAnswerReplay(item.answers, matcher).answer(item.questions, list(task.hidden_facts or []))
        out.revealed = [a.revealed for a in replay]
        out.metadata.update(
            {
                "human_transcript": transcript.pk,
                "source_candidate": transcript.candidate_id,
                "answered_by": transcript.annotator_id,
                "answer_study": job.answers_study_id,
                "seed": params.get("seed"),
            }
        )
    return [*outputs, *missing]


def generation_chunk_fail(*, chunk: GenerationChunk, error: str) -> None:
    """Record a permanent failure for every task of the chunk that still lacks a candidate."""
    system_id = chunk.job.system_id
    have = set(
        Candidate.objects.filter(system_id=system_id, task_id__in=chunk.task_ids).values_list("task_id", flat=True)
    )
    keys = dict(Task.objects.filter(pk__in=chunk.task_ids).values_list("pk", "key"))
    errors = [{"task_key": keys.get(pk, f"#{pk}"), "error": error[:500]} for pk in chunk.task_ids if pk not in have]
    try:
        with transaction.atomic():
            _settle_chunk(chunk, ChunkStatus.FAILED, 0, len(have), errors, 0, chunk_error=error[:2000])
    except ChunkAlreadySettled:
        return
    _finish_if_settled(chunk.job_id)


def _settle_chunk(
    chunk: GenerationChunk,
    status: str,
    created: int,
    skipped: int,
    errors: list[dict[str, str]],
    tokens: int,
    chunk_error: str = "",
) -> None:
    # Compare-and-set inside the caller's transaction: only one delivery of a chunk ever counts.
    if not GenerationChunk.objects.filter(pk=chunk.pk, status=ChunkStatus.RUNNING).update(
        status=status, error=chunk_error
    ):
        raise ChunkAlreadySettled
    settled = created + skipped + len(errors)
    if errors:
        job = GenerationJob.objects.select_for_update().get(pk=chunk.job_id)
        GenerationJob.objects.filter(pk=job.pk).update(errors=[*job.errors, *errors][-1000:])
    GenerationJob.objects.filter(pk=chunk.job_id).update(
        done=F("done") + settled,
        skipped=F("skipped") + skipped,
        failed=F("failed") + len(errors),
        tokens=F("tokens") + tokens,
    )


def _finish_if_settled(job_id: int) -> None:
    open_states = [ChunkStatus.QUEUED, ChunkStatus.RUNNING]
    if GenerationChunk.objects.filter(job_id=job_id, status__in=open_states).exists():
        return
    job = GenerationJob.objects.get(pk=job_id)
    if job.cancel_requested:
        status = JobStatus.CANCELLED
    elif job.total and job.failed >= job.total:
        status = JobStatus.FAILED
    else:
        status = JobStatus.SUCCEEDED
    GenerationJob.objects.filter(pk=job_id, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).update(
        status=status, finished_at=timezone.now(), error="" if status != JobStatus.FAILED else "every task failed"
    )


@dataclass(frozen=True)
class JobProgress:
    status: str
    total: int
    # Tasks finished: settled chunks' count plus the tasks running chunks have finished so far.
    done: int
    skipped: int
    failed: int
    tokens: int
    percent: float
    elapsed_s: float
    tokens_per_s: float
    eta_s: float | None
    cancel_requested: bool
    # What the running chunks are doing ("loading model…", "writing outlines"), empty when none runs.
    stage: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def generation_job_progress(*, job: GenerationJob) -> JobProgress:
    running = list(job.chunks.filter(status=ChunkStatus.RUNNING).values_list("progress", "stage"))
    done = min(job.total, job.done + sum(progress for progress, _ in running))
    stages = sorted({stage for _, stage in running if stage})
    # "loading model…" first: while one worker loads, that is what the researcher is waiting for.
    stages.sort(key=lambda s: s != STAGE_LOADING)
    if job.started_at:
        end = job.finished_at or timezone.now()
        elapsed = max(0.0, (end - job.started_at).total_seconds())
    else:
        elapsed = 0.0
    finished = job.status in FINISHED_STATUSES
    eta = None
    if not finished and done and elapsed:
        eta = elapsed / done * (job.total - done)
    return JobProgress(
        status=job.status,
        total=job.total,
        done=done,
        skipped=job.skipped,
        failed=job.failed,
        tokens=job.tokens,
        percent=round(100.0 * done / job.total, 1) if job.total else 0.0,
        elapsed_s=round(elapsed, 1),
        tokens_per_s=round(job.tokens / elapsed, 1) if elapsed else 0.0,
        eta_s=round(eta, 1) if eta is not None else None,
        cancel_requested=job.cancel_requested,
        stage=", ".join(stages) if not finished else "",
    )


def generation_job_run_inline(*, job: GenerationJob) -> None:
    """Run a job's open chunks in this process (the shell command's --inline; no worker needed)."""
    for chunk_id in job.chunks.filter(status=ChunkStatus.QUEUED).values_list("pk", flat=True):
        chunk = generation_chunk_claim(chunk_id=chunk_id)
        if chunk is None:
            continue
        try:
            generation_chunk_run(chunk=chunk)
        except Exception as exc:
            generation_chunk_fail(chunk=chunk, error=f"{type(exc).__name__}: {exc}")


# --- automatic evaluation -------------------------------------------------------------------------

METRICS = ("reward", "coverage", "redundant_share", "duplicate_share", "outline_coverage")


def candidate_scores(
    *,
    questions: Sequence[str],
    outline: str,
    masked_task: str,
    hidden_facts: Sequence[str],
    matcher: Matcher,
    weights: RewardWeights,
) -> dict[str, float]:
    breakdown = elicitation_reward(questions, masked_task, hidden_facts, MatcherSimulator(matcher), weights)
    outline_units = split_sentences(outline) or ([outline] if outline.strip() else [])
    covered: set[int] = set()
    if outline_units and hidden_facts:
        for hits in matcher.match(outline_units, hidden_facts):
            covered.update(hits)
    return {
        "reward": breakdown.reward,
        "coverage": breakdown.coverage,
        "redundant_share": breakdown.redundant_share,
        "duplicate_share": breakdown.duplicate_share,
        "outline_coverage": len(covered) / len(hidden_facts) if hidden_facts else 0.0,
    }


def bootstrap_mean(values: Sequence[float], *, n_boot: int = 2000, seed: int = 0) -> dict[str, float]:
    import numpy as np

    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return {"mean": float("nan"), "lo": float("nan"), "hi": float("nan")}
    rng = np.random.default_rng(seed)
    means = arr[rng.integers(0, arr.size, size=(n_boot, arr.size))].mean(axis=1)
    return {"mean": float(arr.mean()), "lo": float(np.quantile(means, 0.025)), "hi": float(np.quantile(means, 0.975))}


def relative_improvement(
    system_values: Sequence[float], baseline_values: Sequence[float], *, n_boot: int = 2000, seed: int = 0
) -> dict[str, float]:
    """(mean_system − mean_baseline) / |mean_baseline| on paired tasks, with a paired bootstrap interval."""
    import numpy as np

    s, b = np.asarray(system_values, dtype=float), np.asarray(baseline_values, dtype=float)
    if s.size == 0 or abs(b.mean()) < 1e-12:
        return {"mean": float("nan"), "lo": float("nan"), "hi": float("nan")}
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, s.size, size=(n_boot, s.size))
    sb, bb = s[idx].mean(axis=1), b[idx].mean(axis=1)
    ok = np.abs(bb) > 1e-12
    ratios = (sb[ok] - bb[ok]) / np.abs(bb[ok])
    return {
        "mean": float((s.mean() - b.mean()) / abs(b.mean())),
        "lo": float(np.quantile(ratios, 0.025)) if ratios.size else float("nan"),
        "hi": float(np.quantile(ratios, 0.975)) if ratios.size else float("nan"),
    }


def auto_eval_run(
    *,
    systems: Sequence[System],
    split: str = "",
    baseline: System | None = None,
    matcher: str = "embedding",
    n_boot: int = 2000,
    progress: Callable[[int, int], None] | None = None,
    job: AutoEvalJob | None = None,
) -> list[AutoEvalResult]:
    """Score every system's candidates on the split's tasks and store one AutoEvalResult per system.

    `progress(scored, total)` is called after each candidate; with `job`, the results are stored with it
    and the job is marked succeeded in the same transaction (once, whoever else ran it too)."""
    if not systems:
        raise ValidationError("choose at least one system")
    match = make_matcher(matcher)
    everyone = list({s.pk: s for s in [*systems, *([baseline] if baseline else [])]}.values())
    candidates = Candidate.objects.filter(system__in=everyone).select_related("task")
    if split:
        candidates = candidates.filter(task__split=split)
    scores: dict[int, dict[int, dict[str, float]]] = {s.pk: {} for s in everyone}
    by_system = {s.pk: s for s in everyone}
    total = candidates.count() if progress is not None else 0
    for scored, cand in enumerate(candidates.order_by("task_id"), start=1):
        system = by_system[cand.system_id]
        weights = RewardWeights(max_questions=int((system.generation_params or {}).get("max_questions", 5)))
        scores[cand.system_id][cand.task_id] = candidate_scores(
            questions=list(cand.questions or []),
            outline=cand.outline,
            masked_task=cand.task.masked_task,
            hidden_facts=list(cand.task.hidden_facts or []),
            matcher=match,
            weights=weights,
        )
        if progress is not None:
            progress(scored, total)
    results = []
    with transaction.atomic():
        if job is not None:
            _auto_eval_job_settle(job)
        for system in systems:
            mine = scores[system.pk]
            metrics: dict[str, Any] = {
                name: bootstrap_mean([v[name] for v in mine.values()], n_boot=n_boot) for name in METRICS
            }
            metrics["matcher"] = matcher
            human = _human_answer_metrics(system=system, split=split, matcher=match, n_boot=n_boot)
            if human is not None:
                metrics["human_answers"] = human
            if baseline is not None and baseline.pk != system.pk:
                theirs = scores[baseline.pk]
                shared = sorted(set(mine) & set(theirs))
                metrics["vs_baseline"] = {
                    "baseline": baseline.name,
                    "n_paired": len(shared),
                    **{
                        name: relative_improvement(
                            [mine[t][name] for t in shared], [theirs[t][name] for t in shared], n_boot=n_boot
                        )
                        for name in ("reward", "coverage", "outline_coverage")
                    },
                }
            results.append(
                AutoEvalResult.objects.create(
                    job=job, system=system, baseline=baseline, split=split, n_tasks=len(mine), metrics=_finite(metrics)
                )
            )
    return results


def _human_answer_metrics(*, system: System, split: str, matcher: Matcher, n_boot: int) -> dict[str, Any] | None:
    """Where people have answered this system's questions in character (answer studies): the reward and
    coverage from their answers beside the simulator's, scored with the same matcher; None when nobody has.
    Intervals resample answer sets; annotators flagged in their study are left out."""
    from django.db.models import Exists, OuterRef

    from annotation.models import AnnotatorFlag, HumanTranscript

    from .human_answers import HumanAnswer, score_transcript

    flagged = AnnotatorFlag.objects.filter(study=OuterRef("item__study"), annotator=OuterRef("annotator"))
    rows = (
        HumanTranscript.objects.filter(candidate__system=system, item__is_gold=False)
        .filter(~Exists(flagged))
        .select_related("candidate__task")
    )
    if split:
        rows = rows.filter(candidate__task__split=split)
    weights = RewardWeights(max_questions=int((system.generation_params or {}).get("max_questions", 5)))
    scores = [
        score_transcript(
            questions=list(t.questions),
            masked_task=t.candidate.task.masked_task,
            hidden_facts=list(t.candidate.task.hidden_facts or []),
            answers=[HumanAnswer(str(a.get("text", "")), bool(a.get("doesnt_say"))) for a in t.answers],
            matcher=matcher,
            weights=weights,
        )
        for t in rows.order_by("pk")
    ]
    if not scores:
        return None
    return {
        "n_answer_sets": len(scores),
        "n_tasks": rows.values("candidate__task_id").distinct().count(),
        "reward_human": bootstrap_mean([x.human_reward for x in scores], n_boot=n_boot),
        "reward_simulated": bootstrap_mean([x.simulated_reward for x in scores], n_boot=n_boot),
        "coverage_human": bootstrap_mean([x.human_coverage for x in scores], n_boot=n_boot),
        "coverage_simulated": bootstrap_mean([x.simulated_coverage for x in scores], n_boot=n_boot),
        "optimism": bootstrap_mean([x.simulated_coverage - x.human_coverage for x in scores], n_boot=n_boot),
    }


def _finite(value: Any) -> Any:
    # JSON has no NaN: store None where a metric is undefined (no tasks, zero baseline).
    if isinstance(value, float):
        return None if value != value else round(value, 6)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


class AutoEvalJobSettled(Exception):
    """Another delivery of the same job stored its results first."""


def _auto_eval_job_settle(job: AutoEvalJob) -> None:
    # Compare-and-set inside the transaction that stores the results: one delivery's results count.
    if not AutoEvalJob.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(
        status=JobStatus.SUCCEEDED, done=F("total"), finished_at=timezone.now()
    ):
        raise AutoEvalJobSettled
