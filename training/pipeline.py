"""The paper's pipeline for a chunk of tasks with one system. Pure: no Django.

masked task → clarification questions → simulated answers → outline. Each stage is one batched model
call for the whole chunk, so a GPU (or a CPU's vector units) works on many tasks at once."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .backends import Backend, GenerationResult
from .parsing import parse_questions
from .prompts import QUESTIONS_PROMPT_VERSION, questions_prompt
from .simulator import FactLike, SimulationItem, UserSimulator

OUTLINE_PROMPT_VERSION = "outline-v1"
DEFAULT_MAX_QUESTIONS = 5
MAX_TEXT = 20_000  # a runaway generation must not fill the database

OUTLINE_SYSTEM = (
    "You help users with writing and planning requests. Write a concise outline (headings and bullet "
    "points) that fulfils the request, using everything the user told you in the conversation."
)


@dataclass(frozen=True)
class TaskInput:
    key: str
    masked_task: str
    hidden_facts: Sequence[FactLike]  # sentences, or slot/value Facts (training.facts)


@dataclass
class PipelineOutput:
    key: str
    questions: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    revealed: list[list[int]] = field(default_factory=list)
    outline: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    error: str = ""


def outline_prompt(masked_task: str, questions: Sequence[str], answers: Sequence[str]) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": OUTLINE_SYSTEM}, {"role": "user", "content": masked_task}]
    if questions:
        transcript = "\n".join(f"Q: {q}\nA: {a}" for q, a in zip(questions, answers, strict=True))
        messages.append({"role": "assistant", "content": "\n".join(questions)})
        messages.append({"role": "user", "content": f"My answers:\n{transcript}\n\nNow write the outline."})
    else:
        messages[-1] = {"role": "user", "content": f"{masked_task}\n\nWrite the outline."}
    return messages


def clean_text(text: str) -> str:
    # PostgreSQL refuses NUL in text and JSON; model output is untrusted, so drop it and cap the size.
    return text.replace("\x00", "")[:MAX_TEXT]


def run_pipeline(
    tasks: Sequence[TaskInput],
    *,
    backend: Backend,
    params: dict[str, Any],
    simulator: UserSimulator,
    simulator_name: str = "",
) -> list[PipelineOutput]:
    k = int(params.get("max_questions", DEFAULT_MAX_QUESTIONS))
    gen_params = {key: v for key, v in params.items() if key not in {"max_questions", "chunk_size"}}
    outputs = [PipelineOutput(key=t.key) for t in tasks]

    started = time.perf_counter()
    q_results = backend.generate([questions_prompt(t.masked_task, k) for t in tasks], gen_params)
    q_seconds = time.perf_counter() - started
    for out, result in zip(outputs, q_results, strict=True):
        out.error = result.error
        out.questions = [clean_text(q) for q in parse_questions(result.text)[:k]]
        out.metadata["raw_questions"] = clean_text(result.text)

    live = [(t, o) for t, o in zip(tasks, outputs, strict=True) if not o.error]
    started = time.perf_counter()
    many = getattr(simulator, "answer_many", None)
    items = [SimulationItem(o.questions, t.hidden_facts, t.masked_task) for t, o in live]
    if many is not None:
        simulated = many(items)
    else:
        simulated = [simulator.answer(i.questions, i.hidden_facts, i.masked_task) for i in items]
    sim_seconds = time.perf_counter() - started
    for (_, out), answers in zip(live, simulated, strict=True):
        out.answers = [clean_text(a.text) for a in answers]
        out.revealed = [sorted(set(a.revealed)) for a in answers]

    started = time.perf_counter()
    o_results: list[GenerationResult] = backend.generate(
        [outline_prompt(t.masked_task, o.questions, o.answers) for t, o in live], gen_params
    )
    o_seconds = time.perf_counter() - started
    for (_, out), result in zip(live, o_results, strict=True):
        out.error = result.error
        out.outline = clean_text(result.text)

    n = max(1, len(tasks))
    for out, q_result in zip(outputs, q_results, strict=True):
        o_result = next((r for (_, o), r in zip(live, o_results, strict=True) if o is out), None)
        prompt_tokens = q_result.prompt_tokens + (o_result.prompt_tokens if o_result else 0)
        completion_tokens = q_result.completion_tokens + (o_result.completion_tokens if o_result else 0)
        out.metadata.update(
            {
                "backend": getattr(backend, "name", ""),
                "model": getattr(backend, "model", ""),
                "prompt_versions": {"questions": QUESTIONS_PROMPT_VERSION, "outline": OUTLINE_PROMPT_VERSION},
                "simulator": simulator_name,
                "max_questions": k,
                "seed": params.get("seed"),
                "sampling": {p: params[p] for p in ("temperature", "top_p", "top_k", "max_new_tokens") if p in params},
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "batch_size": len(tasks),
                # Stages run batched, so a task's latency is its share of the chunk's wall time.
                "latency_s": round((q_seconds + sim_seconds + o_seconds) / n, 4),
                "chunk_seconds": {
                    "questions": round(q_seconds, 3),
                    "simulator": round(sim_seconds, 3),
                    "outline": round(o_seconds, 3),
                },
            }
        )
        if out.questions == [] and not out.error:
            out.metadata["no_questions_parsed"] = True
    return outputs
