"""Bounded memory by default (DESIGN §4, §7): the in-memory journal keeps unfinished runs
and the last `keep` finished ones, so 100,000 sequential runs on one `Agent` stay flat."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from agent_kernel import Agent
from agent_kernel.journal import MemoryJournal
from agent_kernel.testing import ScriptedModel, text
from agent_kernel.testing.crash import UseJournal

# bench/memory.py's own model and measure: this test asserts the curve it prints
_spec = importlib.util.spec_from_file_location("bench_memory", Path(__file__).parents[1] / "bench" / "memory.py")
assert _spec is not None and _spec.loader is not None
bench_memory = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_memory)
Echo, resident_mib = bench_memory.Echo, bench_memory.resident_mib


async def test_100000_sequential_runs_on_one_agent_keep_memory_flat() -> None:
    agent = Agent(model="echo", plugins=[Echo()], autoload=False)
    for _ in range(10_000):  # warm up: the journal reaches its `keep` finished runs
        await agent.run("x")
    before = resident_mib()
    for _ in range(90_000):
        await agent.run("x")
    grown = resident_mib() - before
    # keeping every run grows by about 3 KiB a run: 260 MiB here
    assert grown < 16, f"the process grew by {grown:.1f} MiB over 90,000 runs"
    assert len(await agent.journal.runs()) == 1000


async def test_the_oldest_finished_runs_are_dropped_and_unfinished_ones_kept() -> None:
    journal = MemoryJournal(keep=2)
    model = ScriptedModel([text("done")])
    agent = Agent(model="scripted", plugins=[model, UseJournal(journal)], autoload=False)
    cancelled = Agent(model="scripted", plugins=[ScriptedModel([]), UseJournal(journal)], autoload=False)
    assert (await cancelled.run("x", run_id="failed")).reason == "error"  # no turn scripted: resumable
    for run_id in ("a", "b", "c"):
        assert (await agent.run("x", run_id=run_id)).reason == "completed"
    assert await journal.runs() == ["failed", "b", "c"]
    assert await journal.load("a") == []
    outcome = await agent.resume("b")  # a kept finished run still answers with its outcome
    assert (outcome.reason, outcome.output) == ("completed", "done")


async def test_keep_none_keeps_every_run_and_a_bad_keep_is_refused() -> None:
    journal = MemoryJournal(keep=None)
    agent = Agent(model="echo", plugins=[Echo(), UseJournal(journal)], autoload=False)
    for _ in range(1005):
        await agent.run("x")
    assert len(await journal.runs()) == 1005
    with pytest.raises(ValueError, match="keep must be at least 0 or None, got -1"):
        MemoryJournal(keep=-1)
