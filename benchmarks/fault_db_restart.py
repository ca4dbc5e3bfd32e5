"""Fault: PostgreSQL restarts while annotators submit. Ends with an invariant check (exit 1 on a violation).

    python benchmarks/fault_db_restart.py [--annotators 8 --comparisons 40 --outage-seconds 4 --mode fast]

Starts its OWN throwaway PostgreSQL (initdb + pg_ctl from /usr/lib/postgresql/*/bin, as the postgres
user when run as root) on a free port under a temp folder — the machine's server is never touched —
migrates it, builds a study, runs gunicorn (2 workers, persistent connections) and simulated annotators
(next → submit over the JSON API, CSRF honoured). While they work, PostgreSQL is stopped (`--mode fast`
or `immediate`, i.e. a crash), kept down for --outage-seconds, and started again.

Checked: every request during the outage fails with a 503 carrying a message (JSON for the API, a short
HTML page otherwise; never a 500 or a traceback); requests succeed again after the restart; the study
completes; every comparison has exactly `overlap` judgments, nobody judged a comparison twice, every 2xx
submit is stored, no lease is left, and there are no partial rows (each submitted assignment has exactly
one judgment and each judgment's assignment is submitted).
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from load_test import (
    Annotator,
    Samples,
    build_study,
    check_invariants,
    free_port,
    gunicorn,
    migrate,
    setup_django,
    stack_env,
)


def pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise SystemExit(f"{name} not found under /usr/lib/postgresql/*/bin")
    return found[-1]


class ThrowawayPostgres:
    """A private PostgreSQL cluster in a temp folder: initdb, start, stop, start again, delete."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="pig-fault-pg-", dir="/tmp"))
        self.data = self.root / "data"
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")

    def _run(self, *args: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self.as_root else []
        subprocess.run([*prefix, *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def init(self) -> None:
        self._run(pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self._run(pg_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}"

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


class Observed:
    """Every response with its time, so the outage window can be judged afterwards."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[float, str, int, str, str]] = []  # time, endpoint, status, content type, body

    def add(self, endpoint: str, response: requests.Response | None) -> None:
        with self.lock:
            if response is None:
                self.events.append((time.monotonic(), endpoint, 0, "", "connection error"))
            else:
                kind = response.headers.get("Content-Type", "")
                self.events.append((time.monotonic(), endpoint, response.status_code, kind, response.text[:500]))


class RetryingAnnotator(Annotator):
    """Keeps trying through an outage, as a browser's retry (or a patient person) would."""

    def __init__(self, *args: object, observed: Observed, think: float = 0.0, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.observed, self.think = observed, think

    def call(self, endpoint: str, method: str, path: str, **kwargs: object) -> requests.Response | None:
        response = super().call(endpoint, method, path, **kwargs)
        self.observed.add(endpoint, response)
        return response

    def work(self, study_id: int, deadline: float) -> None:
        while time.monotonic() < deadline:
            response = self.call("next", "POST", f"/api/studies/{study_id}/next/", headers=self.headers)
            if response is None or response.status_code != 200:
                time.sleep(0.3)
                continue
            body = response.json()
            if body["done"]:
                return
            assignment = body["assignment"]["id"]
            time.sleep(self.think)
            while time.monotonic() < deadline:
                response = self.call(
                    "submit",
                    "POST",
                    f"/api/assignments/{assignment}/judgment/",
                    json={"choice": "1"},
                    headers=self.headers,
                )
                if response is not None and response.status_code < 500:
                    with self.lock:
                        self.samples.submitted.append((self.username, assignment, response.status_code))
                    break
                time.sleep(0.3)
            time.sleep(self.think)


def partial_rows(study_id: int) -> list[str]:
    from annotation.models import Assignment, AssignmentState, Judgment

    problems = []
    orphans = Assignment.objects.filter(comparison__study_id=study_id, state=AssignmentState.SUBMITTED, judgment=None)
    if orphans.exists():
        problems.append(f"{orphans.count()} submitted assignments without a judgment")
    stray = Judgment.objects.filter(comparison__study_id=study_id).exclude(assignment__state=AssignmentState.SUBMITTED)
    if stray.exists():
        problems.append(f"{stray.count()} judgments whose assignment is not submitted")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--annotators", type=int, default=8)
    parser.add_argument("--comparisons", type=int, default=60)
    parser.add_argument("--think-seconds", type=float, default=0.25, help="pause before and after each submit")
    parser.add_argument("--overlap", type=int, default=2)
    parser.add_argument("--outage-seconds", type=float, default=4)
    parser.add_argument("--mode", choices=["fast", "immediate"], default="fast", help="pg_ctl stop mode")
    parser.add_argument("--max-seconds", type=float, default=120)
    args = parser.parse_args()

    pg = ThrowawayPostgres()
    failures: list[str] = []
    try:
        pg.init()
        pg.start()
        from load_test import recreate_database

        var_dir = str(pg.root / "var")
        env = stack_env(database_url=recreate_database(pg.url, "pig_fault"), cache_url="", var_dir=var_dir)
        migrate(env)
        setup_django(env)
        from django.db import connection

        study_id, usernames = build_study(
            comparisons=args.comparisons, overlap=args.overlap, annotators=args.annotators, prefix="fault"
        )
        connection.close()
        observed, samples, lock = Observed(), Samples(), threading.Lock()
        with gunicorn(env, workers=2, log_path=pg.root / "gunicorn.log") as base:
            annotators = [
                RetryingAnnotator(base, name, samples, lock, observed=observed, think=args.think_seconds)
                for name in usernames
            ]
            probe = RetryingAnnotator(base, usernames[0], Samples(), threading.Lock(), observed=observed)
            if not all(a.log_in() for a in [*annotators, probe]):
                raise SystemExit("login failed before the fault")
            deadline = time.monotonic() + args.max_seconds
            threads = [threading.Thread(target=a.work, args=(study_id, deadline)) for a in annotators]
            for thread in threads:
                thread.start()
            time.sleep(1.5)
            went_down = time.monotonic()
            pg.stop(args.mode)
            down = time.monotonic()
            time.sleep(0.5)
            # A person on the site during the outage: an HTML page and an API call.
            page = probe.call("page (outage)", "GET", "/")
            api = probe.call("api (outage)", "GET", f"/api/studies/{study_id}/progress/")
            time.sleep(max(0.0, args.outage_seconds - 0.5))
            up_started = time.monotonic()
            pg.start()
            up = time.monotonic()
            for thread in threads:
                thread.join()
            after = probe.call("page (after)", "GET", "/")
        print(f"PostgreSQL stopped ({args.mode}) for {up - down:.1f} s while {args.annotators} annotators worked")

        outage = [e for e in observed.events if went_down <= e[0] <= up]
        codes = sorted({e[2] for e in outage})
        print(f"requests during the outage: {len(outage)}, status codes {codes}")
        if page is None or page.status_code != 503 or "Temporarily unavailable" not in page.text:
            failures.append(
                f"HTML page during the outage: {page.status_code if page else None} {page.text[:200] if page else ''}"
            )
        if (
            api is None
            or api.status_code != 503
            or api.json().get("error") != "unavailable"
            or not api.json().get("message")
        ):
            failures.append(
                f"API during the outage: {api.status_code if api else None} {api.text[:200] if api else ''}"
            )
        else:
            print(f"API during the outage: 503 {api.json()}  Retry-After: {api.headers.get('Retry-After')}")
        for when, endpoint, status, kind, body in observed.events:
            if status >= 500 and (status != 503 or "Traceback" in body or ("unavailable" not in body.lower())):
                failures.append(f"{endpoint}: {status} {kind} {body[:200]}")
            if status == 503 and not (went_down <= when <= up + 5):
                failures.append(f"{endpoint}: 503 outside the outage window")
        if not any(e[0] > up_started and 200 <= e[2] < 300 for e in observed.events):
            failures.append("no request succeeded after the restart")
        if after is None or after.status_code != 200:
            failures.append("the home page did not come back after the restart")
        ok_after = sum(1 for e in observed.events if e[0] > up and 200 <= e[2] < 300)
        print(f"2xx responses after the restart: {ok_after}; 503s in all: {sum(e[2] == 503 for e in observed.events)}")

        violations = check_invariants(study_id, samples.submitted) + partial_rows(study_id)
        print("invariants:", "all hold" if not violations else "VIOLATED")
        for violation in violations:
            print("  -", violation)
        failures += violations
    finally:
        pg.remove()
    for failure in failures[:20]:
        print("FAILURE:", failure)
    print("result:", "PASS" if not failures else "FAIL")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
