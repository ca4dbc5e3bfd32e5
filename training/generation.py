"""Candidate generation: job lifecycle (start, run a chunk, cancel), progress, and automatic evaluation.

Writes are services (keyword-only, atomic). A job is split into chunks; each chunk is one Celery task
(`generation.run_chunk`) that runs the batched pipeline and stores the results in one transaction."""

from __future__ import annotations

import random
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

from .autoeval import auto_eval_run, bootstrap_mean, paired_difference
from .backends import Backend, get_backend
from .facts import facts_of
from .models import Backend as BackendChoice
from .models import ChunkStatus, GenerationChunk, GenerationJob, JobStatus, System
from .pipeline import TaskInput, run_pipeline
from .rewards import RewardSpec, build_simulator, default_spec
from .simulator import UserSimulator

__all__ = ["auto_eval_run", "bootstrap_mean", "paired_difference"]  # auto-eval lives in training.autoeval

SIMULATORS = ("embedding", "lexical", "llm")
DEFAULT_CHUNK_SIZE = 16
MIN_CHUNK, MAX_CHUNK = 8, 32


def system_backend(system: System) -> Backend:
    return get_backend(
        backend=system.backend,
        model_path=system.model_path,
        endpoint=system.endpoint,
        params=system.generation_params or {},
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


class ChunkAlreadySettled(Exception):
    """Another delivery of the same chunk got there first."""


def generation_chunk_claim(*, chunk_id: int) -> GenerationChunk | None:
    """Mark the chunk running (a redelivered or retried chunk may be claimed again). None: nothing to do."""
    now = timezone.now()
    claimed = GenerationChunk.objects.filter(pk=chunk_id, status__in=[ChunkStatus.QUEUED, ChunkStatus.RUNNING]).update(
        status=ChunkStatus.RUNNING, attempts=F("attempts") + 1
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
    if tasks:
        if job.reward_spec:
            spec = RewardSpec.from_dict(job.reward_spec)
        else:
            spec = spec_for_simulator_choice(job.simulator, system)
        spec_label = spec.label()
        outputs = run_pipeline(
            [TaskInput(t.key, t.masked_task, facts_of(list(t.hidden_facts or []), t.fact_slots)) for t in tasks],
            backend=system_backend(system),
            params=params,
            simulator=spec_simulator(spec),
            simulator_name=job.simulator,
        )
    by_key = {t.key: t for t in tasks}
    present = existing | {t.pk for t in tasks}
    try:
        with transaction.atomic():
            created = skipped = 0
            errors = [{"task_key": f"#{pk}", "error": "task was deleted"} for pk in chunk.task_ids if pk not in present]
            tokens = 0
            # Output that names a system or vendor would unblind annotators: flag it (studies leave it out).
            patterns = compile_patterns(
                System.objects.values_list("name", flat=True), getattr(settings, "PIG_BLINDING_PATTERNS", ())
            )
            for out in outputs:
                if out.error:
                    errors.append({"task_key": out.key, "error": out.error[:500]})
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
    done: int
    skipped: int
    failed: int
    tokens: int
    percent: float
    elapsed_s: float
    tokens_per_s: float
    eta_s: float | None
    cancel_requested: bool

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def generation_job_progress(*, job: GenerationJob) -> JobProgress:
    if job.started_at:
        end = job.finished_at or timezone.now()
        elapsed = max(0.0, (end - job.started_at).total_seconds())
    else:
        elapsed = 0.0
    finished = job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)
    eta = None
    if not finished and job.done and elapsed:
        eta = elapsed / job.done * (job.total - job.done)
    return JobProgress(
        status=job.status,
        total=job.total,
        done=job.done,
        skipped=job.skipped,
        failed=job.failed,
        tokens=job.tokens,
        percent=round(100.0 * job.done / job.total, 1) if job.total else 0.0,
        elapsed_s=round(elapsed, 1),
        tokens_per_s=round(job.tokens / elapsed, 1) if elapsed else 0.0,
        eta_s=round(eta, 1) if eta is not None else None,
        cancel_requested=job.cancel_requested,
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


def retry_countdown(retries: int, base_s: float, cap_s: float = 600.0) -> float:
    return min(cap_s, base_s * 2**retries) * (0.5 + random.random() / 2)


def tasks_mask(*, tasks: Iterable[Task], seed: int = 0, fraction: float = 0.5) -> int:
    """Re-derive masked_task and hidden_facts from full_task with the rule method.

    Refuses (changing nothing) when any task already has candidates: they answer the old masked task."""
    from .masking import mask_rule

    tasks = list(tasks)
    with_candidates = sorted(
        Task.objects.filter(pk__in=[t.pk for t in tasks], candidates__isnull=False)
        .values_list("key", flat=True)
        .distinct()
    )
    if with_candidates:
        raise ValidationError(
            f"these tasks already have candidates, so their masking is fixed: {', '.join(with_candidates[:10])}"
        )
    with transaction.atomic():
        for task in tasks:
            masked = mask_rule(task.full_task, seed=seed, fraction=fraction, key=task.key)
            # The old slots belong to the old facts: clear them (slots are then derived from the new sentences).
            Task.objects.filter(pk=task.pk).update(
                masked_task=masked.masked_task, hidden_facts=masked.hidden_facts, fact_slots=[]
            )
    return len(tasks)
