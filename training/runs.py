"""Training-run lifecycle: validate, start, progress, cancel, resume, finish, register the trained System.

Who writes what, so that concurrent writers never clobber each other (every write is an UPDATE of its own
columns, guarded by the run's `attempt` fencing token):
* the web/admin/command side: start, cancel, resume (status, attempt, cancel flag);
* the Celery supervisor (`training.run` task): claim, log tail, heartbeat, final status;
* the training process (callback): step, heartbeat, metrics, last completions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from annotation.jsonl import parse_jsonl, require_text
from annotation.models import Candidate, Split, Study, StudyKind, Task
from pigplatform.queueing import enqueue_on_commit

from .dpo import DPOSpec, merged_dpo_hyperparameters
from .facts import fact_from_raw, facts_of
from .grpo import (
    FINAL_DIR,
    FINAL_INFO,
    TrainingSpec,
    checkpoint_is_complete,
    hyperparameter_problems,
    merged_hyperparameters,
)
from .models import Algorithm, Backend, Device, JobStatus, Phase, System, TrainingMetric, TrainingRun
from .preference_sources import dpo_run_problems, dpo_run_spec
from .preferences import merged_preference_config
from .rewards import RewardSpec, default_spec, reward_config_problems, spec_for_run

State = Literal["continue", "cancelled", "superseded"]


class TrainingRunError(Exception):
    """The requested transition does not apply to the run in its current state."""


# ---------------------------------------------------------------- reads


def training_run_model_path(run: TrainingRun) -> Path | None:
    """The base model's local directory (a base System's model or the run's path), if it exists."""
    raw = run.base_system.model_path if run.base_system_id else run.base_model_path
    if not raw:
        return None
    for candidate in (Path(raw), Path(settings.PIG["MODELS_DIR"]) / raw, Path(settings.BASE_DIR) / raw):
        if (candidate / "config.json").is_file() or (candidate / "adapter_config.json").is_file():
            return candidate.resolve()
    return None


def training_run_tasks(run: TrainingRun) -> tuple[list[dict[str, Any]], list[str]]:
    """The run's training tasks as {masked_task, hidden_facts} and any problems reading them."""
    sources = [bool(run.task_split), bool(run.task_study_id), bool(run.tasks_file)]
    if sum(sources) != 1:
        return [], ["choose exactly one task source: a split, a study, or a tasks file"]
    if run.tasks_file:
        return _tasks_from_file(Path(run.tasks_file))
    rows = Task.objects.order_by("pk")
    rows = rows.filter(split=run.task_split) if run.task_split else rows.filter(comparisons__study=run.task_study)
    tasks = [
        {"masked_task": t["masked_task"], "hidden_facts": list(t["hidden_facts"]), "fact_slots": _slots(t)}
        for t in rows.distinct().values("masked_task", "hidden_facts", "fact_slots")
        if t["hidden_facts"]
    ]
    return tasks, [] if tasks else ["no training tasks with hidden facts in the chosen source"]


def _slots(row: dict[str, Any]) -> list[dict[str, str]]:
    facts = facts_of(list(row["hidden_facts"]), row.get("fact_slots"))
    return [{"slot": f.slot, "value": f.value} for f in facts]


