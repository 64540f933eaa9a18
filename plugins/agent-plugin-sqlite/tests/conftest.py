"""Fixtures for the SqliteJournal tests; `sqlite_testkit` holds the shared plugins."""

from __future__ import annotations

import pathlib
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # so tests (and subprocesses) can import sqlite_testkit


@pytest.fixture
def db(tmp_path: pathlib.Path) -> pathlib.Path:
    """A path for a journal file that does not exist yet."""
    return tmp_path / "journal.db"
