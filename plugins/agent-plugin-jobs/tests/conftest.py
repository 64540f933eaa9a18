"""Fixtures for the job tests: both event loops, fresh files; `jobs_testkit` holds the agents."""

from __future__ import annotations

import pathlib
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # so tests (and worker subprocesses) can import jobs_testkit


@pytest.fixture
def db(tmp_path: pathlib.Path) -> pathlib.Path:
    """A jobs file that does not exist yet."""
    return tmp_path / "jobs.db"


@pytest.fixture
def journal_path(tmp_path: pathlib.Path) -> pathlib.Path:
    """A journal file that does not exist yet."""
    return tmp_path / "runs.db"
