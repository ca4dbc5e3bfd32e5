"""PostgreSQL restarts while annotators submit: 503s with a message during the outage, success after,
no partial rows. Runs benchmarks/fault_db_restart.py, which starts its own throwaway PostgreSQL (the
machine's server is never touched), gunicorn and simulated annotators, and ends with invariant checks."""

from __future__ import annotations

import glob
import pwd
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "fault_db_restart.py"


def _can_run_postgres() -> bool:
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        return False
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return False
    return True


pytestmark = pytest.mark.skipif(not _can_run_postgres(), reason="needs PostgreSQL binaries and a postgres user")


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_a_postgres_restart_mid_submit_gives_503s_then_recovers_with_nothing_lost(mode):
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--mode",
            mode,
            "--annotators",
            "6",
            "--comparisons",
            "40",
            "--outage-seconds",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=150,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "API during the outage: 503 {'error': 'unavailable'" in output
    assert "invariants: all hold" in output
    assert "result: PASS" in output
