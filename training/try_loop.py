""" "Try as the user": a researcher plays the user against a system, live.

The system asks its questions (a Celery task on the `generation` queue), the researcher answers them, and the
system writes its outline from those answers (a second task). Nothing touches the database until "save as
task + candidate": the session lives in the cache, which the web server and the generation worker share, for
TRY_TTL seconds. Only the researcher who started a session can see or continue it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import TextChoices

from annotation.blinding import compile_patterns, find_self_identification
from annotation.models import Candidate, Split, Task
from pigplatform.queueing import send_or_record

from .human_answers import AnsweredTask, HumanAnswer, HumanAnswerReplay, write_outlines
from .models import Backend as BackendChoice
from .models import System
from .parsing import parse_questions
from .pipeline import DEFAULT_MAX_QUESTIONS, clean_text
from .prompts import QUESTIONS_PROMPT_VERSION, questions_prompt

TRY_TTL = 2 * 3600
MAX_ANSWER_CHARS = 2000


class TryStage(TextChoices):
    ASKING = "asking", "The system is writing its questions"
    ANSWERING = "answering", "Your turn: answer the questions"
    WRITING = "writing", "The system is writing its outline from your answers"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


WAITING = (TryStage.ASKING, TryStage.WRITING)


def _key(token: str) -> str:
    return f"pig:try:v1:{token}"


def _save(state: dict[str, Any]) -> None:
    cache.set(_key(state["token"]), state, TRY_TTL)


def _load(token: str) -> dict[str, Any] | None:
    if not isinstance(token, str) or len(token) != 32 or not token.isalnum():
        return None
    return cache.get(_key(token))


def try_state(*, token: str, user: AbstractBaseUser) -> dict[str, Any] | None:
    """The session, if it exists and is this researcher's (someone else's looks exactly like a missing one)."""
    state = _load(token)
    if state is None or state["user_id"] != user.pk:
        return None
    return state


def _enqueue(state: dict[str, Any], task_name: str) -> None:
    from . import generation_tasks

    state["step_enqueued_at"] = time.time()
    state["step_started_at"] = None
    _save(state)
    task = getattr(generation_tasks, task_name)

    def record(error: str) -> None:
        state.update(stage=TryStage.FAILED, error=error)
        _save(state)

    send_or_record(lambda: task.delay(state["token"]), record)


def try_start(
    *,
    user: AbstractBaseUser,
    system: System,
    task: Task | None = None,
    masked_task: str = "",
    hidden_facts: Sequence[str] = (),
    full_task: str = "",
) -> dict[str, Any]:
    """Start a session with an existing task, or a new request (masked request + your own hidden facts)."""
    if system.backend == BackendChoice.STATIC:
        raise ValidationError(f"system '{system.name}' is static (imported outputs): it cannot ask live")
    if task is not None:
        masked_task, full_task, hidden_facts = task.masked_task, task.full_task, list(task.hidden_facts or [])
    masked_task = masked_task.strip()
    facts = [f.strip() for f in hidden_facts if f and f.strip()]
    if not masked_task:
        raise ValidationError("choose a task or type the request the system will see")
    if any("\x00" in text for text in [masked_task, full_task, *facts]):
        raise ValidationError("the request or a fact contains a NUL character")
    state = {
        "token": uuid.uuid4().hex,
        "user_id": user.pk,
        "system_id": system.pk,
        "task_id": task.pk if task is not None else None,
        "masked_task": masked_task,
        "full_task": (full_task or "").strip() or masked_task,
        "hidden_facts": facts,
        "stage": TryStage.ASKING,
        "questions": [],
        "answers": [],
        "outline": "",
        "error": "",
        "metadata": {},
        "created_at": time.time(),
    }
    _enqueue(state, "try_questions")
    return state


def _begin(token: str, stage: str) -> dict[str, Any] | None:
    state = _load(token)
    if state is None or state["stage"] != stage:
        return None  # expired, or another delivery already did this step
    state["step_started_at"] = time.time()
    _save(state)
    return state


def _finish(state: dict[str, Any], **changes: Any) -> None:
    state.update(changes, step_finished_at=time.time())
    _save(state)


def try_run_questions(*, token: str) -> None:
    """The system asks (worker side). Backend errors end the session with the error shown to the researcher."""
    from .generation import system_backend

    state = _begin(token, TryStage.ASKING)
    if state is None:
        return
    try:
        system = System.objects.get(pk=state["system_id"])
        params = dict(system.generation_params or {})
        k = int(params.get("max_questions", DEFAULT_MAX_QUESTIONS))
        gen = {key: v for key, v in params.items() if key not in {"max_questions", "chunk_size"}}
        started = time.perf_counter()
        (result,) = system_backend(system).generate([questions_prompt(state["masked_task"], k)], gen)
        seconds = time.perf_counter() - started
    except Exception as exc:  # the researcher reads it on the page; nothing was stored
        _finish(state, stage=TryStage.FAILED, error=f"{type(exc).__name__}: {exc}"[:1000])
        return
    questions = [clean_text(q) for q in parse_questions(result.text)[:k]]
    if result.error or not questions:
        error = result.error or "the system asked no question (its reply had none that parsed)"
        _finish(state, stage=TryStage.FAILED, error=error[:1000], raw=clean_text(result.text)[:2000])
        return
    _finish(
        state,
        stage=TryStage.ANSWERING,
        questions=questions,
        metadata={
            "prompt_versions": {"questions": QUESTIONS_PROMPT_VERSION},
            "raw_questions": clean_text(result.text),
            "questions_generation_s": round(seconds, 3),
            "completion_tokens": result.completion_tokens,
        },
    )


def try_submit_answers(*, token: str, user: AbstractBaseUser, answers: list[dict[str, Any]]) -> dict[str, Any]:
    """Your answers (text, or "the card doesn't say" for each question); the system then writes its outline."""
    state = try_state(token=token, user=user)
    if state is None:
        raise ValidationError("this session has expired or is not yours")
    if state["stage"] != TryStage.ANSWERING:
        raise ValidationError("the system is not waiting for answers now")
    if len(answers) != len(state["questions"]):
        raise ValidationError(f"answer all {len(state['questions'])} questions")
    cleaned = []
    for i, raw in enumerate(answers):
        doesnt_say = bool(raw.get("doesnt_say"))
        text = str(raw.get("text", "")).replace("\r\n", "\n").strip()
        if not doesnt_say and not text:
            raise ValidationError(f"question {i + 1}: write an answer, or choose “The card doesn't say”")
        if "\x00" in text or len(text) > MAX_ANSWER_CHARS:
            raise ValidationError(f"answer {i + 1} is too long or contains a NUL character")
        cleaned.append({"text": "" if doesnt_say else text, "doesnt_say": doesnt_say})
    state.update(stage=TryStage.WRITING, answers=cleaned)
    _enqueue(state, "try_outline")
    return state


def _human_answers(state: dict[str, Any]) -> list[HumanAnswer]:
    return [HumanAnswer(a["text"], a["doesnt_say"]) for a in state["answers"]]


def try_run_outline(*, token: str) -> None:
    """The system writes its outline from your answers (worker side)."""
    from .generation import system_backend

    state = _begin(token, TryStage.WRITING)
    if state is None:
        return
    try:
        system = System.objects.get(pk=state["system_id"])
        item = AnsweredTask("try", state["masked_task"], state["questions"], _human_answers(state))
        (out,) = write_outlines([item], backend=system_backend(system), params=dict(system.generation_params or {}))
    except Exception as exc:
        _finish(state, stage=TryStage.FAILED, error=f"{type(exc).__name__}: {exc}"[:1000])
        return
    if out.error:
        _finish(state, stage=TryStage.FAILED, error=out.error[:1000])
        return
    _finish(state, stage=TryStage.DONE, outline=out.outline, metadata={**state["metadata"], **out.metadata})


def try_progress(state: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    """What the waiting page shows: the stage, whether a worker has picked the step up, and seconds waited."""
    now = now or time.time()
    enqueued = state.get("step_enqueued_at") or now
    end = now if state["stage"] in WAITING else (state.get("step_finished_at") or now)
    return {
        "stage": state["stage"],
        "waiting": state["stage"] in WAITING,
        "worker_started": state.get("step_started_at") is not None,
        "elapsed_s": round(max(0.0, end - enqueued), 1),
        "error": state.get("error", ""),
    }


def try_save(
    *, token: str, user: AbstractBaseUser, key: str = "", domain: str = "", split: str = Split.TEST
) -> Candidate:
    """Store the session as a task (unless it used an existing one) and the system's candidate, with your answers
    in place of the simulator's. Refused, with nothing written, when the key or the (task, system) pair exists."""
    from .human_answers import matcher_named

    state = try_state(token=token, user=user)
    if state is None:
        raise ValidationError("this session has expired or is not yours")
    if state["stage"] != TryStage.DONE:
        raise ValidationError("save once the system has written its outline")
    if split not in Split.values:
        raise ValidationError(f"split must be one of {', '.join(Split.values)}")
    system = System.objects.get(pk=state["system_id"])
    replay = HumanAnswerReplay(_human_answers(state), matcher_named(settings.PIG_FIDELITY_MATCHER))
    revealed = [a.revealed for a in replay.answer(state["questions"], state["hidden_facts"])]
    texts = [a.as_text for a in _human_answers(state)]
    patterns = compile_patterns(System.objects.values_list("name", flat=True), settings.PIG_BLINDING_PATTERNS)
    try:
        with transaction.atomic():
            if state["task_id"] is not None:
                task = Task.objects.get(pk=state["task_id"])
            else:
                key = key.strip()
                if not key:
                    raise ValidationError("give the new task a key")
                task = Task(
                    key=key,
                    domain=(domain.strip() or "tried live")[:100],
                    full_task=state["full_task"],
                    masked_task=state["masked_task"],
                    hidden_facts=state["hidden_facts"],
                    split=split,
                )
                task.full_clean()
                task.save()
            candidate = Candidate(
                task=task,
                system=system,
                questions=state["questions"],
                answers=texts,
                revealed=revealed,
                outline=state["outline"],
                metadata={**state["metadata"], "try_as_user": True, "answers_by": "human", "answered_by": user.pk},
                blinding_flags=find_self_identification([*state["questions"], *texts, state["outline"]], patterns),
            )
            candidate.full_clean(exclude=["task", "system"])
            candidate.save()
    except IntegrityError as exc:
        raise ValidationError(f"{system.name} already has a candidate for task '{task.key}'") from exc
    return candidate
