"""The next-comparison cost of a study goal, isolated: two studies (4 systems, 4,000 comparisons each), one
without a goal and one with `decide_all`, served in alternation from one process, so both see exactly the
same machine load. No refresh runs meanwhile (the engine path only; benchmarks/judging_latency.py --goal
measures the whole thing under concurrency, refresh included).

    DATABASE_URL=postgres://… PYTHONPATH=. python benchmarks/goal_engine_ab.py [--calls 600]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import judging_latency as jl

from annotation import services
from annotation.services_goal import study_sequential_refresh


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=600, help="next + submit per study")
    parser.add_argument("--comparisons", type=int, default=4000)
    args = parser.parse_args()
    tags = {goal: uuid.uuid4().hex[:8] for goal in ("", "decide_all")}
    built = {
        goal: jl.build(comparisons=args.comparisons, annotators=30, tag=tag, systems_n=4, goal=goal)
        for goal, tag in tags.items()
    }
    study_sequential_refresh(study_id=built["decide_all"][0].pk)
    times: dict[str, list[float]] = {goal: [] for goal in built}
    rng = random.Random(0)
    try:
        for i in range(args.calls):
            for goal, (study, users) in built.items():
                user = users[i % len(users)]
                started = time.perf_counter()
                assignment = services.assignment_next_for_annotator(study=study, annotator=user, rng=rng)
                times[goal].append((time.perf_counter() - started) * 1000)
                services.judgment_submit(
                    assignment_id=assignment.pk, annotator=user, choice=rng.choice(["1", "2", "tie"])
                )
        for goal, ms in times.items():
            q = statistics.quantiles(ms, n=100, method="inclusive")
            print(f"goal {goal or 'none':<10}  next-comparison p50 {q[49]:6.2f} ms  p95 {q[94]:6.2f} ms  (n={len(ms)})")
    finally:
        from pigplatform.celery import app

        app.control.purge()  # the goal study's judgments enqueued refreshes; no worker runs here
        for goal, (study, users) in built.items():
            jl.cleanup(study, users, tags[goal])


if __name__ == "__main__":
    main()
