"""Schema versioning and migrations; damaged, foreign and newer files are refused untouched."""

from __future__ import annotations

import os
import random
import sqlite3

import pytest
from sqlite_testkit import codec_agent

from agent_kernel.errors import JournalCorrupt
from agent_kernel.journal import Retried
from agent_plugin_sqlite import JournalUnavailable, _schema, schema_version


def entries(n: int) -> list[Retried]:
    return [Retried("inference", i, 0.0, "e" * 200) for i in range(n)]


def tables(path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return sorted(r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))


def pragmas(path) -> tuple[int, int, str]:
    conn = sqlite3.connect(path)
    try:
        return (
            conn.execute("PRAGMA user_version").fetchone()[0],
            conn.execute("PRAGMA application_id").fetchone()[0],
            conn.execute("PRAGMA journal_mode").fetchone()[0],
        )
    finally:
        conn.close()


async def make_journal_file(path, n: int = 10) -> None:
    _, journal = codec_agent(path)
    await journal.claim("r")
    await journal.append("r", 1, entries(n), at=0)
    journal.close()  # the last connection checkpoints the WAL into the file


def test_current_schema_version_is_the_number_of_migrations():
    assert schema_version() == len(_schema.MIGRATIONS) == 1


async def test_migrates_an_empty_file_from_version_0(db):
    db.write_bytes(b"")
    assert pragmas(db)[:2] == (0, 0)
    _, journal = codec_agent(db)
    assert await journal.runs() == []
    assert pragmas(db) == (schema_version(), _schema.APPLICATION_ID, "wal")
    assert tables(db) == ["entries", "runs", "thread_runs", "threads"]


async def test_creates_a_missing_file(db):
    assert not db.exists()
    _, journal = codec_agent(db)
    assert await journal.claim("r") == 1
    assert db.exists()
    assert pragmas(db)[0] == schema_version()


async def test_reopening_a_current_file_changes_nothing(db):
    await make_journal_file(db)
    before = db.read_bytes()
    _, journal = codec_agent(db)
    assert await journal.load("r") == entries(10)
    journal.close()
    assert db.read_bytes() == before


async def test_pending_migrations_run_in_order_once_and_keep_data(db, monkeypatch):
    await make_journal_file(db)
    v2 = ("ALTER TABLE runs ADD COLUMN note TEXT NOT NULL DEFAULT 'v2'",)
    v3 = ("CREATE TABLE v3_marker (x)", "INSERT INTO v3_marker SELECT note FROM runs")
    monkeypatch.setattr(_schema, "MIGRATIONS", [*_schema.MIGRATIONS, v2, v3])
    _, journal = codec_agent(db)
    assert await journal.load("r") == entries(10)  # v1 is not run again (it would fail: tables exist)
    journal.close()
    assert pragmas(db)[0] == 3
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT x FROM v3_marker").fetchall() == [("v2",)]  # v3 ran after v2


async def test_a_failing_migration_leaves_the_old_version_intact(db, monkeypatch):
    await make_journal_file(db)
    broken = ("CREATE TABLE half_done (x)", "THIS IS NOT SQL")
    monkeypatch.setattr(_schema, "MIGRATIONS", [*_schema.MIGRATIONS, broken])
    _, journal = codec_agent(db)
    with pytest.raises(JournalUnavailable, match=r"journal\.db"):
        await journal.load("r")
    assert pragmas(db)[0] == 1
    assert "half_done" not in tables(db)
    monkeypatch.undo()
    _, journal = codec_agent(db)
    assert await journal.load("r") == entries(10)


async def test_a_newer_schema_is_refused_untouched(db):
    await make_journal_file(db)
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 7")
    conn.close()
    before = db.read_bytes()
    _, journal = codec_agent(db)
    for attempt in (journal.load("r"), journal.claim("r"), journal.runs()):
        with pytest.raises(JournalCorrupt) as info:
            await attempt
        message = str(info.value)
        assert str(db) in message and "schema version 7" in message and f"up to {schema_version()}" in message
    assert db.read_bytes() == before
    assert not os.path.exists(f"{db}-wal")


async def test_another_applications_database_is_refused_untouched(db):
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
        conn.execute("INSERT INTO users VALUES ('ada')")
    conn.close()
    before = db.read_bytes()
    _, journal = codec_agent(db)
    with pytest.raises(JournalCorrupt, match="not an agent-kernel journal") as info:
        await journal.claim("r")
    assert str(db) in str(info.value) and "users" in str(info.value)
    assert db.read_bytes() == before


async def test_random_bytes_are_refused_untouched(db):
    data = random.Random(7).randbytes(64 * 1024)
    db.write_bytes(data)
    _, journal = codec_agent(db)
    for attempt in (journal.claim("r"), journal.load("r"), journal.runs()):
        with pytest.raises(JournalCorrupt) as info:
            await attempt
        assert str(db) in str(info.value)
        assert not isinstance(info.value.__cause__, JournalCorrupt)
    assert db.read_bytes() == data


@pytest.mark.parametrize(
    "cut",
    [
        pytest.param(lambda size: size // 2 // 4096 * 4096, id="half-the-pages"),
        pytest.param(lambda size: size - 4096, id="last-page"),
        pytest.param(lambda size: size - 1000, id="mid-page"),
        pytest.param(lambda size: 50, id="half-the-header"),
    ],
)
async def test_a_truncated_file_is_refused_untouched(db, cut):
    await make_journal_file(db, n=400)
    size = db.stat().st_size
    assert size > 64 * 1024
    with open(db, "r+b") as f:
        f.truncate(cut(size))
    before = db.read_bytes()
    _, journal = codec_agent(db)
    with pytest.raises(JournalCorrupt, match="corrupted or truncated") as info:
        await journal.load("r")
    assert str(db) in str(info.value)
    with pytest.raises(JournalCorrupt):
        await journal.claim("r")
    assert db.read_bytes() == before


async def test_a_damaged_entry_is_reported_with_file_run_and_position(db):
    await make_journal_file(db, n=5)
    with sqlite3.connect(db) as conn:
        conn.execute('UPDATE entries SET data = \'{"type": "Retr\' WHERE seq = 3')
    conn.close()
    _, journal = codec_agent(db)
    with pytest.raises(JournalCorrupt) as info:
        await journal.load("r")
    message = str(info.value)
    assert str(db) in message and "'r'" in message and "entry 3" in message


async def test_a_missing_entry_is_reported(db):
    await make_journal_file(db, n=5)
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM entries WHERE seq = 2")
    conn.close()
    _, journal = codec_agent(db)
    with pytest.raises(JournalCorrupt, match="should have 5 entries but has 4"):
        await journal.load("r")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE runs SET length = 4")
    conn.close()
    with pytest.raises(JournalCorrupt, match="missing entry 2"):
        await journal.load("r")


async def test_corruption_found_while_reading_stops_all_writes(db):
    await make_journal_file(db, n=400)
    data = bytearray(db.read_bytes())
    noise = random.Random(3).randbytes(4096 * 20)
    data[4096 * 10 : 4096 * 30] = noise  # clobber pages in the middle of the entries table
    db.write_bytes(bytes(data))
    _, journal = codec_agent(db)
    assert await journal.runs() == ["r"]  # the runs table is intact, so this still works
    with pytest.raises(JournalCorrupt, match="corrupted") as info:
        await journal.load("r")
    assert str(db) in str(info.value)
    before = db.read_bytes()
    with pytest.raises(JournalCorrupt):  # from now on, nothing touches the file
        await journal.claim("r")
    with pytest.raises(JournalCorrupt):
        await journal.runs()
    assert db.read_bytes() == before
