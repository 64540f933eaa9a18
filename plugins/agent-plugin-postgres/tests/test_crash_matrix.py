"""The kernel's crash-point matrix (``tests/test_crash_matrix.py``) on PostgresJournal.

Every commit boundary of a run (before and after each append) and inside tool calls:
the process is killed, a fresh one recovers, and the ledger proves that nothing
recorded was done twice and the result is the uninterrupted one. The matrix's own
code is the kernel's; only the journal differs (see pg_crash_scenario.py).

Each point costs a few fresh interpreters, so by default (and in CI) the append
points are sampled: the first append of each invocation (before and after the
write), the last one (after the write), plus every tool point. ``AGENT_PG_FULL_MATRIX=1`` runs them all.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from pg_crash_scenario import journal_for, load_kernel_module

from agent_kernel import Agent
from agent_kernel.testing.crash import UseJournal

HERE = Path(__file__).resolve().parent
KERNEL_MATRIX = HERE.parents[2] / "tests" / "test_crash_matrix.py"


class _Bound:
    """`journal_for(path)`, bound to a codec, with the sync `close` the matrix calls."""

    def __new__(cls, path: Any) -> Any:
        journal = journal_for(path)
        Agent(model="scripted", plugins=[UseJournal(journal)], autoload=False)
        return journal


@pytest.fixture(scope="module")
def matrix(pg_server) -> Any:
    os.environ["AGENT_PG_DSN"] = pg_server.dsn
    module = load_kernel_module(KERNEL_MATRIX, "pg_kernel_crash_matrix")
    module.SCENARIO = HERE / "pg_crash_scenario.py"
    module.SqliteJournal = _Bound
    module.sys = sys
    return module


@pytest.fixture(scope="module")
def reference(matrix, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The uninterrupted run: suspended in one process, approved in another."""
    tmp = tmp_path_factory.mktemp("reference")
    db, ledger = tmp / "runs.db", tmp / "ledger"
    _, first = matrix.invoke("run", db, ledger, "a")
    assert first is not None and first["reason"] == "suspended" and len(first["pending"]) == 1
    _, second = matrix.invoke("approve", db, ledger, "b")
    assert second is not None and second["reason"] == "completed", second
    return {"run_appends": first["appends"], "approve_appends": second["appends"], "messages": second["messages"]}


@pytest.mark.parametrize("family", ["run", "approve", "tools"])
async def test_crash_point_matrix_on_postgres(family: str, matrix, reference: dict[str, Any], tmp_path: Path) -> None:
    points = [
        (mode, options)
        for mode, options in matrix.crash_points(reference)
        if (family == "tools") == ("--tool" in options) and (family == "tools" or mode == family)
    ]
    assert points
    if not os.environ.get("AGENT_PG_FULL_MATRIX"):
        last = {"run": reference["run_appends"], "approve": reference["approve_appends"]}
        sample = {("run", 1, "before"), ("run", 1, "after"), ("run", last["run"], "after")}
        sample |= {("approve", 1, "before"), ("approve", last["approve"], "after")}
        points = [
            (mode, options)
            for mode, options in points
            if "--append" not in options or (mode, int(options[1]), options[3]) in sample
        ]
    failures = {}
    for i, (mode, options) in enumerate(points):
        point_dir = tmp_path / f"p{i}"
        point_dir.mkdir()
        problems = await matrix.check_point(point_dir, mode, options, reference)
        if problems:
            failures[f"{mode} {' '.join(options)}"] = problems
    assert not failures, json.dumps(failures, indent=2)
