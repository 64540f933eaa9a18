"""PostgresJournal beyond the conformance suite: the `at` rule, a restarted server, schema versions, threads."""

from __future__ import annotations

import asyncio

import anyio
import psycopg
import pytest

from agent_kernel import Agent
from agent_kernel.errors import JournalCorrupt, StaleAttempt
from agent_kernel.journal import Ended, Retried, Started
from agent_kernel.testing import ScriptedModel, text, tool_call
from agent_kernel.testing.crash import UseJournal
from agent_plugin_postgres import JournalUnavailable, PostgresJournal, ThreadExists, ThreadNotFound, schema_version
from agent_plugin_postgres._command import inspect
from agent_plugin_tools import Toolbox


def bound(dsn: str, schema: str, **options) -> PostgresJournal:
    journal = PostgresJournal(dsn, schema=schema, **options)
    Agent(model="scripted", plugins=[UseJournal(journal)], autoload=False)  # binds the codec
    return journal


def add(a: int, b: int) -> int:
    """Add two numbers.

    Args:
        a: first.
        b: second.
    """
    return a + b


async def test_an_append_is_accepted_only_where_the_attempt_saw_the_end(pg_server, pg_schema):
    journal = bound(pg_server.dsn, pg_schema)
    try:
        attempt = await journal.claim("r")
        await journal.append("r", attempt, [Started(attempt, "scripted", "hi")], at=0)
        await journal.append("r", attempt, [Retried("x", 1, 0.0, "")], at=1)
        with pytest.raises(StaleAttempt, match="entry 1"):  # the log ends at 2, not 1
            await journal.append("r", attempt, [Ended("completed")], at=1)
        with pytest.raises(StaleAttempt):
            await journal.append("r", attempt, [Ended("completed")], at=3)
        assert len(await journal.load("r")) == 2
        newer = await journal.claim("r")
        with pytest.raises(StaleAttempt, match=f"attempt {newer}"):
            await journal.append("r", attempt, [Ended("completed")], at=2)
        with pytest.raises(StaleAttempt, match="never claimed"):
            await journal.append("unknown", 1, [Ended("completed")], at=0)
        await journal.append("r", newer, [Ended("completed")], at=2)
        info = await journal.run_info("r")
        assert info is not None and (info.attempt, info.entries, info.status, info.model) == (
            newer,
            3,
            "completed",
            "scripted",
        )
        assert await journal.run_info("unknown") is None
    finally:
        await journal.aclose()


async def test_racing_appends_at_one_position_one_wins(pg_server, pg_schema):
    """Two writers of one attempt at the same `at`: exactly one commits (fencing in the statement)."""
    journal = bound(pg_server.dsn, pg_schema, pool_size=8)
    try:
        attempt = await journal.claim("race")
        results: list[str] = []

        async def write(i: int) -> None:
            try:
                await journal.append("race", attempt, [Retried(f"w{i}", i, 0.0, "")], at=0)
                results.append("ok")
            except StaleAttempt:
                results.append("stale")

        async with anyio.create_task_group() as tg:
            for i in range(8):
                tg.start_soon(write, i)
        assert sorted(results) == ["ok"] + ["stale"] * 7
        assert len(await journal.load("race")) == 1
    finally:
        await journal.aclose()


async def test_a_run_survives_a_server_restart_between_steps(pg_server, pg_schema):
    journal = bound(pg_server.dsn, pg_schema, timeout=60)
    try:
        attempt = await journal.claim("restart")
        await journal.append("restart", attempt, [Started(attempt, "scripted", "hi")], at=0)
        await anyio.to_thread.run_sync(pg_server.restart)
        await journal.append("restart", attempt, [Ended("completed")], at=1)  # the pool reconnects
        assert [type(e).__name__ for e in await journal.load("restart")] == ["Started", "Ended"]
    finally:
        await journal.aclose()


async def test_an_unreachable_server_raises_journal_unavailable(pg_schema):
    journal = bound("postgresql://postgres@127.0.0.1:1/postgres?connect_timeout=1", pg_schema, timeout=0.5)
    try:
        with pytest.raises(JournalUnavailable, match="unreachable"):
            await journal.claim("r")
    finally:
        await journal.aclose()


