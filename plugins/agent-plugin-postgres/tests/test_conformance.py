"""The kernel's journal conformance suite (`check_journal`) on a real server, under trio and asyncio."""

from __future__ import annotations

import asyncio
import itertools
import uuid

import pytest

from agent_kernel.testing.conformance import check_journal
from agent_plugin_postgres import PostgresJournal

JOURNALS: list[PostgresJournal] = []


def factory(dsn: str, durability: str = "commit"):
    numbers = itertools.count()
    prefix = uuid.uuid4().hex[:8]

    def make() -> PostgresJournal:
        journal = PostgresJournal(dsn, schema=f"c_{prefix}_{next(numbers)}", durability=durability, pool_size=4)
        JOURNALS.append(journal)
        return journal

    return make


@pytest.fixture(autouse=True)
def close_journals():
    yield
    while JOURNALS:
        JOURNALS.pop().close()


@pytest.mark.parametrize("durability", ["commit", "batched"])
async def test_postgres_journal_conforms(pg_server, durability):
    await check_journal(factory(pg_server.dsn, durability))


def test_postgres_journal_conforms_under_asyncio(pg_server):
    asyncio.run(check_journal(factory(pg_server.dsn)))
