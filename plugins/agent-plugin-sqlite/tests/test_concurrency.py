"""Many runs in one process, group commit, and an event loop that keeps ticking."""

from __future__ import annotations

import sqlite3
import threading

import pytest
import trio
import trio.testing
from sqlite_testkit import Tools, codec_agent, holding_the_writer

from agent_kernel import Agent
from agent_kernel.errors import StaleAttempt
from agent_kernel.hookspecs import PHASES
from agent_kernel.journal import Ended, Retried, Started
from agent_kernel.testing import ScriptedModel, text, tool_call
from agent_plugin_sqlite import SqliteJournal
from agent_plugin_sqlite._journal import _Op


async def test_200_concurrent_runs_of_a_scripted_agent(db):
    model = ScriptedModel([tool_call("add", a=1, b=2), tool_call("add", a=3, b=4), text("done")])
    tools = Tools()
    journal = SqliteJournal(db)
    agent = Agent(model="scripted", plugins=[model, tools, journal], autoload=False)
    outcomes = {}

    async def one(i: int) -> None:
        outcomes[i] = await agent.run(f"task {i}", run_id=f"run-{i:03d}")

    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            for i in range(200):
                nursery.start_soon(one, i)
    assert len(outcomes) == 200
    assert {o.reason for o in outcomes.values()} == {"completed"}
    assert {o.output for o in outcomes.values()} == {"done"}
    assert len(model.requests) == 600 and len(tools.calls) == 400
    assert sorted(await journal.runs()) == [f"run-{i:03d}" for i in range(200)]
    lengths = set()
    for i in (0, 57, 199):
        loaded = await journal.load(f"run-{i:03d}")
        tools_loaded = tuple(sorted(t.name for t in agent.tools))
        # no plugin implements a phase hook: every phase is quiet (journal format 3)
        assert loaded[0] == Started(1, "scripted", f"task {i}", tools=tools_loaded, quiet=PHASES)
        assert loaded[-1] == Ended("completed")
        lengths.add(len(loaded))
    assert len(lengths) == 1
    # a new journal object (a fresh process would do the same) sees every run finished
    fresh = SqliteJournal(db)
    fresh_agent = Agent(model="scripted", plugins=[ScriptedModel([]), Tools(), fresh], autoload=False)
    for i in (3, 150):
        again = await fresh_agent.resume(f"run-{i:03d}")
        assert (again.reason, again.output) == ("completed", "done")
    assert {(await fresh.run_info(f"run-{i:03d}")).status for i in range(200)} == {"completed"}


async def test_a_stale_append_in_a_group_commit_fails_alone(db):
    _, journal = codec_agent(db)
    for i in range(10):
        await journal.claim(f"r{i}")
    await journal.claim("r0")  # r0 is now at attempt 2: an append as attempt 1 is stale
    results: dict[int, object] = {}

    async def append(i: int) -> None:
        try:
            await journal.append(f"r{i}", 1, [Retried("x", i, 0.0, "e")], at=0)
            results[i] = "ok"
        except StaleAttempt as exc:
            results[i] = exc

    async with trio.open_nursery() as nursery, holding_the_writer(journal):
        for i in range(10):
            nursery.start_soon(append, i)
        await trio.testing.wait_all_tasks_blocked()
        assert journal._worker.ops.qsize() == 10  # so the writer takes them as one batch
    assert isinstance(results[0], StaleAttempt)
    assert all(results[i] == "ok" for i in range(1, 10))
    for i in range(1, 10):
        assert await journal.load(f"r{i}") == [Retried("x", i, 0.0, "e")]
    assert await journal.load("r0") == []


