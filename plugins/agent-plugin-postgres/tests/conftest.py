"""Fixtures for the PostgresJournal tests: one throwaway server per session, a fresh schema per test."""

from __future__ import annotations

import os
import pathlib
import sys
import uuid
from collections.abc import Iterator

import pytest

from agent_plugin_postgres.testing import PostgresServer, missing, postgres_server

HERE = pathlib.Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # so tests (and subprocesses) can import pg_testkit


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for this session (a failure under CI, a skip elsewhere, when none can start)."""
    reason = missing()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    with postgres_server() as server:
        yield server


@pytest.fixture
def pg_schema() -> str:
    """A fresh PostgreSQL schema name: every test's journal starts empty."""
    return f"t_{uuid.uuid4().hex[:12]}"
