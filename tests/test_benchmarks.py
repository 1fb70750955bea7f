"""The benchmark scripts run: each one once on its smallest workload, as a subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def run_script(name: str, *args: str) -> str:
    """Run ``benchmarks/name`` from its folder (it imports ``_common``); its stdout."""
    done = subprocess.run(
        [sys.executable, name, *args],
        cwd=BENCHMARKS,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_transactions_benchmark_runs_every_section() -> None:
    out = run_script("transactions.py", "--smoke")
    for title in ("transfers:", "uniform", "zipfian", "plain durable inserts"):
        assert title in out
    assert "netabase lmdb:// db.transact" in out and "retries" in out
    assert out.count("target >= ") == 3
