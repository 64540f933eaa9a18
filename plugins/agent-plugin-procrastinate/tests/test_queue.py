"""RunQueue with real worker processes on a real PostgreSQL: runs, approvals, a killed worker, a drain."""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import signal
import subprocess
import sys

import anyio
import psycopg
import pytest
from queue_testkit import check_ledger, make_agent, turns_recorded

from agent_kernel import Agent, Approve, Deny
from agent_kernel.errors import StaleAttempt
from agent_kernel.testing.crash import UseJournal
from agent_plugin_postgres import PostgresJournal
from agent_plugin_procrastinate import RunQueue, Settled, _command

HERE = pathlib.Path(__file__).resolve().parent
WAIT = 120.0  # generous: the CI machine is shared


async def journal_facts(dsn: str, run_ids: list[str]) -> tuple[dict[str, list], dict[str, dict[int, int]]]:
    journal = PostgresJournal(dsn)
    Agent(model="scripted", plugins=[UseJournal(journal)], autoload=False)  # binds the codec
    entries, recorded = {}, {}
    try:
        for run_id in run_ids:
            entries[run_id] = await journal.load(run_id)
            with psycopg.connect(dsn) as conn:
                rows = conn.execute(
                    "SELECT seq, attempt, kind FROM agent_kernel.entries WHERE run_id = %s ORDER BY seq", (run_id,)
                ).fetchall()
            recorded[run_id] = turns_recorded(rows, entries[run_id])
            attempts = [row[1] for row in rows]
            assert attempts == sorted(attempts), f"run {run_id}: a fenced attempt committed after a newer one"
    finally:
        await journal.aclose()
    return entries, recorded


async def settle(queue: RunQueue, run_ids: list[str], *, approve_twice: bool = False) -> dict[str, object]:
    """Wait for every run to complete, approving (or denying) what suspends."""
    done: dict[str, object] = {}
    decided: set[str] = set()
    with anyio.fail_after(WAIT):
        while len(done) < len(run_ids):
            for run_id in run_ids:
                if run_id in done:
                    continue
                found = await queue.outcome(run_id)
                if isinstance(found, Settled) and found.reason == "suspended" and run_id not in decided:
                    decided.add(run_id)
                    decision = Deny("no") if run_id.endswith("-deny") else Approve()
                    decisions = {r.id: decision for r in found.pending}
                    await queue.decide(run_id, decisions)
                    if approve_twice:
                        await queue.decide(run_id, decisions)
                elif found is not None and not isinstance(found, Settled):
                    done[run_id] = found
            await anyio.sleep(0.2)
    return done


async def test_runs_and_approvals_through_two_workers(dsn, workers):
    workers.start(concurrency=3)
    workers.start(concurrency=3)
    async with RunQueue(dsn, agent=make_agent) as queue:
        ids = [await queue.submit(f"run=r{i} steps=4 approve={i % 2}", run_id=f"r{i}") for i in range(6)]
        ids.append(await queue.submit("run=r6-deny steps=3 approve=1", run_id="r6-deny"))
        done = await settle(queue, ids, approve_twice=True)
    assert all(o.reason == "completed" and o.output == "done" for o in done.values()), workers.logs()
    entries, recorded = await journal_facts(dsn, ids)
    facts = check_ledger(workers.ledger.read_text().splitlines(), entries, recorded)
    assert facts == {"non_idempotent_repeated": 0, "recorded_turns_requested_again": 0, "decisions_applied_twice": 0}
    sends = [line for line in workers.ledger.read_text().splitlines() if line.startswith("tool send")]
    assert len(sends) == 3  # r1, r3, r5 approved; r6-deny denied


