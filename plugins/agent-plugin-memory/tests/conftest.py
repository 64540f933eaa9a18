"""Fixtures for the memory tests; `memory_testkit` holds the shared helpers."""

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
    sys.path.insert(0, str(HERE))  # so the tests can import memory_testkit


@pytest.fixture(autouse=True)
def _no_plugin_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the environment from changing which plugins load or tracing hooks."""
    for var in ("AGENT_KERNEL_PLUGINS", "AGENT_KERNEL_DISABLE_PLUGIN_AUTOLOAD", "AGENT_KERNEL_TRACE_HOOKS"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def db(tmp_path: pathlib.Path) -> pathlib.Path:
    """A path for a journal file that does not exist yet."""
    return tmp_path / "memory.db"


@pytest.fixture(params=["trio", "asyncio"])
def run(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """``run(async_fn, *args)`` under trio and, in a second test instance, asyncio."""

    def call(fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        if request.param == "trio":
            return trio.run(fn, *args)
        return asyncio.run(fn(*args))  # type: ignore[arg-type]

    return call
