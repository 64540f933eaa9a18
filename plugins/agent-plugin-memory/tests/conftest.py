"""Fixtures for the memory tests; `memory_testkit` holds the shared helpers."""

from __future__ import annotations

import pathlib
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # so the tests can import memory_testkit


@pytest.fixture
def db(tmp_path: pathlib.Path) -> pathlib.Path:
    """A path for a journal file that does not exist yet."""
    return tmp_path / "memory.db"
