from __future__ import annotations

from training.backends.transformers import TransformersBackend
from training.pipeline import QUESTIONS_PROMPT_VERSION, TaskInput, run_pipeline
from training.simulator import NOT_SPECIFIED, SlotSimulator

from .chat_server import scripted_reply
from .scripted import ScriptedBackend

TASKS = [
    TaskInput("bees", "Write an outline for a grant proposal on urban beekeeping.", ["The budget is $5,000."]),
    TaskInput("trip", "Plan a trip to Japan.", ["The deadline is March 3.", "We travel with a toddler."]),
]


def test_pipeline_asks_simulates_and_outlines_with_one_model_call_per_stage():
    backend = ScriptedBackend(lambda messages: scripted_reply({"messages": messages}, 0)[1])
    outputs = run_pipeline(TASKS, backend=backend, params={"max_questions": 2, "seed": 4}, simulator=SlotSimulator())
    assert len(backend.calls) == 2
    assert all(len(call) == 2 for call in backend.calls)
    bees, trip = outputs
    assert bees.questions == ["What is your budget?", "When is the deadline?"]  # K = 2 keeps the first two
    assert bees.answers == ["The budget is $5,000.", NOT_SPECIFIED]
    assert bees.revealed == [[0], []]
    assert trip.revealed == [[], [0]]
    assert bees.outline.startswith("## Outline")
    # The outline prompt carries the Q/A transcript.
    assert "A: The budget is $5,000." in backend.calls[1][0][-1]["content"]
    meta = bees.metadata
    assert meta["prompt_versions"]["questions"] == QUESTIONS_PROMPT_VERSION
    assert (meta["prompt_tokens"], meta["completion_tokens"], meta["seed"], meta["batch_size"]) == (10, 6, 4, 2)
    assert meta["backend"] == "scripted"
    assert meta["latency_s"] >= 0


def test_pipeline_runs_on_the_tiny_model_and_keeps_at_most_k_questions(tiny_model_dir):
    backend = TransformersBackend(str(tiny_model_dir), device="cpu")
    params = {"max_questions": 3, "max_new_tokens": 24, "temperature": 0.8, "seed": 1}
    outputs = run_pipeline(TASKS, backend=backend, params=params, simulator=SlotSimulator())
    for out in outputs:
        assert len(out.questions) <= 3
        assert len(out.answers) == len(out.questions) == len(out.revealed)
        assert out.metadata["completion_tokens"] > 0
        assert out.metadata["model"] == str(tiny_model_dir)
        assert "\x00" not in out.outline
