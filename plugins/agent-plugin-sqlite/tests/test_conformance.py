"""The kernel's journal conformance suite (`check_journal`), on real files, in both durability modes."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from agent_kernel.testing.conformance import check_journal
from agent_plugin_sqlite import SqliteJournal


@pytest.mark.parametrize("durability", ["commit", "batched"])
async def test_sqlite_journal_conforms(tmp_path, durability):
    numbers = itertools.count()
    await check_journal(lambda: SqliteJournal(tmp_path / f"conformance-{next(numbers)}.db", durability=durability))


def test_sqlite_journal_conforms_under_asyncio(tmp_path):
    numbers = itertools.count()
    asyncio.run(check_journal(lambda: SqliteJournal(tmp_path / f"conformance-{next(numbers)}.db")))


async def test_an_in_memory_sqlite_journal_conforms():
    await check_journal(lambda: SqliteJournal(":memory:"))