async def test_an_agent_runs_and_resumes_on_postgres_under_trio_and_asyncio(pg_server, pg_schema):
    turns = [tool_call("add", a=2, b=3), text("5")]

    models: list[ScriptedModel] = []

    def agent() -> Agent:
        models.append(ScriptedModel(turns))
        return Agent(
            model="scripted",
            plugins=[models[-1], Toolbox([add]), PostgresJournal(pg_server.dsn, schema=pg_schema)],
            autoload=False,
        )

    first = agent()
    outcome = await first.run("2+3?", run_id="t1")
    assert outcome.reason == "completed" and outcome.output == "5"
    await first.journal.aclose()  # type: ignore[attr-defined]

    def under_asyncio():
        async def main():
            other = agent()
            try:
                again = await other.resume("t1")
                assert models[-1].requests == []  # a finished run resumed makes no calls
                fresh = await other.run("2+3?", run_id="t2")
                return again, fresh
            finally:
                await other.journal.aclose()

        return asyncio.run(main())

    again, fresh = await anyio.to_thread.run_sync(under_asyncio)
    assert again.output == "5"
    assert fresh.reason == "completed"
    journal = bound(pg_server.dsn, pg_schema)
    assert await journal.runs() == ["t1", "t2"]
    await journal.aclose()


async def test_schema_is_versioned_and_a_newer_one_is_refused(pg_server, pg_schema):
    journal = bound(pg_server.dsn, pg_schema)
    await journal.runs()
    await journal.aclose()
    with psycopg.connect(pg_server.dsn, autocommit=True) as conn:
        versions = conn.execute(f'SELECT version FROM "{pg_schema}".schema_version ORDER BY version').fetchall()
        assert [v[0] for v in versions] == list(range(1, schema_version() + 1))
        conn.execute(f'INSERT INTO "{pg_schema}".schema_version (version) VALUES (%s)', (schema_version() + 1,))
    newer = bound(pg_server.dsn, pg_schema)
    try:
        with pytest.raises(JournalCorrupt, match="upgrade agent-plugin-postgres"):
            await newer.runs()
    finally:
        await newer.aclose()


async def test_two_processes_migrating_at_once_migrate_once(pg_server, pg_schema):
    journals = [bound(pg_server.dsn, pg_schema) for _ in range(4)]
    try:
        async with anyio.create_task_group() as tg:
            for journal in journals:
                tg.start_soon(journal.runs)
    finally:
        for journal in journals:
            await journal.aclose()


async def test_threads(pg_server, pg_schema):
    journal = bound(pg_server.dsn, pg_schema)
    try:
        thread = await journal.create_thread("support", thread_id="th", metadata={"user": "ada"})
        assert (thread.name, thread.run_ids, dict(thread.metadata)) == ("support", (), {"user": "ada"})
        with pytest.raises(ThreadExists):
            await journal.create_thread(thread_id="th")
        await journal.add_run("th", "r1")
        await journal.add_run("th", "r2")
        thread = await journal.add_run("th", "r1")  # no-op
        assert thread.run_ids == ("r1", "r2")
        fork = await journal.fork_thread("th", at_run="r1", new_id="fk")
        assert (fork.parent_id, fork.fork_run_id, fork.run_ids) == ("th", "r1", ("r1",))
        await journal.update_thread("th", archived=True, name="old")
        assert [t.id for t in await journal.list_threads()] == ["fk"]
        assert [t.id for t in await journal.list_threads(archived=None)] == ["th", "fk"]
        assert (await journal.get_thread("th")).name == "old"  # type: ignore[union-attr]
        assert await journal.get_thread("nope") is None
        with pytest.raises(ThreadNotFound):
            await journal.add_run("nope", "r")
        with pytest.raises(ValueError):
            await journal.fork_thread("th", at_run="r9")
    finally:
        await journal.aclose()


async def test_the_inspector_reports_runs_entries_and_checks(pg_server, pg_schema):
    journal = bound(pg_server.dsn, pg_schema)
    attempt = await journal.claim("r")
    await journal.append("r", attempt, [Started(attempt, "scripted", "hi"), Ended("completed")], at=0)
    await journal.aclose()
    report = await anyio.to_thread.run_sync(lambda: inspect(pg_server.dsn, schema=pg_schema, check=True))
    assert report["schema_version"] == schema_version() and report["problems"] == []
    assert [(r["id"], r["status"], r["entries"]) for r in report["runs"]] == [("r", "completed", 2)]
    entries = await anyio.to_thread.run_sync(lambda: inspect(pg_server.dsn, schema=pg_schema, run_id="r"))
    assert [e["kind"] for e in entries["entries"]] == ["Started", "Ended"]
    with psycopg.connect(pg_server.dsn, autocommit=True) as conn:
        conn.execute(f'DELETE FROM "{pg_schema}".entries WHERE seq = 0')
    report = await anyio.to_thread.run_sync(lambda: inspect(pg_server.dsn, schema=pg_schema, check=True))
    assert report["problems"], report
