"""Fixtures for the MCP plugin's tests; `mcp_testkit` holds the shared helpers."""

from __future__ import annotations

import asyncio
import pathlib
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import trio

HERE = pathlib.Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # so the tests can import mcp_testkit

import mcp_testkit  # noqa: E402


@pytest.fixture(autouse=True)
def _no_plugin_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the environment from changing which plugins load or tracing hooks."""
    for var in ("AGENT_KERNEL_PLUGINS", "AGENT_KERNEL_DISABLE_PLUGIN_AUTOLOAD", "AGENT_KERNEL_TRACE_HOOKS"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(params=["trio", "asyncio"])
def run(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """``run(async_fn, *args)`` under trio and, in a second test instance, asyncio."""

    def runner(fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        if request.param == "trio":
            return trio.run(fn, *args)
        return asyncio.run(fn(*args))  # type: ignore[arg-type]

    return runner


@pytest.fixture
def no_leftover_children() -> Iterator[None]:
    """Fail the test if it leaves a child process of the test process behind (zombies count)."""
    before = mcp_testkit.children()
    yield
    left = mcp_testkit.children() - before
    assert not left, f"child processes left behind: {sorted(left)}"


@pytest.fixture
def git_repo(tmp_path: pathlib.Path) -> mcp_testkit.GitRepo:
    return mcp_testkit.make_git_repo(tmp_path / "repo")


@pytest.fixture
def http_server() -> Iterator[mcp_testkit.HttpServer]:
    """The testkit MCP server over streamable HTTP on a free loopback port."""
    server = mcp_testkit.start_http_server()
    try:
        yield server
    finally:
        server.stop()
