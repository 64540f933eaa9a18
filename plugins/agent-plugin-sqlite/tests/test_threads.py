"""The thread API: create, get, list, add_run, fork bookkeeping, update."""

from __future__ import annotations

import pytest

from agent_kernel.errors import AgentError
from agent_plugin_sqlite import SqliteJournal, Thread, ThreadExists, ThreadNotFound


async def test_create_and_get(db):
    journal = SqliteJournal(db)
    thread = await journal.create_thread("support #12", thread_id="t1", metadata={"user": "ada", "tags": [1, 2]})
    assert isinstance(thread, Thread)
    assert (thread.id, thread.name, thread.archived, thread.parent_id, thread.fork_run_id, thread.run_ids) == (
        "t1",
        "support #12",
        False,
        None,
        None,
        (),
    )
    assert thread.metadata == {"user": "ada", "tags": [1, 2]}
    with pytest.raises(TypeError):
        thread.metadata["x"] = 1  # read-only
    assert await journal.get_thread("t1") == thread
    assert await journal.get_thread("nope") is None


async def test_generated_ids_are_unique_and_duplicates_are_refused(db):
    journal = SqliteJournal(db)
    a, b = await journal.create_thread(), await journal.create_thread()
    assert a.id != b.id and len(a.id) == 32
    with pytest.raises(ThreadExists, match=a.id) as info:
        await journal.create_thread(thread_id=a.id)
    assert isinstance(info.value, AgentError) and isinstance(info.value, ValueError)


async def test_add_run_keeps_order_and_is_idempotent(db):
    journal = SqliteJournal(db)
    await journal.create_thread(thread_id="t")
    for run_id in ["r1", "r2", "r1", "r3"]:
        thread = await journal.add_run("t", run_id)
    assert thread.run_ids == ("r1", "r2", "r3")
    assert thread.updated >= thread.created
    with pytest.raises(ThreadNotFound, match="'ghost'") as info:
        await journal.add_run("ghost", "r1")
    assert isinstance(info.value, LookupError)


async def test_fork_at_a_run_shares_the_runs_up_to_it(db):
    journal = SqliteJournal(db)
    await journal.create_thread("main", thread_id="t", metadata={"k": "v"})
    for run_id in ["r1", "r2", "r3"]:
        await journal.add_run("t", run_id)
    fork = await journal.fork_thread("t", at_run="r2", new_id="f")
    assert (fork.id, fork.name, fork.parent_id, fork.fork_run_id, fork.run_ids) == (
        "f",
        "main",
        "t",
        "r2",
        ("r1", "r2"),
    )
    assert fork.metadata == {"k": "v"}
    # afterwards, each thread's new runs are its own
    await journal.add_run("f", "f1")
    await journal.add_run("t", "r4")
    assert (await journal.get_thread("f")).run_ids == ("r1", "r2", "f1")
    assert (await journal.get_thread("t")).run_ids == ("r1", "r2", "r3", "r4")


async def test_fork_defaults_and_errors(db):
    journal = SqliteJournal(db)
    await journal.create_thread("empty", thread_id="e")
    fork = await journal.fork_thread("e", name="copy", metadata={"m": 1})
    assert (fork.parent_id, fork.fork_run_id, fork.run_ids, fork.name, fork.metadata) == (
        "e",
        None,
        (),
        "copy",
        {"m": 1},
    )
    await journal.add_run("e", "r1")
    await journal.add_run("e", "r2")
    latest = await journal.fork_thread("e")
    assert (latest.fork_run_id, latest.run_ids) == ("r2", ("r1", "r2"))
    with pytest.raises(ValueError, match="'r9' is not in thread 'e'"):
        await journal.fork_thread("e", at_run="r9")
    with pytest.raises(ThreadNotFound):
        await journal.fork_thread("ghost")
    with pytest.raises(ThreadExists):
        await journal.fork_thread("e", new_id="e")
    assert len(await journal.list_threads()) == 3  # the failed forks left nothing behind


async def test_list_update_and_archive(db):
    journal = SqliteJournal(db)
    for name in ["a", "b", "c"]:
        await journal.create_thread(name, thread_id=name)
    updated = await journal.update_thread("b", name="bee", archived=True, metadata={"x": 1})
    assert (updated.name, updated.archived, updated.metadata) == ("bee", True, {"x": 1})
    unchanged = await journal.update_thread("b")
    assert (unchanged.name, unchanged.archived, unchanged.metadata) == ("bee", True, {"x": 1})
    assert [t.id for t in await journal.list_threads()] == ["a", "c"]
    assert [t.id for t in await journal.list_threads(archived=True)] == ["b"]
    assert [t.id for t in await journal.list_threads(archived=None)] == ["a", "b", "c"]
    await journal.update_thread("b", archived=False)
    assert [t.id for t in await journal.list_threads()] == ["a", "b", "c"]
    with pytest.raises(ThreadNotFound):
        await journal.update_thread("ghost", name="x")


async def test_threads_persist_and_list_their_runs(db):
    journal = SqliteJournal(db)
    await journal.create_thread("x", thread_id="x")
    await journal.add_run("x", "r1")
    await journal.create_thread("y", thread_id="y")
    await journal.add_run("y", "r2")
    await journal.add_run("y", "r3")
    journal.close()
    other = SqliteJournal(db)
    assert [(t.id, t.run_ids) for t in await other.list_threads()] == [("x", ("r1",)), ("y", ("r2", "r3"))]


async def test_bad_metadata_is_refused_before_anything_is_written(db):
    journal = SqliteJournal(db)
    with pytest.raises(TypeError):
        await journal.create_thread(metadata={"f": object()})
    assert await journal.list_threads(archived=None) == []


async def test_create_fork_holds_exactly_the_runs_given(db):
    journal = SqliteJournal(db)
    await journal.create_thread("main", thread_id="t", metadata={"k": "v"})
    for run_id in ["r1", "r2", "r3"]:
        await journal.add_run("t", run_id)
    # a fork of r1 plus a copy of r2 cut at a step (made by a memory plugin)
    fork = await journal.create_fork("t", ["r1", "r2-copy"], fork_run_id="r1", new_id="f")
    assert (fork.id, fork.name, fork.parent_id, fork.fork_run_id, fork.run_ids) == (
        "f",
        "main",
        "t",
        "r1",
        ("r1", "r2-copy"),
    )
    assert fork.metadata == {"k": "v"} and await journal.get_thread("f") == fork
    first = await journal.create_fork("t", ["r1-copy"], name="from the start", metadata={"m": 1})
    assert (first.fork_run_id, first.run_ids, first.name, first.metadata) == (
        None,
        ("r1-copy",),
        "from the start",
        {"m": 1},
    )
    await journal.add_run("f", "f1")
    assert (await journal.get_thread("f")).run_ids == ("r1", "r2-copy", "f1")
    assert (await journal.get_thread("t")).run_ids == ("r1", "r2", "r3")
    with pytest.raises(ValueError, match="'r9' is not in thread 't'"):
        await journal.create_fork("t", ["r1"], fork_run_id="r9")
    with pytest.raises(ValueError, match="distinct run ids"):
        await journal.create_fork("t", ["r1", "r1"])
    with pytest.raises(ThreadNotFound):
        await journal.create_fork("ghost", [])
    with pytest.raises(ThreadExists):
        await journal.create_fork("t", [], new_id="t")
    assert len(await journal.list_threads()) == 3  # the refused forks left nothing behind
