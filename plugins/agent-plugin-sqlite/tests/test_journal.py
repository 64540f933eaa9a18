"""The Journal protocol on real files: claim, append, load, runs, fencing, options."""

from __future__ import annotations

import sqlite3

import pytest
from sqlite_testkit import codec_agent

from agent_kernel.errors import AgentError, StaleAttempt
from agent_kernel.journal import Ended, Journal, Retried, Started
from agent_plugin_sqlite import RunInfo, SqliteJournal


def entries(n: int, start: int = 0) -> list[Retried]:
    return [Retried("inference", start + i, 0.0, f"error {start + i}") for i in range(n)]


async def test_it_is_a_journal(db):
    journal = SqliteJournal(db)
    assert isinstance(journal, Journal)
    assert journal.name == "sqlite"
    assert "journal.db" in repr(journal)


async def test_claim_append_load_roundtrip(db):
    _, journal = codec_agent(db)
    assert await journal.claim("r1") == 1
    await journal.append("r1", 1, entries(3), at=0)
    await journal.append("r1", 1, entries(2, start=3), at=3)
    assert await journal.load("r1") == entries(5)
    assert await journal.claim("r1") == 2
    await journal.append("r1", 2, [Ended("completed")], at=5)
    assert await journal.load("r1") == [*entries(5), Ended("completed")]


async def test_unknown_run_loads_empty(db):
    _, journal = codec_agent(db)
    assert await journal.load("nope") == []
    assert await journal.runs() == []
    assert await journal.run_info("nope") is None


async def test_runs_are_listed_oldest_first(db):
    _, journal = codec_agent(db)
    for run_id in ["b", "a", "c"]:
        await journal.claim(run_id)
    await journal.claim("a")  # a second attempt does not move a run
    assert await journal.runs() == ["b", "a", "c"]


async def test_entries_survive_a_new_journal_object(db):
    _, first = codec_agent(db)
    await first.claim("r")
    await first.append("r", 1, entries(4), at=0)
    first.close()
    _, second = codec_agent(db)
    assert await second.load("r") == entries(4)
    assert await second.runs() == ["r"]
    assert await second.claim("r") == 2


async def test_stale_attempt_cannot_append_same_process(db):
    _, old = codec_agent(db)
    _, new = codec_agent(db)
    assert await old.claim("r") == 1
    await old.append("r", 1, entries(1), at=0)
    assert await new.claim("r") == 2
    with pytest.raises(StaleAttempt) as info:
        await old.append("r", 1, entries(1, start=1), at=1)
    assert "attempt 1" in str(info.value) and "attempt 2" in str(info.value)
    await new.append("r", 2, entries(1, start=7), at=1)
    assert await old.load("r") == [*entries(1), *entries(1, start=7)]
    # nothing written by the stale attempt, and attempts are recorded per entry
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT seq, attempt FROM entries ORDER BY seq").fetchall() == [(0, 1), (1, 2)]


async def test_stale_check_applies_to_empty_appends_and_future_attempts(db):
    _, journal = codec_agent(db)
    await journal.claim("r")
    await journal.claim("r")
    with pytest.raises(StaleAttempt):
        await journal.append("r", 1, [], at=0)
    with pytest.raises(StaleAttempt, match="attempt 3 may not commit, attempt 2 holds"):
        await journal.append("r", 3, entries(1), at=0)
    await journal.append("r", 2, [], at=0)
    assert await journal.load("r") == []


async def test_append_to_an_unclaimed_run_is_refused(db):
    _, journal = codec_agent(db)
    with pytest.raises(StaleAttempt, match="never claimed"):
        await journal.append("ghost", 1, entries(1), at=0)
    assert await journal.runs() == []


async def test_run_info_tracks_status_attempt_and_model(db):
    _, journal = codec_agent(db)
    await journal.claim("r")
    info = await journal.run_info("r")
    assert isinstance(info, RunInfo)
    assert (info.id, info.attempt, info.status, info.entries, info.model) == ("r", 1, "new", 0, "")
    await journal.append("r", 1, [Started(1, "scripted", "hi"), *entries(2)], at=0)
    info = await journal.run_info("r")
    assert (info.status, info.entries, info.model) == ("running", 3, "scripted")
    await journal.append("r", 1, [Ended("suspended")], at=3)
    assert (await journal.run_info("r")).status == "suspended"
    await journal.claim("r")
    await journal.append("r", 2, [Started(2, "other"), Ended("completed")], at=4)
    info = await journal.run_info("r")
    assert (info.attempt, info.status, info.entries, info.model) == (2, "completed", 6, "other")
    assert info.created <= info.updated


@pytest.mark.parametrize(("durability", "synchronous"), [("commit", 2), ("batched", 1)])
async def test_durability_modes_set_synchronous(db, durability, synchronous):
    _, journal = codec_agent(db, durability=durability)
    await journal.claim("r")
    await journal.append("r", 1, entries(2), at=0)
    assert journal._writer is not None
    assert journal._writer.execute("PRAGMA synchronous").fetchone()[0] == synchronous
    assert journal._writer.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert await journal.load("r") == entries(2)


def test_bad_options_are_refused(db):
    with pytest.raises(ValueError, match="durability"):
        SqliteJournal(db, durability="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        SqliteJournal(db, timeout=-1)


async def test_use_before_bind_is_a_clear_error(db):
    journal = SqliteJournal(db)
    with pytest.raises(AgentError, match="no codec"):
        await journal.append("r", 1, entries(1), at=0)
    with pytest.raises(AgentError, match="no codec"):
        await journal.load("r")


async def test_close_then_reuse_reopens(db):
    _, journal = codec_agent(db)
    await journal.claim("r")
    await journal.append("r", 1, entries(2), at=0)
    assert await journal.load("r") == entries(2)  # fills the reader pool
    journal.close()
    assert journal._writer is None and journal._pool == []
    await journal.append("r", 1, entries(1, start=2), at=2)
    assert await journal.load("r") == entries(3)
    await journal.aclose()
    assert journal._writer is None


async def test_memory_database(tmp_path):
    _, journal = codec_agent(":memory:")
    assert await journal.claim("r") == 1
    await journal.append("r", 1, entries(3), at=0)
    assert await journal.load("r") == entries(3)
    assert await journal.runs() == ["r"]
    assert not list(tmp_path.iterdir())


async def test_missing_directory_is_unavailable_not_corrupt(tmp_path):
    from agent_plugin_sqlite import JournalUnavailable

    _, journal = codec_agent(tmp_path / "no" / "such" / "dir" / "j.db")
    with pytest.raises(JournalUnavailable, match=r"no/such/dir/j\.db"):
        await journal.claim("r")
