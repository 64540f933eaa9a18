"""Chaos across hosts (see chaos_harness.py): ~60 runs, 3 worker hosts, kills, a cut link, a database restart."""

from __future__ import annotations

import os
import time

import pytest
from chaos_harness import Chaos, worker_logs

from agent_plugin_postgres.testing import missing

RUNS = int(os.environ.get("AGENT_CHAOS_RUNS", "60"))
BUDGET = 400.0  # seconds; the runs usually settle in 30-65 s (the loop ends as soon as all are done)


async def test_chaos_across_hosts(tmp_path):
    reason = missing()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    chaos = Chaos(tmp_path, runs=RUNS, hosts=3, seed=12, log=print, max_kills=8)
    report = await chaos.run(time.monotonic() + BUDGET)
    print(report)
    broken = {
        key: report[key]
        for key in (
            "runs lost",
            "non-idempotent executions repeated",
            "recorded model turns requested again",
            "decisions applied twice",
            "commits accepted from a fenced worker",
        )
        if report[key] != 0
    }
    assert not broken, f"{report}\n{worker_logs(tmp_path)}"
    assert report.get("SIGKILLs", 0) >= 1 and report.get("database restarts", 0) == 1, report
    if chaos.netns:
        assert report.get("links cut", 0) == 1 and report.get("links restored", 0) == 1, report
