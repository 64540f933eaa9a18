"""Fixtures for the job tests: both event loops, fresh files; `jobs_testkit` holds the agents."""

from __future__ import annotations

import asyncio
import pathlib
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio

HERE = pathlib.Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # so tests (and worker subprocesses) can import jobs_testkit

Runner = Callable[..., Any]


@pytest.fixture(params=["trio", "asyncio"])
def run(request: pytest.FixtureRequest) -> Runner:
    """``run(async_fn, *args)`` under trio and, in a second test instance, asyncio."""

    def runner(fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        if request.param == "trio":
            return trio.run(fn, *args)
        return asyncio.run(fn(*args))  # type: ignore[arg-type]

    return runner


@pytest.fixture
def db(tmp_path: pathlib.Path) -> pathlib.Path:
    """A jobs file that does not exist yet."""
    return tmp_path / "jobs.db"


@pytest.fixture
def journal_path(tmp_path: pathlib.Path) -> pathlib.Path:
    """A journal file that does not exist yet."""
    return tmp_path / "runs.db"