async def test_a_killed_worker_runs_are_resumed_elsewhere(dsn, workers):
    slow = workers.start(concurrency=4, env={"AGENT_TOOL_DELAY": "0.5"})
    async with RunQueue(dsn, agent=make_agent) as queue:
        ids = [await queue.submit(f"run=k{i} steps=6 approve=0", run_id=f"k{i}") for i in range(4)]
        with anyio.fail_after(WAIT):  # wait until the slow worker is inside its runs
            while not workers.ledger.exists() or workers.ledger.read_text().count("tool ") < 4:
                await anyio.sleep(0.1)
        slow.send_signal(signal.SIGKILL)
        slow.wait()
        workers.start(concurrency=4)
        done = await settle(queue, ids)
    assert all(o.reason == "completed" for o in done.values()), workers.logs()
    entries, recorded = await journal_facts(dsn, ids)
    facts = check_ledger(workers.ledger.read_text().splitlines(), entries, recorded)
    assert facts["non_idempotent_repeated"] == 0 and facts["recorded_turns_requested_again"] == 0, facts
    # the killed worker's runs were taken over, and its attempts can no longer commit
    journal = PostgresJournal(dsn)
    Agent(model="scripted", plugins=[UseJournal(journal)], autoload=False)
    try:
        infos = [await journal.run_info(run_id) for run_id in ids]
        taken = [info for info in infos if info is not None and info.attempt > 1]
        assert taken, infos
        for info in taken:
            with pytest.raises(StaleAttempt):
                await journal.append(info.id, info.attempt - 1, [], at=info.entries)
    finally:
        await journal.aclose()


async def test_sigterm_drains_leaving_runs_resumable(dsn, workers):
    first = workers.start(concurrency=4, env={"AGENT_TOOL_DELAY": "0.5"})
    async with RunQueue(dsn, agent=make_agent) as queue:
        ids = [await queue.submit(f"run=d{i} steps=8 approve=0", run_id=f"d{i}") for i in range(3)]
        with anyio.fail_after(WAIT):
            while not workers.ledger.exists() or workers.ledger.read_text().count("tool ") < 3:
                await anyio.sleep(0.1)
        first.send_signal(signal.SIGTERM)
        assert await anyio.to_thread.run_sync(lambda: first.wait(timeout=WAIT)) == 0, workers.logs()
        workers.start(concurrency=4)
        done = await settle(queue, ids)
    assert all(o.reason == "completed" for o in done.values()), workers.logs()
    entries, recorded = await journal_facts(dsn, ids)
    facts = check_ledger(workers.ledger.read_text().splitlines(), entries, recorded)
    assert facts["non_idempotent_repeated"] == 0 and facts["recorded_turns_requested_again"] == 0, facts


async def test_cli_submit_decide_outcome(dsn, workers, capsys):
    """``agent-kernel submit`` in a fresh interpreter (the commands are registered), then decide and outcome."""
    workers.start(concurrency=2)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    result = await anyio.to_thread.run_sync(
        lambda: subprocess.run(
            [
                sys.executable,
                "-m",
                "agent_kernel",
                "submit",
                "--dsn",
                dsn,
                "run=c1 steps=3 approve=1",
                "--run-id",
                "c1",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=WAIT,
        )
    )
    assert result.returncode == 0 and result.stdout.strip() == "c1", result.stderr

    def command(name: str, *args: str) -> object:
        configure, run = _command.COMMANDS[name]
        parser = argparse.ArgumentParser()
        configure(parser)
        capsys.readouterr()
        assert run(parser.parse_args(list(args))) == 0
        return json.loads(capsys.readouterr().out or "null")

    def cli_outcome(*extra: str) -> dict:
        return command("outcome", "--dsn", dsn, "--agent", "queue_testkit:make_agent", "c1", *extra)  # type: ignore[return-value]

    view = await anyio.to_thread.run_sync(lambda: cli_outcome("--wait", "--timeout", str(WAIT)))
    assert view["reason"] == "suspended" and len(view["pending"]) == 1, (view, workers.logs())
    await anyio.to_thread.run_sync(lambda: command("decide", "--dsn", dsn, "c1", "--approve", view["pending"][0]["id"]))
    async with RunQueue(dsn, agent=make_agent) as queue:
        await settle(queue, ["c1"])
    view = await anyio.to_thread.run_sync(cli_outcome)
    assert view["reason"] == "completed" and view["output"] == "done", (view, workers.logs())