def _tasks_from_file(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    if not path.is_file():
        return [], [f"tasks file {path} does not exist"]
    # The import parser: the same line numbers and reasons (bad JSON, invalid UTF-8, not an object…).
    with path.open("rb") as handle:
        rows, errors = parse_jsonl(handle)
    problems = [(e.line, e.message) for e in errors]
    tasks = []
    for number, row in rows:
        try:
            masked = require_text(row, "masked_task")
            facts = row.get("hidden_facts")
            if not isinstance(facts, list) or not facts or not all(isinstance(f, str | dict) for f in facts):
                raise ValueError("hidden_facts must be a non-empty list of strings or {slot, value} objects")
        except ValueError as exc:
            problems.append((number, str(exc)))
        else:
            parsed = [fact_from_raw(f) for f in facts]
            slots = [{"slot": f.slot, "value": f.value} for f in parsed]
            tasks.append({"masked_task": masked, "hidden_facts": [f.text for f in parsed], "fact_slots": slots})
    if not tasks and not problems:
        return [], [f"tasks file {path} holds no tasks"]
    return tasks, [f"tasks file line {number}: {message}" for number, message in sorted(problems)[:20]]


WARM_START_PREFIXES = ("system", "study")


def training_run_warm_start_examples(run: TrainingRun) -> tuple[list[dict[str, Any]], list[str]]:
    """Warm-start examples `{"masked_task", "questions"}` from the run's source, train-split tasks only (the test
    split stays held out), and any problems. No source and no steps: no warm start, no problem."""
    source, steps = run.warm_start_source.strip(), run.warm_start_steps
    if not source and not steps:
        return [], []
    if not source:
        return [], ["warm_start_steps is set but warm_start_source is empty (system:NAME or study:SLUG)"]
    if not steps:
        return [], [f"warm start source {source!r} is set but warm_start_steps is 0"]
    kind, _, name = source.partition(":")
    if kind not in WARM_START_PREFIXES or not name:
        return [], [f"warm start source {source!r} must be system:NAME or study:SLUG"]
    if kind == "system":
        system = System.objects.filter(name=name).first()
        if system is None:
            return [], [f"warm start: no system named {name!r}"]
        candidates = list(
            Candidate.objects.filter(system=system, task__split=Split.TRAIN).select_related("task").order_by("task_id")
        )
    else:
        from annotation.selectors import study_preferred_candidates

        study = Study.objects.filter(slug=name).first()
        if study is None:
            return [], [f"warm start: no study with slug {name!r}"]
        if study.kind != StudyKind.QUESTIONS:
            return [], [f"warm start: study {name!r} judges {study.kind}, not question sets"]
        candidates = study_preferred_candidates(study=study, split=Split.TRAIN)
    examples = [{"masked_task": c.task.masked_task, "questions": list(c.questions)} for c in candidates if c.questions]
    if not examples:
        return [], [f"warm start: {source} has no candidates with questions on train-split tasks"]
    return examples, []


def training_run_is_dead(run: TrainingRun, *, now: Any = None, dead_after: timedelta | None = None) -> bool:
    """A running run nobody has heard from for a while: its worker died. It can be resumed."""
    if run.status != JobStatus.RUNNING:
        return False
    dead_after = dead_after or timedelta(seconds=settings.PIG["TRAINING_DEAD_AFTER_S"])
    last = run.heartbeat_at or run.started_at
    return last is None or last < (now or timezone.now()) - dead_after


def training_run_can_start(run: TrainingRun) -> bool:
    # Never launched: fresh, or refused by validation (fix the configuration, then start again).
    return run.started_at is None and (
        (run.status == JobStatus.QUEUED and run.enqueued_at is None) or run.status == JobStatus.FAILED
    )


def training_run_has_checkpoint(run: TrainingRun) -> bool:
    """A complete `checkpoint-N` exists in the run's output folder (read-only: nothing is renamed here)."""
    if not run.output_dir:
        return False
    root = Path(run.output_dir)
    return root.is_dir() and any(
        p.is_dir() and p.name.split("-")[-1].isdigit() and checkpoint_is_complete(p) for p in root.glob("checkpoint-*")
    )


def training_run_can_resume(run: TrainingRun) -> bool:
    # Offered only with a checkpoint to continue from: without one "resume" would silently start afresh.
    launched = run.started_at is not None
    stopped = run.status in (JobStatus.FAILED, JobStatus.CANCELLED) or training_run_is_dead(run)
    return launched and stopped and training_run_has_checkpoint(run)


def training_run_can_cancel(run: TrainingRun) -> bool:
    return (run.status == JobStatus.QUEUED and run.enqueued_at is not None) or (
        run.status == JobStatus.RUNNING and not run.cancel_requested
    )


def _output_dir(run: TrainingRun) -> str:
    return run.output_dir or str(Path(settings.PIG["RUNS_DIR"]) / run.name)


def training_run_spec(run: TrainingRun, *, resume: bool = False) -> TrainingSpec | DPOSpec:
    if run.algorithm == Algorithm.DPO:
        try:
            return dpo_run_spec(
                run, model_path=training_run_model_path(run), output_dir=_output_dir(run), resume=resume
            )
        except ValueError as exc:
            raise TrainingRunError(str(exc)) from exc
    tasks, problems = training_run_tasks(run)
    model_path = training_run_model_path(run)
    if problems or model_path is None:
        raise TrainingRunError("; ".join(problems) or "the base model path does not exist")
    examples, warm_problems = training_run_warm_start_examples(run)
    if warm_problems:
        raise TrainingRunError("; ".join(warm_problems))
    warm_start = (
        {"source": run.warm_start_source, "steps": run.warm_start_steps, "examples": examples} if examples else {}
    )
    return TrainingSpec(
        model_path=str(model_path),
        tasks=tasks,
        warm_start=warm_start,
        output_dir=_output_dir(run),
        hyperparameters=dict(run.hyperparameters or {}),
        reward_config=dict(run.reward_config or {}),
        reward_spec=dict(run.reward_spec or training_run_reward_spec(run).as_dict()),
        max_questions=int(training_run_decoding(run)["max_questions"]),
        device=run.device,
        resume=resume,
        run_id=run.pk,
        attempt=run.attempt,
        deepspeed_config=run.deepspeed_config,
    )


def training_run_reward_spec(run: TrainingRun) -> RewardSpec:
    """The run's frozen spec; for a run stored before specs existed, its config over the evaluation spec."""
    return RewardSpec.from_dict(run.reward_spec) if run.reward_spec else spec_for_run(run.reward_config)


def training_run_spec_differences(run: TrainingRun) -> list[tuple[str, Any, Any]]:
    """(field, the run's value, the evaluation spec's value) where the run trains on another reward."""
    try:
        return training_run_reward_spec(run).differences(default_spec())
    except (TypeError, ValueError):
        return []


DECODING_PARAMS = ("temperature", "top_p", "top_k", "max_new_tokens", "seed", "max_questions")


def decoding_problems(overrides: Any) -> list[str]:
    if not isinstance(overrides, dict):
        return ["decoding overrides must be a JSON object"]
    problems = [f"unknown decoding parameter {k!r} (choose from {', '.join(DECODING_PARAMS)})"
                for k in sorted(set(overrides) - set(DECODING_PARAMS))]  # fmt: skip
    for key, value in overrides.items():
        if key in DECODING_PARAMS and (not isinstance(value, int | float) or isinstance(value, bool) or value < 0):
            problems.append(f"decoding parameter {key!r} must be a non-negative number, not {value!r}")
    return problems


# ---------------------------------------------------------------- writes from the researcher's side


def training_run_create(
    *,
    name: str,
    base_model_path: str = "",
    base_system: System | None = None,
    task_split: str = "",
    task_study: Any = None,
    tasks_file: str = "",
    reward_config: dict[str, Any] | None = None,
    hyperparameters: dict[str, Any] | None = None,
    decoding_overrides: dict[str, Any] | None = None,
    device: str = Device.AUTO,
    num_processes: int = 1,
    deepspeed_config: str = "",
    warm_start_source: str = "",
    warm_start_steps: int = 0,
    created_by: Any = None,
    algorithm: str = Algorithm.GRPO,
    preference_studies: list[Any] | None = None,
    preferences_file: str = "",
    preference_config: dict[str, Any] | None = None,
) -> TrainingRun:
    run = TrainingRun(
        warm_start_source=warm_start_source,
        warm_start_steps=warm_start_steps,
        name=name,
        base_model_path=base_model_path,
        base_system=base_system,
        task_split=task_split,
        task_study=task_study,
        tasks_file=tasks_file,
        algorithm=algorithm,
        preferences_file=preferences_file,
        preference_config=preference_config or {},
        reward_config=reward_config or {},
        hyperparameters=hyperparameters or {},
        decoding_overrides=decoding_overrides or {},
        device=device,
        num_processes=num_processes,
        deepspeed_config=deepspeed_config,
        created_by=created_by,
    )
    run.max_steps = training_run_max_steps(run)
    # Frozen now: a later change of the evaluation default must not change what this run trained on.
    run.reward_spec = {} if reward_config_problems(run.reward_config) else spec_for_run(run.reward_config).as_dict()
    run.full_clean()
    with transaction.atomic():
        run.save()
        run.preference_studies.set(preference_studies or [])
    return run


CONFIG_FIELDS = (
    "name",
    "base_system",
    "base_model_path",
    "task_split",
    "task_study",
    "tasks_file",
    "warm_start_source",
    "warm_start_steps",
    "algorithm",
    "preference_studies",
    "preferences_file",
    "preference_config",
    "reward_config",
    "decoding_overrides",
    "hyperparameters",
    "device",
    "num_processes",
    "deepspeed_config",
)


def training_run_update(*, run: TrainingRun, **changes: Any) -> TrainingRun:
    """Change a run's configuration before it is first launched; afterwards its checkpoints were trained
    with this configuration, so resume must not see another one."""
    unknown = set(changes) - set(CONFIG_FIELDS)
    if unknown:
        raise TrainingRunError(f"not configuration fields: {', '.join(sorted(unknown))}")
    if not changes:
        return run
    studies = changes.pop("preference_studies", None)  # many-to-many: set after the row is saved
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().get(pk=run.pk)
        if run.started_at is not None:
            raise TrainingRunError(f"run {run.name} was launched: its configuration is fixed")
        for name, value in changes.items():
            setattr(run, name, value)
        run.max_steps = training_run_max_steps(run)
        run.full_clean()
        run.save(update_fields=[*changes, "max_steps"])
        if studies is not None:
            run.preference_studies.set(studies)
    return run


def training_run_max_steps(run: TrainingRun) -> int:
    """Steps on the run's one axis: the warm start (GRPO runs), then GRPO or DPO."""
    merge = merged_dpo_hyperparameters if run.algorithm == Algorithm.DPO else merged_hyperparameters
    steps = merge(run.hyperparameters if isinstance(run.hyperparameters, dict) else {})["max_steps"]
    main = steps if isinstance(steps, int) and steps > 0 else 0
    warm = (run.warm_start_steps or 0) if run.warm_start_source and run.algorithm != Algorithm.DPO else 0
    return main + warm


def training_run_total_steps(run: TrainingRun) -> int:
    return training_run_max_steps(run)


def training_run_problems(run: TrainingRun) -> list[str]:
    """Everything that would make the run fail, found without loading a model (cheap, web-process safe)."""
    problems: list[str] = []
    if training_run_model_path(run) is None:
        where = run.base_system.model_path if run.base_system_id else run.base_model_path
        problems.append(
            f"unknown model path {where!r}: no model directory (config.json) there" if where else "no base model given"
        )
    problems += decoding_problems(run.decoding_overrides)
    if run.device == Device.CPU and run.num_processes != 1:
        problems.append("CPU runs use one process (num_processes = 1)")
    if run.deepspeed_config and not Path(run.deepspeed_config).is_file():
        problems.append(f"DeepSpeed config {run.deepspeed_config} does not exist")
    if run.algorithm == Algorithm.DPO:
        return problems + dpo_run_problems(run, model_path=training_run_model_path(run))
    problems += hyperparameter_problems(run.hyperparameters, num_processes=run.num_processes)
    problems += reward_config_problems(run.reward_config)
    tasks, task_problems = training_run_tasks(run)
    problems += task_problems
    if tasks and not hyperparameter_problems(run.hyperparameters, num_processes=run.num_processes):
        # TRL drops an incomplete generation batch: with fewer tasks than prompts per step it trains 0 steps.
        hp = merged_hyperparameters(run.hyperparameters)
        per_step = hp["per_device_train_batch_size"] * run.num_processes * hp["gradient_accumulation_steps"]
        prompts = per_step // hp["num_generations"]
        if len(tasks) < prompts:
            problems.append(
                f"a step samples {prompts} distinct prompts but the task source has only {len(tasks)} tasks: "
                "add tasks or lower per_device_train_batch_size × gradient_accumulation_steps / num_generations"
            )
    problems += training_run_warm_start_examples(run)[1]
    return problems


def training_run_validate(*, run: TrainingRun) -> list[str]:
    """Check the configuration; when it is bad, mark the run failed with the reasons and return them."""
    problems = training_run_problems(run)
    if problems:
        error = "Configuration refused:\n" + "\n".join(f"- {p}" for p in problems)
        TrainingRun.objects.filter(pk=run.pk, started_at=None).update(
            status=JobStatus.FAILED, error=error, finished_at=timezone.now()
        )
        run.refresh_from_db()
    return problems


def _enqueue(run_id: int, attempt: int, *, resume: bool) -> None:
    from .run_tasks import run_training

    def record(error: str) -> None:
        TrainingRun.objects.filter(pk=run_id, attempt=attempt).update(error=error)

    enqueue_on_commit(lambda: run_training.delay(run_id, attempt, resume=resume), record)


@transaction.atomic
def training_run_start(*, run: TrainingRun, enqueue: bool = True) -> TrainingRun:
    """Validate and enqueue a never-launched run on the `training` queue. Bad configuration → failed, not queued.

    `enqueue=False` only marks it queued: the caller supervises it itself (`manage.py train --inline`)."""
    if not training_run_can_start(run):
        raise TrainingRunError(f"run {run.name} was already started ({run.status}); resume it or create a new run")
    if training_run_validate(run=run):
        return run
    output_dir = run.output_dir or str(Path(settings.PIG["RUNS_DIR"]) / run.name)
    # Compare-and-set on the attempt: two researchers pressing Start at once enqueue one task, not two.
    claimed = TrainingRun.objects.filter(pk=run.pk, attempt=run.attempt, started_at=None).update(
        status=JobStatus.QUEUED,
        attempt=F("attempt") + 1,
        enqueued_at=timezone.now(),
        error="",
        cancel_requested=False,
        finished_at=None,
        output_dir=output_dir,
        max_steps=training_run_max_steps(run),
        # Frozen at start (the configuration is read-only once launched): the reward this run trains on.
        reward_spec=spec_for_run(run.reward_config).as_dict(),
    )
    if not claimed:
        raise TrainingRunError(f"run {run.name} changed meanwhile; reload and try again")
    run.refresh_from_db()
    if enqueue:
        _enqueue(run.pk, run.attempt, resume=False)
    return run


def training_run_can_reenqueue(run: TrainingRun) -> bool:
    return run.status == JobStatus.QUEUED and run.started_at is None and run.enqueued_at is not None


@transaction.atomic
def training_run_reenqueue(*, run: TrainingRun) -> TrainingRun:
    """Send a queued run's task again after the broker was unreachable when it was started."""
    run.refresh_from_db()
    if run.status != JobStatus.QUEUED or run.started_at is not None:
        raise TrainingRunError(f"run {run.name} is {run.status}: only a queued run that never started is re-enqueued")
    TrainingRun.objects.filter(pk=run.pk).update(error="")
    _enqueue(run.pk, run.attempt, resume=False)
    run.refresh_from_db()
    return run


@transaction.atomic
def training_run_cancel(*, run: TrainingRun) -> TrainingRun:
    """Queued: cancelled at once. Running: the training process stops at its next step (a checkpoint is saved
    so it can be resumed) and the supervisor kills the process group if it does not. Dead: cancelled at once."""
    run.refresh_from_db()
    now = timezone.now()
    if (run.status == JobStatus.QUEUED and run.enqueued_at is not None) or training_run_is_dead(run):
        TrainingRun.objects.filter(pk=run.pk, attempt=run.attempt, status=run.status).update(
            status=JobStatus.CANCELLED, cancel_requested=True, finished_at=now
        )
    elif run.status == JobStatus.RUNNING:
        TrainingRun.objects.filter(pk=run.pk, status=JobStatus.RUNNING).update(cancel_requested=True)
    else:
        raise TrainingRunError(f"run {run.name} is {run.status}: only queued or running runs can be cancelled")
    run.refresh_from_db()
    return run


def training_runs_stop_all(*, reason: str) -> list[str]:
    """Cancel every queued or running run at once (the machine is shutting down: bin/demo's Ctrl-C).

    Unlike Cancel, this does not wait for the current step: the attempt is bumped, so the supervisor finds
    itself superseded at its next beat (seconds) and kills the training process group, and the training
    process, fenced off, can no longer write. Returns the names of the runs stopped."""
    stopped = []
    for run in TrainingRun.objects.filter(status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).order_by("pk"):
        claimed = TrainingRun.objects.filter(pk=run.pk, attempt=run.attempt, status=run.status).update(
            status=JobStatus.CANCELLED,
            cancel_requested=True,
            attempt=F("attempt") + 1,
            error=reason,
            finished_at=timezone.now(),
        )
        if claimed:
            stopped.append(run.name)
    return stopped


@transaction.atomic
def training_run_resume(*, run: TrainingRun) -> TrainingRun:
    """Re-enqueue a failed, cancelled or dead run; it continues from its last checkpoint and step count."""
    run.refresh_from_db()
    launched = run.started_at is not None
    if not (launched and (run.status in (JobStatus.FAILED, JobStatus.CANCELLED) or training_run_is_dead(run))):
        raise TrainingRunError(f"run {run.name} is {run.status}: only failed, cancelled or dead runs can be resumed")
    if not training_run_has_checkpoint(run):
        raise TrainingRunError(
            f"run {run.name} has no checkpoint to resume from (it stopped before its first save): "
            "create a new run with the same configuration instead"
        )
    problems = training_run_problems(run)
    if problems:
        raise TrainingRunError("Configuration refused: " + "; ".join(problems))
    # The attempt bump fences off whatever is left of the previous attempt (an orphaned training process).
    claimed = TrainingRun.objects.filter(pk=run.pk, attempt=run.attempt, status=run.status).update(
        status=JobStatus.QUEUED,
        attempt=F("attempt") + 1,
        enqueued_at=timezone.now(),
        cancel_requested=False,
        error="",
        finished_at=None,
        max_steps=training_run_max_steps(run),
    )
    if not claimed:
        raise TrainingRunError(f"run {run.name} changed meanwhile; reload and try again")
    run.refresh_from_db()
    _enqueue(run.pk, run.attempt, resume=True)
    return run


# ---------------------------------------------------------------- writes from the supervisor


def training_run_claim(*, run_id: int, attempt: int) -> bool:
    """queued → running for exactly this attempt; a redelivered or duplicate task finds nothing to claim."""
    now = timezone.now()
    return bool(
        TrainingRun.objects.filter(pk=run_id, attempt=attempt, status=JobStatus.QUEUED).update(
            status=JobStatus.RUNNING, started_at=now, heartbeat_at=now, cancel_requested=False
        )
    )


def _state(run_id: int, attempt: int) -> State:
    row = TrainingRun.objects.filter(pk=run_id).values("attempt", "status", "cancel_requested").first()
    if row is None or row["attempt"] != attempt or row["status"] != JobStatus.RUNNING:
        return "superseded"
    return "cancelled" if row["cancel_requested"] else "continue"


def training_run_supervisor_beat(*, run_id: int, attempt: int, log: str) -> State:
    TrainingRun.objects.filter(pk=run_id, attempt=attempt, status=JobStatus.RUNNING).update(
        log=log, heartbeat_at=timezone.now()
    )
    return _state(run_id, attempt)


def training_run_finish(*, run_id: int, attempt: int, status: str, error: str = "", log: str | None = None) -> bool:
    """Record the final status of this attempt; a successful run first gets its System registered."""
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().filter(pk=run_id, attempt=attempt).first()
        if run is None or run.status != JobStatus.RUNNING:
            return False
        if status == JobStatus.SUCCEEDED:
            try:
                training_run_register_system(run=run)
            except (OSError, ValueError, IntegrityError) as exc:
                status, error = JobStatus.FAILED, f"training finished but the model could not be registered: {exc}"
        fields: dict[str, Any] = {"status": status, "error": error[-20000:], "finished_at": timezone.now()}
        if log is not None:
            fields["log"] = log
        if status == JobStatus.SUCCEEDED:
            fields["step"] = max(run.step, _final_steps(run))
        TrainingRun.objects.filter(pk=run_id, attempt=attempt).update(**fields)
    return True


def _final_steps(run: TrainingRun) -> int:
    info = Path(run.output_dir) / FINAL_DIR / FINAL_INFO
    try:
        return int(json.loads(info.read_text(encoding="utf-8")).get("steps", 0))
    except (OSError, ValueError):
        return 0


def training_run_base_system(run: TrainingRun) -> System | None:
    """The run's base System, or the System serving the same base model path (a run started from a path)."""
    if run.base_system_id:
        return run.base_system
    if not run.base_model_path:
        return None
    path = training_run_model_path(run)
    paths = {run.base_model_path, str(path)} if path else {run.base_model_path}
    return System.objects.filter(model_path__in=paths, training_run=None).order_by("pk").first()


def training_run_decoding(run: TrainingRun) -> dict[str, Any]:
    """The registered System's generation parameters. Base and trained model must be generated alike, or a
    comparison measures decoding, not training: the base System's parameters (temperature, top_p,
    max_new_tokens, seed, max_questions…) are inherited unless the run overrides them."""
    base = training_run_base_system(run)
    params = dict(base.generation_params or {}) if base else {}
    params.setdefault("max_questions", training_run_reward_spec(run).k)
    params.update(run.decoding_overrides or {})
    return params


def training_run_register_system(*, run: TrainingRun) -> System:
    """The finished model (or LoRA adapter on its base) becomes a `transformers` System linked to the run."""
    existing = System.objects.filter(training_run=run).first()
    if existing:
        return existing
    final = Path(run.output_dir) / FINAL_DIR
    info_path = final / FINAL_INFO
    if not info_path.is_file():
        raise ValueError(f"no finished model in {final}")
    info = json.loads(info_path.read_text(encoding="utf-8"))
    params = training_run_decoding(run)
    base = training_run_base_system(run)
    inherited = {**((base.generation_params or {}) if base else {}), **(run.decoding_overrides or {})}
    if run.algorithm == Algorithm.DPO and "max_questions" not in inherited:
        # DPO learned from question sets of the preference config's size, not the reward spec's K.
        params["max_questions"] = merged_preference_config(run.preference_config)["max_questions"]
    if info.get("adapter"):
        # transformers loads base + adapter from the adapter directory (adapter_config.json names the base).
        params.update(adapter=True, base_model_path=info["base_model_path"])
    name = run.name if not System.objects.filter(name=run.name).exists() else f"{run.name}-run{run.pk}"
    system = System(
        name=name,
        backend=Backend.TRANSFORMERS,
        model_path=str(final),
        generation_params=params,
        training_run=run,
        description=f"{run.algorithm.upper()} run {run.name} ({info.get('steps', '?')} steps"
        + (", LoRA adapter" if info.get("adapter") else "")
        + (
            f", after {info['warm_start_steps']} warm-start steps on {info.get('warm_start_source')}"
            if info.get("warm_start_steps")
            else ""
        )
        + f") from {info.get('initial_model_path') or info['base_model_path']}",
    )
    system.full_clean()
    system.save()
    return system


# ---------------------------------------------------------------- writes from the training process


def training_run_beat(*, run_id: int, attempt: int, step: int) -> State:
    TrainingRun.objects.filter(pk=run_id, attempt=attempt, status=JobStatus.RUNNING).update(
        step=step, heartbeat_at=timezone.now()
    )
    return _state(run_id, attempt)


def training_run_record_metrics(
    *,
    run_id: int,
    attempt: int,
    step: int,
    values: dict[str, float],
    completions: list[dict[str, Any]],
    phase: str = Phase.GRPO,
) -> State:
    state = _state(run_id, attempt)
    if state == "superseded":
        return state
    with transaction.atomic():
        # A resumed run replays the steps after its last checkpoint: the newer values replace the old ones.
        TrainingMetric.objects.update_or_create(run_id=run_id, step=step, defaults={"values": values, "phase": phase})
        update: dict[str, Any] = {"step": step, "heartbeat_at": timezone.now()}
        if completions:
            update["last_completions"] = completions
        TrainingRun.objects.filter(pk=run_id, attempt=attempt).update(**update)
    return state


def training_run_record_preference_eval(*, run_id: int, attempt: int, result: dict[str, Any]) -> State:
    """A DPO run's pair summary and held-out accuracies, written by its training process as they are known."""
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().filter(pk=run_id, attempt=attempt).first()
        if run is None or run.status != JobStatus.RUNNING:
            return "superseded"
        merged = {**(run.preference_eval or {}), **result}
        if "base" in result and "trained" not in result:
            merged.pop("trained", None)  # a new attempt measures again; an older "after" no longer belongs to it
        TrainingRun.objects.filter(pk=run_id, attempt=attempt).update(preference_eval=merged)
    return _state(run_id, attempt)


@dataclass(frozen=True)
class CurvePoint:
    step: int
    values: dict[str, float]
    phase: str = Phase.GRPO


def training_run_curve(run: TrainingRun) -> list[CurvePoint]:
    rows = run.metrics.order_by("step").values("step", "values", "phase")
    return [CurvePoint(m["step"], m["values"], m["phase"]) for m in rows]


SIGNAL_WINDOW = 10
SIGNAL_ZERO_STD_SHARE = 0.8
SIGNAL_KEY = "frac_reward_zero_std/elicitation_reward"


def training_run_signal_warning(run: TrainingRun) -> str:
    """A warning when the elicitation reward gave GRPO nothing to learn from for SIGNAL_WINDOW steps running:
    more than SIGNAL_ZERO_STD_SHARE of the groups had one reward for all their completions. Empty when fine."""
    rows = list(run.metrics.filter(phase=Phase.GRPO).order_by("-step").values_list("values", flat=True)[:SIGNAL_WINDOW])
    shares = [v.get(SIGNAL_KEY) for v in rows]
    if len(rows) < SIGNAL_WINDOW or not all(isinstance(x, int | float) and x > SIGNAL_ZERO_STD_SHARE for x in shares):
        return ""
    clipped = [v["completions/clipped_ratio"] for v in rows if isinstance(v.get("completions/clipped_ratio"), float)]
    clipped_note = f" (now {sum(clipped) / len(clipped):.0%} of completions hit it)" if clipped else ""
    return (
        f"No learning signal from the elicitation reward: in each of the last {SIGNAL_WINDOW} steps more than "
        f"{SIGNAL_ZERO_STD_SHARE:.0%} of the groups (mean {sum(shares) / len(shares):.0%}) gave every completion "
        "the same elicitation reward, so its advantages are zero and only shaping terms move the model. "
        "Likely causes: the model asks no on-topic question yet (add a warm start: warm_start_source and "
        "warm_start_steps); completions are cut before the questions end (raise max_completion_length"
        f"{clipped_note}); too few completions per prompt (num_generations) or a low sampling temperature; "
        "or the reward's matcher links no question to these tasks' hidden facts (check the reward spec)."
    )
