"""The writer thread: cancellation while queued, shutdown, tasks on several event loops."""

from __future__ import annotations

import gc
import os
import signal
import threading
import time
import warnings
from functools import partial

import anyio
import anyio.lowlevel
import pytest
import trio
from sqlite_testkit import codec_agent, holding_the_writer

from agent_kernel.journal import Retried


def entry(i: int) -> Retried:
    return Retried("x", i, 0.0, "e")


async def cancel_a_queued_append(db: str) -> list[object]:
    """Cancel an append while it waits in the writer's queue; return what the appending task saw."""
    _, journal = codec_agent(db)
    await journal.claim("r")
    seen: list[object] = []
    scope = anyio.CancelScope()

    async def append() -> None:
        with scope:
            await journal.append("r", 1, [entry(0)], at=0)
            seen.append("returned")
            await anyio.lowlevel.checkpoint()
        seen.append("cancelled" if scope.cancelled_caught else "not cancelled")

    async with anyio.create_task_group() as group, holding_the_writer(journal):
        group.start_soon(append)
        await anyio.wait_all_tasks_blocked()
        assert journal._worker is not None and journal._worker.ops.qsize() == 1
        scope.cancel()
        await anyio.wait_all_tasks_blocked()
        seen.append("scope cancelled, writer still held")
    assert await journal.load("r") == [entry(0)]
    journal.close()
    return seen


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
def test_a_queued_append_is_not_reported_cancelled_since_it_may_still_commit(db, backend):
    seen = anyio.run(cancel_a_queued_append, db, backend=backend)
    # it waited for the commit, returned, and met the cancellation at its next checkpoint
    assert seen == ["scope cancelled, writer still held", "returned", "cancelled"]


async def test_close_stops_the_writer_thread_and_the_next_write_starts_another(db):
    _, journal = codec_agent(db)
    assert journal._worker is None  # started on first write
    await journal.claim("r")
    first = journal._worker.thread
    assert first.is_alive() and first.daemon
    journal.close()
    assert not first.is_alive() and journal._worker is None
    assert await journal.claim("r") == 2
    second = journal._worker.thread
    assert second is not first and second.is_alive()
    await journal.aclose()
    assert not second.is_alive()
    assert await journal.load("r") == []


async def test_a_journal_dropped_without_close_stops_its_writer_thread(db):
    agent, journal = codec_agent(db)
    await journal.claim("r")
    thread = journal._worker.thread
    del agent, journal
    gc.collect()
    await trio.to_thread.run_sync(thread.join, 10)
    assert not thread.is_alive()


async def test_one_group_commit_wakes_tasks_on_several_threads_and_event_loops(db):
    """A trio loop and an asyncio loop in other OS threads, and this test's own loop, share one journal."""
    _, journal = codec_agent(db)
    backends = ["trio", "asyncio"]
    for run_id in ["main", *backends]:
        await journal.claim(run_id)
    outcomes: dict[str, object] = {}

    def in_own_loop(backend: str) -> None:
        async def append() -> None:
            await journal.append(backend, 1, [entry(0)], at=0)

        try:
            anyio.run(append, backend=backend)
            outcomes[backend] = "ok"
        except BaseException as exc:
            outcomes[backend] = exc

    threads = [threading.Thread(target=in_own_loop, args=(b,)) for b in backends]
    async with trio.open_nursery() as nursery, holding_the_writer(journal):
        nursery.start_soon(partial(journal.append, "main", 1, [entry(0)], at=0))
        for thread in threads:
            thread.start()
        with trio.fail_after(10):  # other threads' loops: nothing to wait on but the queue
            while journal._worker.ops.qsize() < 3:
                await trio.sleep(0.001)
    for thread in threads:
        await trio.to_thread.run_sync(thread.join, 10)
    assert outcomes == {"trio": "ok", "asyncio": "ok"}
    for run_id in ["main", *backends]:
        assert await journal.load(run_id) == [entry(0)]


def test_many_threads_each_with_its_own_loop_append_to_one_journal(db):
    _, journal = codec_agent(db)
    errors: list[BaseException] = []

    async def runs(first: int) -> None:
        async def one(run_id: str) -> None:
            attempt = await journal.claim(run_id)
            for at in range(10):
                await journal.append(run_id, attempt, [entry(at)], at=at)

        async with anyio.create_task_group() as group:
            for i in range(first, first + 5):
                group.start_soon(one, f"r{i}")

    def in_own_loop(first: int, backend: str) -> None:
        try:
            anyio.run(runs, first, backend=backend)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=in_own_loop, args=(5 * i, ["trio", "asyncio"][i % 2])) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == [] and not any(thread.is_alive() for thread in threads)

    async def check() -> None:
        assert len(await journal.runs()) == 20
        for i in range(20):
            assert await journal.load(f"r{i}") == [entry(at) for at in range(10)]
        await journal.aclose()

    trio.run(check)


def test_a_forked_child_writes_through_a_writer_thread_of_its_own(db):
    """The parent's writer thread does not survive a fork: the child's first write must not wait for it."""
    _, journal = codec_agent(db)
    assert trio.run(journal.claim, "parent") == 1  # the parent's writer thread runs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Python 3.12+: fork() with threads running
        pid = os.fork()
    if pid == 0:  # the child: exit code 0 once it claimed and appended
        code = 1
        try:

            async def child() -> None:
                attempt = await journal.claim("child")
                await journal.append("child", attempt, [entry(0)], at=0)

            trio.run(child)
            code = 0
        finally:
            os._exit(code)
    deadline = time.monotonic() + 60
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    if done[0] == 0:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the forked child's first write never returned (it waited for the parent's writer thread)")
    assert os.waitstatus_to_exitcode(done[1]) == 0
    assert trio.run(journal.load, "child") == [entry(0)]
    assert trio.run(journal.claim, "parent") == 2  # the parent's writer still works
    journal.close()
