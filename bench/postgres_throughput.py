"""Throughput on PostgreSQL: ``python bench/postgres_throughput.py [--runs 200] [--workers 1 2 4]``.

1. Queue throughput: runs/s through `agent-plugin-procrastinate` with 1, 2 and 4 worker
   processes (``agent-kernel worker --concurrency 8``), each run 5 steps of the scripted
   model with one tool call per step, journaled in PostgreSQL. Timed from the first
   submit until every run's journal says completed (workers started and warmed up first).
2. Journal cost per step, in one process: the same run on the in-memory journal,
   `SqliteJournal` and `PostgresJournal` (default durability), run after run, and 50
   runs at once (where PostgreSQL commits concurrent appends together).

Starts its own throwaway PostgreSQL server (``agent_plugin_postgres.testing``).
"""

from __future__ import annotations

import argparse
import functools
import os
import pathlib
import subprocess
import sys
import tempfile
import time
import uuid

import anyio
import psycopg

TESTS = pathlib.Path(__file__).resolve().parents[1] / "plugins" / "agent-plugin-procrastinate" / "tests"
sys.path.insert(0, str(TESTS))

from queue_testkit import make_agent  # noqa: E402

from agent_kernel.journal import MemoryJournal  # noqa: E402
from agent_kernel.testing.crash import UseJournal  # noqa: E402
from agent_plugin_postgres import PostgresJournal  # noqa: E402
from agent_plugin_postgres.testing import postgres_server  # noqa: E402
from agent_plugin_procrastinate import RunQueue  # noqa: E402
from agent_plugin_sqlite import SqliteJournal  # noqa: E402

STEPS = 5


def new_database(server) -> str:
    name = f"b_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server.dsn_for(server.host, name)


def completed(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        try:
            row = conn.execute("SELECT count(*) FROM agent_kernel.runs WHERE status = 'completed'").fetchone()
        except psycopg.errors.UndefinedTable:  # no run journaled yet
            return 0
    return int(row[0]) if row else 0


async def queue_throughput(server, workers: int, runs: int) -> float:
    dsn = new_database(server)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    env.pop("AGENT_LEDGER", None)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agent_kernel",
                "worker",
                "--dsn",
                dsn,
                "--agent",
                "queue_testkit:make_agent",
                "--concurrency",
                "8",
                "--stalled-after",
                "30",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(workers)
    ]
    try:
        async with RunQueue(dsn, agent=make_agent) as queue:
            for i in range(workers * 2):  # warm up: every worker up and connected
                await queue.submit(f"run=w{i} steps=1 approve=0", run_id=f"w{i}")
            while await anyio.to_thread.run_sync(completed, dsn) < workers * 2:
                await anyio.sleep(0.2)
            started = time.perf_counter()
            for i in range(runs):
                await queue.submit(f"run=t{i} steps={STEPS} approve=0", run_id=f"t{i}")
            while await anyio.to_thread.run_sync(completed, dsn) < runs + workers * 2:
                await anyio.sleep(0.05)
            return runs / (time.perf_counter() - started)
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


async def per_step(journal_factory, runs: int, concurrent: bool) -> float:
    journal = journal_factory()
    agent = make_agent(UseJournal(journal) if isinstance(journal, MemoryJournal) else journal)
    prefix = uuid.uuid4().hex[:6]
    await agent.run(f"run={prefix}-warm steps={STEPS} approve=0", run_id=f"{prefix}-warm")
    started = time.perf_counter()
    if concurrent:
        async with anyio.create_task_group() as tg:
            for i in range(runs):
                tg.start_soon(
                    functools.partial(agent.run, f"run={prefix}{i} steps={STEPS} approve=0", run_id=f"{prefix}{i}")
                )
    else:
        for i in range(runs):
            await agent.run(f"run={prefix}{i} steps={STEPS} approve=0", run_id=f"{prefix}{i}")
    elapsed = time.perf_counter() - started
    close = getattr(journal, "aclose", None)
    if close is not None:
        await close()
    return elapsed / (runs * (STEPS + 1)) * 1e6  # µs per step (5 tool steps + the final answer)


async def main(args: argparse.Namespace) -> None:
    with postgres_server(settings={"fsync": "on"}) as server, tempfile.TemporaryDirectory() as tmp:
        print(f"PostgreSQL {server.dsn} (fsync on); {os.cpu_count()} CPUs; load {os.getloadavg()[0]:.1f}")
        print(f"\nqueue throughput, {args.runs} runs of {STEPS} steps (one tool call each):")
        for workers in args.workers:
            rate = await queue_throughput(server, workers, args.runs)
            print(f"  {workers} worker process(es) x concurrency 8: {rate:7.1f} runs/s")
        print("\njournal cost per step (µs), one process:")
        pg_dsn = new_database(server)
        counter = iter(range(10**6))
        journals = {
            "memory": MemoryJournal,
            "sqlite": lambda: SqliteJournal(pathlib.Path(tmp) / f"j{next(counter)}.db"),
            "postgres": lambda: PostgresJournal(pg_dsn, pool_size=16),
        }
        for name, factory in journals.items():
            sequential = await per_step(factory, args.sequential, concurrent=False)
            concurrent = await per_step(factory, 50, concurrent=True)
            print(f"  {name:8s}  sequential {sequential:8.0f}   50 concurrent runs {concurrent:8.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2, 4], help="none: skip the queue part")
    parser.add_argument("--sequential", type=int, default=40, help="runs one after another per journal")
    anyio.run(main, parser.parse_args())
