"""Load test of the judging API against the real stack: gunicorn, PostgreSQL, Redis cache, loopback only.

    python benchmarks/load_test.py                      # 2,000 comparisons, overlap 3, 200 annotators
    python benchmarks/load_test.py --think-ms 0         # saturation: every annotator clicks at once
    python benchmarks/load_test.py --comparisons 200 --annotators 20 --max-seconds 60   # a quick look

It (re)creates the database --database on the PostgreSQL server --pg (default pig_load on
127.0.0.1:5432), migrates it, builds a study of --comparisons comparisons with --overlap, creates
--annotators annotator accounts, and starts gunicorn (--workers sync workers) on 127.0.0.1 with the
Redis cache (--cache-url). Each simulated annotator is its own HTTP session: it fetches the login page,
logs in with the CSRF token like a browser, fetches /api/csrf/, then loops POST next → (think) →
POST judgment with X-CSRFToken until the API says done. Annotators are threads spread over
--client-processes processes. Bounded: --max-seconds of judging, at most one loop per comparison.

Printed: requests/s, p50/p95/p99 per endpoint (client-measured, loopback), status codes per endpoint,
and an invariant check on the database afterwards: every comparison has exactly `overlap` judgments,
no annotator judged a comparison twice, every 2xx submit is in the database, no lease left behind,
the counters match the rows. Exit status 1 on any violation or 5xx.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "load-test-password-7319"


# --- The stack --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def recreate_database(server_url: str, name: str) -> str:
    """Drop and create `name` on the server; returns its URL."""
    import psycopg

    with psycopg.connect(f"{server_url}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{server_url}/{name}"


def stack_env(*, database_url: str, cache_url: str, var_dir: str, conn_max_age: int = 60) -> dict[str, str]:
    """Production-like settings (DEBUG off, real secret) on plain-HTTP loopback."""
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "CACHE_URL": cache_url,
        "SECRET_KEY": secrets.token_urlsafe(50),
        "DEBUG": "0",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
        "DB_CONN_MAX_AGE": str(conn_max_age),
        "PIG_VAR_DIR": var_dir,
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }


def migrate(env: dict[str, str]) -> None:
    """What a deploy runs: migrations, and static files under hashed names (pages link to those)."""
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)


@contextmanager
def gunicorn(env: dict[str, str], *, workers: int, log_path: Path) -> Iterator[str]:
    """gunicorn on a free loopback port; yields the base URL, stops the server afterwards."""
    port = free_port()
    options = ["--bind", f"127.0.0.1:{port}", "--timeout", "60", "--backlog", "2048", "--log-level", "warning"]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "pigplatform.wsgi", "--workers", str(workers), *options],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {proc.returncode}; see {log_path}")
            try:
                if requests.get(f"{base}/accounts/login/", timeout=10).status_code == 200:
                    break
            except requests.RequestException:
                pass  # still booting (the first request imports the whole project)
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not answer within 60 s; see {log_path}")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def setup_django(env: dict[str, str]) -> None:
    """Configure Django in this process for the stack's database (before any model import)."""
    for key in ("DATABASE_URL", "CACHE_URL", "SECRET_KEY", "PIG_VAR_DIR", "DEBUG", "ALLOWED_HOSTS"):
        os.environ[key] = env[key]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pigplatform.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def build_study(*, comparisons: int, overlap: int, annotators: int, prefix: str = "load") -> tuple[int, list[str]]:
    """A study of `comparisons` regular comparisons (no gold: gold items are not bounded by overlap) and
    `annotators` accounts sharing one password hash (hashing 200 times would take a minute)."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from annotation.models import Candidate, Comparison, Study, StudyStatus, Task
    from training.models import Backend, System

    User = get_user_model()
    hashed = User(username="x")
    hashed.set_password(PASSWORD)
    with transaction.atomic():
        systems = [System.objects.create(name=f"{prefix}-system-{i}", backend=Backend.STATIC) for i in range(2)]
        tasks = Task.objects.bulk_create(
            [
                Task(
                    key=f"{prefix}-{i:05d}",
                    domain="load",
                    full_task=f"Plan a trip number {i}; the budget is $2,000.",
                    masked_task=f"Plan a trip number {i}.",
                    hidden_facts=["The budget is $2,000."],
                )
                for i in range(comparisons)
            ],
            batch_size=1000,
        )
        candidates = Candidate.objects.bulk_create(
            [
                Candidate(task=task, system=system, questions=["What is the budget?", "How many travellers?"])
                for task in tasks
                for system in systems
            ],
            batch_size=1000,
        )
        study = Study.objects.create(
            slug=f"{prefix}-study",
            title="Load test",
            kind="questions",
            overlap=overlap,
            status=StudyStatus.OPEN,
            gold_rate=0.0,
        )
        study.systems.add(*systems)
        Comparison.objects.bulk_create(
            [
                Comparison(study=study, task=task, candidate_a=candidates[2 * i], candidate_b=candidates[2 * i + 1])
                for i, task in enumerate(tasks)
            ],
            batch_size=1000,
        )
        names = [f"{prefix}-annotator-{i:03d}" for i in range(annotators)]
        users = User.objects.bulk_create([User(username=name, password=hashed.password) for name in names])
        study.annotators.add(*users)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # fresh planner statistics, as autovacuum would give a running deployment
    return study.pk, names


# --- One simulated annotator ------------------------------------------------------------------------


@dataclass
class Samples:
    latency: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    codes: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    submitted: list[tuple[str, int, int]] = field(default_factory=list)  # (username, assignment, status)
    failures: list[str] = field(default_factory=list)
    bodies_5xx: list[str] = field(default_factory=list)

    def merge(self, other: Samples) -> None:
        for key, values in other.latency.items():
            self.latency[key].extend(values)
        for key, counter in other.codes.items():
            self.codes[key].update(counter)
        self.submitted.extend(other.submitted)
        self.failures.extend(other.failures)
        self.bodies_5xx.extend(other.bodies_5xx)


class Annotator:
    def __init__(self, base: str, username: str, samples: Samples, lock: threading.Lock) -> None:
        self.base, self.username = base, username
        self.session = requests.Session()
        self.samples, self.lock = samples, lock

    def call(self, endpoint: str, method: str, path: str, **kwargs: Any) -> requests.Response | None:
        started = time.perf_counter()
        try:
            response = self.session.request(method, f"{self.base}{path}", timeout=60, **kwargs)
        except requests.RequestException as exc:
            with self.lock:
                self.samples.codes[endpoint][type(exc).__name__] += 1
            return None
        elapsed = (time.perf_counter() - started) * 1000
        with self.lock:
            self.samples.latency[endpoint].append(elapsed)
            self.samples.codes[endpoint][response.status_code] += 1
            if response.status_code >= 500:
                self.samples.bodies_5xx.append(f"{endpoint} {response.status_code}: {response.text[:300]}")
        return response

    def log_in(self) -> bool:
        page = self.call("login page", "GET", "/accounts/login/")
        if page is None or "csrftoken" not in self.session.cookies:
            return False
        data = {
            "username": self.username,
            "password": PASSWORD,
            "csrfmiddlewaretoken": self.session.cookies["csrftoken"],
        }
        response = self.call("login", "POST", "/accounts/login/", data=data, allow_redirects=False)
        if response is None or response.status_code != 302:
            return False
        # Django rotates the CSRF token at login; the API hands out the new one.
        return self.call("csrf", "GET", "/api/csrf/") is not None

    @property
    def headers(self) -> dict[str, str]:
        return {"X-CSRFToken": self.session.cookies.get("csrftoken", "")}

    def judge(self, study_id: int, *, deadline: float, max_loops: int, think_ms: float, rng: random.Random) -> None:
        def think() -> None:
            if think_ms:
                time.sleep(rng.uniform(0, 2 * think_ms) / 1000)

        think()  # annotators do not all click in the same millisecond
        loops = failures = 0
        while time.monotonic() < deadline and loops < max_loops and failures < 10:
            loops += 1
            response = self.call("next", "POST", f"/api/studies/{study_id}/next/", headers=self.headers)
            if response is None or response.status_code != 200:
                failures += 1
                time.sleep(0.5)
                continue
            body = response.json()
            if body["done"]:
                break
            assignment = body["assignment"]["id"]
            think()
            self.submit(assignment, rng)
            think()
        self.call("progress", "GET", f"/api/studies/{study_id}/progress/")

    def submit(self, assignment: int, rng: random.Random) -> None:
        payload = {"choice": rng.choice(["1", "2", "tie"]), "active_seconds": round(rng.uniform(2, 20), 2)}
        for _ in range(5):  # retried like a browser would: the endpoint is idempotent
            response = self.call(
                "submit", "POST", f"/api/assignments/{assignment}/judgment/", json=payload, headers=self.headers
            )
            if response is not None and response.status_code < 500:
                with self.lock:
                    self.samples.submitted.append((self.username, assignment, response.status_code))
                return
            time.sleep(0.5)
        with self.lock:
            self.samples.failures.append(f"{self.username}: submit of assignment {assignment} never succeeded")


def client_process(
    base: str,
    study_id: int,
    usernames: list[str],
    barrier: Any,
    think_ms: float,
    max_seconds: float,
    max_loops: int,
    out: Any,
) -> None:
    """Log this process's annotators in, wait for every process, then judge; report samples and timings."""
    samples, lock = Samples(), threading.Lock()
    annotators = [Annotator(base, name, samples, lock) for name in usernames]
    started = time.time()
    logged_in: list[Annotator] = []

    def log_in(annotator: Annotator) -> None:
        if annotator.log_in():
            with lock:
                logged_in.append(annotator)
        else:
            with lock:
                samples.failures.append(f"{annotator.username}: login failed")

    run_threads([lambda a=a: log_in(a) for a in annotators])
    login_seconds = time.time() - started
    barrier.wait()
    judging_started = time.time()
    deadline = time.monotonic() + max_seconds
    run_threads(
        [
            lambda a=a: a.judge(
                study_id, deadline=deadline, max_loops=max_loops, think_ms=think_ms, rng=random.Random(a.username)
            )
            for a in logged_in
        ]
    )
    out.put(
        (
            {
                "latency": dict(samples.latency),
                "codes": {k: dict(v) for k, v in samples.codes.items()},
                "submitted": samples.submitted,
                "failures": samples.failures,
                "bodies_5xx": samples.bodies_5xx[:20],
            },
            login_seconds,
            judging_started,
            time.time(),
        )
    )


