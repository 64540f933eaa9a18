"""The benchmarks of bench/ still run (their figures are read by people, not asserted here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parent.parent / "bench"


def test_kernel_benchmark_runs_and_reports_every_figure() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--quick"], capture_output=True, text=True, timeout=600
    )
    assert result.returncode in (0, 1), result.stderr  # 1: over budget on a loaded machine, still a report
    for figure in ("ratio", "K=1000/K=10", "KiB", "import agent_kernel"):
        assert figure in result.stdout, result.stdout


def test_sqlite_journal_benchmark_runs_and_reports_both_durability_modes() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH / "sqlite_journal.py"), "--steps", "5", "--runs", "1", "--concurrent", "3"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    for figure in ("MemoryJournal", "commit", "batched", "the floor"):
        assert figure in result.stdout, result.stdout


def test_memory_curve_benchmark_runs_and_reports_the_resident_size() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH / "memory.py"), "--runs", "2000", "--every", "1000"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "resident MiB" in result.stdout and "\n    2000 " in result.stdout, result.stdout
    assert "finished runs kept by the journal: 1000" in result.stdout, result.stdout


def test_peers_benchmark_runs_its_kernel_rows_without_any_peer() -> None:
    """`peers.py --only agent-kernel` needs no peer framework and no venv of its own: CI stays offline from them."""
    result = subprocess.run(
        [sys.executable, str(BENCH / "peers.py"), "--only", "agent-kernel", "--quick"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "setting up" not in result.stderr, result.stderr  # it did not create bench/.venv-peers
    for figure in ("| floor ", "| agent-kernel ", "µs/step", "÷ agent-kernel", "÷ floor"):
        assert figure in result.stdout, result.stdout
