"""Candidate generation: job lifecycle (start, run a chunk, cancel), progress, and automatic evaluation.

Writes are services (keyword-only, atomic). A job is split into chunks; each chunk is one Celery task
(`generation.run_chunk`) that runs the batched pipeline and stores the results in one transaction."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from annotation.blinding import compile_patterns, find_self_identification
from annotation.models import Candidate, Task
from pigplatform.queueing import enqueue_on_commit

from .autoeval import AutoEvalJobSettled, auto_eval_run, bootstrap_mean, paired_difference
from .backends import Backend, backend_needs_loading, get_backend
from .facts import facts_of
from .models import FINISHED_STATUSES, ChunkStatus, GenerationChunk, GenerationJob, JobStatus, System
from .models import Backend as BackendChoice
from .pipeline import TaskInput, run_pipeline
from .rewards import RewardSpec, build_simulator, default_spec
from .simulator import UserSimulator

__all__ = ["AutoEvalJobSettled", "auto_eval_run", "bootstrap_mean", "paired_difference"]  # in training.autoeval

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


class DjangoCacheMapping(MutableMapping[str, bool]):
    """The LLM judge's verdict cache on the platform's shared cache (Redis in production): every worker
    and every evaluation asks the judge model once per (prompt version, model, question, topic)."""

    prefix = "pig:judge:"
    timeout = 60 * 60 * 24 * 90

    def __getitem__(self, key: str) -> bool:
        value = cache.get(self.prefix + key)
        if value is None:
            raise KeyError(key)
        return bool(value)

    def __setitem__(self, key: str, value: bool) -> None:
        cache.set(self.prefix + key, int(value), self.timeout)

    def __delitem__(self, key: str) -> None:
        cache.delete(self.prefix + key)

    def __iter__(self) -> Iterator[str]:
        return iter(())  # not enumerable; the judge only reads and writes by key

    def __len__(self) -> int:
        return 0


def spec_simulator(spec: RewardSpec) -> UserSimulator:
    """The simulator a spec names, with the judge System's backend when it needs a model (one factory:
    `rewards.build_simulator`, shared with training and the audit)."""
    judge_backend = None
    if spec.matcher == "llm" or spec.simulator == "llm":
        judge = System.objects.filter(name=spec.judge_system).first()
        if judge is None:
            raise ValidationError(f"the reward spec's judge system {spec.judge_system!r} does not exist")
        judge_backend = system_backend(judge)
    llm_params = None
    if judge_backend is not None:
        llm_params = (judge.generation_params or {}).get("simulator_params")
    return build_simulator(spec, judge_backend=judge_backend, cache=DjangoCacheMapping(), llm_params=llm_params)


def spec_for_simulator_choice(choice: str, system: System, base: RewardSpec | None = None) -> RewardSpec:
    """The generation form's simulator choice as a spec: the evaluation spec with that matcher, or with a
    model playing the user (the system named by its `simulator_system` parameter, else the system itself)."""
    base = base or default_spec()
    if choice in ("embedding", "lexical"):
        return base.with_overrides({"matcher": choice})
    if choice == "llm":
        player = (system.generation_params or {}).get("simulator_system") or system.name
        return base.with_overrides({"simulator": "llm", "judge_system": player})
    raise ValidationError(f"unknown simulator '{choice}' (choose {', '.join(SIMULATORS)})")


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
    spec: RewardSpec | None = None,
    simulator: str = "",
    user: AbstractBaseUser | None = None,
    chunk_size: int | None = None,
) -> GenerationJob:
    """Create a job for the tasks that still lack a candidate from `system` and enqueue its chunks.

    The simulated user answers under `spec` (default: the evaluation spec; `simulator` picks its matcher)."""
    if system.backend == BackendChoice.STATIC:
        raise ValidationError(f"system '{system.name}' is static (imported outputs): it cannot generate")
    if spec is None:
        spec = spec_for_simulator_choice(simulator, system) if simulator else default_spec()
    task_ids = sorted({t.pk for t in tasks})
    if not task_ids:
        raise ValidationError("no tasks chosen")
    size = _chunk_size(system, chunk_size)
    with transaction.atomic():
        job = GenerationJob.objects.create(
            system=system,
            task_ids=task_ids,
            simulator=spec.matcher if spec.simulator == "slot" else spec.simulator,
            reward_spec=spec.as_dict(),
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
    spec_label = ""
    if tasks and job.answers_study_id:
        outputs = _outlines_from_human_answers(job, tasks, params)
    elif tasks:
        if job.reward_spec:
            spec = RewardSpec.from_dict(job.reward_spec)
        else:
            spec = spec_for_simulator_choice(job.simulator, system)
        spec_label = spec.label()
        backend = system_backend(system)
        if backend_needs_loading(backend):
            _chunk_report(chunk.pk, stage=STAGE_LOADING)
            backend.load()  # type: ignore[attr-defined]
        outputs = run_pipeline(
            [TaskInput(t.key, t.masked_task, facts_of(list(t.hidden_facts or []), t.fact_slots)) for t in tasks],
            backend=backend,
            params=params,
            simulator=spec_simulator(spec),
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
                            metadata={**out.metadata, "generation_job": job.pk, "reward_spec": spec_label},
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
    from training.human_answers import AnsweredTask, HumanAnswer, HumanAnswerReplay, matcher_named, write_outlines
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
    matcher = matcher_named(job.simulator if job.simulator in ("embedding", "lexical") else "embedding")
    for task, item, out in zip(ready, items, outputs, strict=True):
        transcript = first[task.pk]
        replay = HumanAnswerReplay(item.answers, matcher).answer(
            item.questions, facts_of(list(task.hidden_facts or []), task.fact_slots)
        )
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