def run_threads(targets: list[Any]) -> None:
    threads = [threading.Thread(target=target) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def run_clients(
    *,
    base: str,
    study_id: int,
    usernames: list[str],
    processes: int,
    think_ms: float,
    max_seconds: float,
    max_loops: int,
) -> tuple[Samples, float, float]:
    """Returns merged samples, the slowest process's login time, and the judging phase's wall time."""
    ctx = multiprocessing.get_context("fork")
    barrier, out = ctx.Barrier(processes), ctx.Queue()
    procs = [
        ctx.Process(
            target=client_process,
            args=(base, study_id, usernames[i::processes], barrier, think_ms, max_seconds, max_loops, out),
        )
        for i in range(processes)
    ]
    for proc in procs:
        proc.start()
    results = [out.get() for _ in procs]
    for proc in procs:
        proc.join()
    samples = Samples()
    for raw, *_ in results:
        part = Samples()
        for key, values in raw["latency"].items():
            part.latency[key].extend(values)
        for key, counter in raw["codes"].items():
            part.codes[key].update(counter)
        part.submitted, part.failures, part.bodies_5xx = raw["submitted"], raw["failures"], raw["bodies_5xx"]
        samples.merge(part)
    login_seconds = max(r[1] for r in results)
    judging_wall = max(r[3] for r in results) - min(r[2] for r in results)
    return samples, login_seconds, judging_wall


# --- Checks and report ------------------------------------------------------------------------------


def check_invariants(study_id: int, submitted: list[tuple[str, int, int]]) -> list[str]:
    """Everything that must hold after the study completed; returns the violations (empty = all good)."""
    from django.db.models import Count, F

    from annotation.models import Assignment, AssignmentState, Comparison, Judgment, Study

    study = Study.objects.get(pk=study_id)
    violations: list[str] = []
    counts = Comparison.objects.filter(study=study).annotate(n=Count("judgments"))
    wrong = list(counts.exclude(n=study.overlap).values_list("pk", "n")[:10])
    if wrong:
        total = counts.exclude(n=study.overlap).count()
        violations.append(f"{total} comparisons without exactly {study.overlap} judgments, e.g. {wrong}")
    twice = (
        Judgment.objects.filter(comparison__study=study)
        .values("comparison", "annotator")
        .annotate(n=Count("pk"))
        .filter(n__gt=1)
    )
    if twice.exists():
        violations.append(f"{twice.count()} (comparison, annotator) pairs judged more than once")
    stored = {
        (username, assignment)
        for username, assignment in Judgment.objects.filter(comparison__study=study).values_list(
            "annotator__username", "assignment_id"
        )
    }
    missing = [(u, a, s) for u, a, s in submitted if 200 <= s < 300 and (u, a) not in stored]
    if missing:
        violations.append(f"{len(missing)} 2xx submits not in the database, e.g. {missing[:5]}")
    created = sum(1 for _, _, status in submitted if status == 201)
    if created != len(stored):
        violations.append(f"{created} submits answered 201 'recorded' but the study has {len(stored)} judgments")
    live = Assignment.objects.filter(comparison__study=study, state=AssignmentState.ACTIVE).count()
    if live:
        violations.append(f"{live} leases still active after the study completed")
    drift = counts.exclude(judgments_count=F("n")).count() + counts.exclude(slots_taken=F("n")).count()
    if drift:
        violations.append(f"{drift} comparisons whose judgments_count/slots_taken disagree with their rows")
    return violations


def pct(samples: list[float]) -> tuple[float, float, float]:
    if len(samples) < 2:
        value = samples[0] if samples else float("nan")
        return value, value, value
    q = statistics.quantiles(samples, n=100, method="inclusive")
    return q[49], q[94], q[98]


def report(samples: Samples, wall: float) -> tuple[int, int]:
    """Print the per-endpoint table; returns (requests in the judging phase, 5xx count)."""
    print(f"{'endpoint':<12}{'n':>8}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}   status codes")
    judging = 0
    five = 0
    for endpoint in ("login page", "login", "csrf", "next", "submit", "progress"):
        values = samples.latency.get(endpoint, [])
        codes = samples.codes.get(endpoint, {})
        p50, p95, p99 = pct(values)
        code_text = ", ".join(f"{code}: {n}" for code, n in sorted(codes.items(), key=lambda kv: str(kv[0])))
        print(f"{endpoint:<12}{len(values):>8}{p50:>10.1f}{p95:>10.1f}{p99:>10.1f}   {code_text}")
        five += sum(n for code, n in codes.items() if not isinstance(code, int) or code >= 500)
        if endpoint in ("next", "submit", "progress"):
            judging += sum(codes.values())
    print(f"judging phase: {judging} requests in {wall:.1f} s = {judging / wall:.0f} requests/s")
    return judging, five


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432", help="PostgreSQL server URL")
    parser.add_argument("--database", default="pig_load", help="dropped and recreated!")
    parser.add_argument("--cache-url", default="redis://127.0.0.1:6379/11")
    parser.add_argument("--comparisons", type=int, default=2000)
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--annotators", type=int, default=200)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument("--think-ms", type=float, default=4000, help="mean pause before and after each submit")
    parser.add_argument("--max-seconds", type=float, default=900, help="bound on the judging phase")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    var_dir = tempfile.mkdtemp(prefix="pig-load-")
    env = stack_env(database_url=recreate_database(args.pg, args.database), cache_url=args.cache_url, var_dir=var_dir)
    migrate(env)
    setup_django(env)
    from django.db import connection

    t0 = time.perf_counter()
    study_id, usernames = build_study(comparisons=args.comparisons, overlap=args.overlap, annotators=args.annotators)
    connection.close()  # the client processes are forked: they must not share this connection
    print(
        f"built {args.comparisons} comparisons (overlap {args.overlap}) and {args.annotators} annotators "
        f"in {time.perf_counter() - t0:.1f} s; gunicorn {args.workers} workers, think {args.think_ms:.0f} ms mean, "
        f"{os.cpu_count()} CPUs shared by server, database and clients"
    )
    log_path = Path(var_dir) / "gunicorn.log"
    with gunicorn(env, workers=args.workers, log_path=log_path) as base:
        samples, login_seconds, wall = run_clients(
            base=base,
            study_id=study_id,
            usernames=usernames,
            processes=args.client_processes,
            think_ms=args.think_ms,
            max_seconds=args.max_seconds,
            max_loops=args.comparisons + 1,
        )
    print(f"{args.annotators} logins (PBKDF2, Django's default cost) took {login_seconds:.1f} s")
    judging, five = report(samples, wall)
    for body in samples.bodies_5xx[:5]:
        print("5xx:", body)
    for failure in samples.failures[:10]:
        print("failure:", failure)
    violations = check_invariants(study_id, samples.submitted)
    judgments = sum(1 for *_, status in samples.submitted if status == 201)
    print(f"judgments recorded: {judgments} (expected {args.comparisons * args.overlap})")
    print("invariants:", "all hold" if not violations else "VIOLATED")
    for violation in violations:
        print("  -", violation)
    if args.json:
        figures = {
            endpoint: dict(zip(("p50", "p95", "p99"), pct(values), strict=True), n=len(values))
            for endpoint, values in samples.latency.items()
        }
        Path(args.json).write_text(
            json.dumps(
                {
                    "latency_ms": figures,
                    "codes": {k: {str(c): n for c, n in v.items()} for k, v in samples.codes.items()},
                    "requests_per_second": judging / wall,
                    "violations": violations,
                    "five_xx": five,
                },
                indent=2,
            )
        )
    sys.exit(1 if violations or five or samples.failures else 0)


if __name__ == "__main__":
    main()