async def who_releases_the_lock(db: str, *, in_loop: bool) -> str:
    """Who freed another process's write lock while an append waited for it.

    The event loop frees it after five ticks, if it runs while the append waits; a
    timer thread frees it after 5 s otherwise, so a journal that blocks the loop still
    finishes. The answer does not depend on how loaded the machine is.
    """
    _, journal = codec_agent(db)
    await journal.claim("locked")
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # what a second process writing would hold
    released: list[str] = []
    guard = threading.Lock()

    def release(by: str) -> None:
        with guard:
            if not released:
                released.append(by)
                holder.rollback()

    async def ticker() -> None:
        for _ in range(5):
            await trio.sleep(0.005)
        release("event loop")

    timer = threading.Timer(5.0, release, ("timer thread",))
    entries = [Retried("x", 1, 0.0, "locked")]
    async with trio.open_nursery() as nursery:
        timer.start()
        nursery.start_soon(ticker)
        if in_loop:  # what a journal that blocks the loop would do
            fn = journal._append_fn(journal._bound(), "locked", 1, 0, entries)
            op = _Op(fn, lambda call: None, lambda: None)
            journal._run_batch([op])
            assert op.error is None
        else:
            await journal.append("locked", 1, entries, at=0)
        nursery.cancel_scope.cancel()
    timer.cancel()
    holder.close()
    assert len(await journal.load("locked")) == 1
    return released[0]


async def test_the_event_loop_keeps_running_while_an_append_waits_for_the_lock(db):
    assert await who_releases_the_lock(db, in_loop=False) == "event loop"


async def test_the_ticker_notices_a_journal_that_blocks_the_loop(db):
    """The control for the test above: the same append made on the loop thread stops the loop."""
    assert await who_releases_the_lock(db, in_loop=True) == "timer thread"


@pytest.mark.parametrize("durability", ["commit", "batched"])
async def test_many_concurrent_writers_and_readers(db, durability):
    """Claims, appends and loads interleave freely on one journal object."""
    _, journal = codec_agent(db, durability=durability)

    async def worker(i: int) -> None:
        run_id = f"w{i}"
        attempt = await journal.claim(run_id)
        for j in range(5):
            await journal.append(run_id, attempt, [Retried("x", j, 0.0, run_id)], at=j)
            assert len(await journal.load(run_id)) == j + 1

    async with trio.open_nursery() as nursery:
        for i in range(60):
            nursery.start_soon(worker, i)
    assert len(await journal.runs()) == 60
    assert [e.attempt for e in await journal.load("w42")] == [0, 1, 2, 3, 4]


async def test_a_failed_group_commit_fails_every_write_in_it(db, monkeypatch):
    """If the shared transaction is lost (disk full, I/O error), no write in it may report success."""
    import sqlite3

    from agent_plugin_sqlite import JournalUnavailable

    _, journal = codec_agent(db)
    for i in range(3):
        await journal.claim(f"r{i}")
    run_op, calls = journal._run_op, []

    def failing_run_op(conn, op, ok):
        calls.append(op)
        if len(calls) == 2:
            raise sqlite3.OperationalError("database or disk is full")
        return run_op(conn, op, ok)

    results: dict[int, object] = {}

    async def append(i: int) -> None:
        try:
            await journal.append(f"r{i}", 1, [Retried("x", i, 0.0, "e")], at=0)
            results[i] = "ok"
        except JournalUnavailable as exc:
            results[i] = exc

    async with trio.open_nursery() as nursery, holding_the_writer(journal):
        monkeypatch.setattr(journal, "_run_op", failing_run_op)  # the holding write already runs
        for i in range(3):
            nursery.start_soon(append, i)
        await trio.testing.wait_all_tasks_blocked()
        assert journal._worker.ops.qsize() == 3
    assert len(calls) == 2  # the third write never ran
    assert all(isinstance(results[i], JournalUnavailable) for i in range(3)), results
    assert "disk is full" in str(results[0])
    monkeypatch.undo()
    for i in range(3):
        assert await journal.load(f"r{i}") == []  # the first write's savepoint was rolled back too
    await journal.append("r0", 1, [Retried("x", 0, 0.0, "e")], at=0)  # and the journal still works
    assert len(await journal.load("r0")) == 1
