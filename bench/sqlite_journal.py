"""Per-step cost of SqliteJournal against the in-memory journal, in one process.

Workload: a scripted model, one tool call (``add``) per step, a sequential tool
strategy, no other plugin. Each configuration runs the same runs of STEPS steps;
the figure is wall time per step, and the ratio is against MemoryJournal measured
in the same process. A second table runs CONCURRENT runs at once (group commit).

    .venv/bin/python bench/sqlite_journal.py [--steps 200] [--runs 5]
        [--concurrent 50] [--dir DIR]

`--dir` chooses where the journal files go (default: a temporary directory); the
``commit`` figures are dominated by that disk's fsync latency. So each journal row
is also compared with its floor, measured in the same process: bare SQLite doing
the same number of write transactions per step (one row each, the same WAL mode and
``synchronous`` setting, no thread, no kernel). With ``commit`` that floor is the
disk's fsync time times the durable writes a step needs.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import trio

from agent_kernel import Agent, ToolResult, ToolSpec, hookimpl
from agent_kernel.journal import MemoryJournal
from agent_kernel.testing import ScriptedModel, text, tool_call
from agent_plugin_sqlite import SqliteJournal


class Sequential:
    concurrent = False

    async def run(self, calls: Sequence[Any], execute: Callable[[Any], Any]) -> None:
        for call in calls:
            await execute(call)


class Counting(MemoryJournal):
    """The in-memory journal, counting appends (to report appends per step)."""

    def __init__(self) -> None:
        super().__init__()
        self.appends = 0

    async def append(self, run_id: str, attempt: int, entries: Sequence[Any], *, at: int) -> None:
        self.appends += 1
        await super().append(run_id, attempt, entries, at=at)


class Machinery:
    name = "bench-machinery"

    def __init__(self, journal: Any) -> None:
        self.journal = journal

    @hookimpl
    def agent_register_tools(self, tools: Any) -> None:
        async def add(arguments: Any, ctx: Any) -> ToolResult:
            return ToolResult(str(arguments["a"] + arguments["b"]))

        tools.add(ToolSpec("add", "Add two numbers"), add)

    @hookimpl
    def agent_register_runtime(self, runtime: Any) -> None:
        runtime.set_tool_strategy(Sequential())
        if self.journal is not None and not isinstance(self.journal, SqliteJournal):
            runtime.set_journal(self.journal)


def make_agent(journal: Any, steps: int) -> Agent:
    turns: list[Any] = [tool_call("add", a=i, b=1) for i in range(steps)] + [text("done")]
    plugins: list[Any] = [ScriptedModel(turns), Machinery(journal)]
    if isinstance(journal, SqliteJournal):
        plugins.append(journal)
    return Agent(model="scripted", plugins=plugins, autoload=False, max_steps=None)


_ids = itertools.count()


async def per_step(journal: Any, steps: int, runs: int, concurrent: int) -> float:
    """Seconds per step: `runs` rounds, each of `concurrent` runs of `steps` steps at once."""
    agent = make_agent(journal, steps)
    warm = await agent.run("warm up", run_id=f"warm-{next(_ids)}")
    assert warm.reason == "completed", warm.error
    samples = []

    async def one() -> None:
        outcome = await agent.run("go", run_id=f"run-{next(_ids)}")
        assert outcome.reason == "completed", outcome.error

    for _ in range(runs):
        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(concurrent):
                nursery.start_soon(one)
        samples.append((time.perf_counter() - started) / (steps * concurrent))
    return statistics.median(samples)


def bare_sqlite_per_step(path: str, durability: str, writes: int, steps: int, runs: int) -> float:
    """Seconds per step of `writes` bare write transactions (one 600-byte row each), median of `runs`."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {'FULL' if durability == 'commit' else 'NORMAL'}")
    conn.execute("CREATE TABLE entries (seq INTEGER PRIMARY KEY, data TEXT)")
    row = ("x" * 600,)
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        for _ in range(steps * writes):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO entries (data) VALUES (?)", row)
            conn.execute("COMMIT")
        samples.append((time.perf_counter() - started) / steps)
    conn.close()
    return statistics.median(samples)


async def main(args: argparse.Namespace) -> None:
    if args.dir:
        await measure(args, args.dir)
    else:
        with tempfile.TemporaryDirectory(prefix="bench-sqlite-") as directory:
            await measure(args, directory)


async def measure(args: argparse.Namespace, directory: str) -> None:
    files = itertools.count()

    def sqlite(durability: str) -> SqliteJournal:
        return SqliteJournal(os.path.join(directory, f"bench-{next(files)}.db"), durability=durability)  # type: ignore[arg-type]

    counting = Counting()
    await per_step(counting, args.steps, 1, 1)
    appends = counting.appends / (2 * (args.steps + 1))
    writes = round(appends)
    print(f"workload: {args.steps} steps per run, 1 tool call per step, ~{appends:.1f} journal appends per step")
    print(f"journal files in {directory}\n")
    floors = {
        durability: bare_sqlite_per_step(
            os.path.join(directory, f"floor-{durability}.db"), durability, writes, args.steps, args.runs
        )
        for durability in ("batched", "commit")
    }
    for concurrent in (1, args.concurrent):
        title = "one run at a time" if concurrent == 1 else f"{concurrent} concurrent runs"
        rounds = args.runs if concurrent == 1 else max(1, args.runs // 2)
        memory = await per_step(MemoryJournal(), args.steps, rounds, concurrent)
        print(f"{title}: per-step wall time (median of {rounds})")
        print(f"  {'MemoryJournal':<28} {memory * 1e6:9.1f} µs   1.0x")
        for durability in ("batched", "commit"):
            cost = await per_step(sqlite(durability), args.steps, rounds, concurrent)
            label = f"SqliteJournal({durability!r})"
            line = f"  {label:<28} {cost * 1e6:9.1f} µs  {cost / memory:5.1f}x"
            if concurrent == 1:
                floor = floors[durability]
                line += f"   floor ({writes} bare transactions) {floor * 1e6:7.1f} µs, {cost / floor:4.2f}x the floor"
            print(line)
        print()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200, help="steps per run")
    parser.add_argument("--runs", type=int, default=5, help="timed rounds (median)")
    parser.add_argument("--concurrent", type=int, default=50, help="runs at once in the second table")
    parser.add_argument("--dir", help="where to put the journal files")
    trio.run(main, parser.parse_args())
