"""Fixtures for the MCP plugin's tests; `mcp_testkit` holds the shared helpers."""

from __future__ import annotations

import pathlib
import sys
from collections.abc import Iterator

import pytest

HERE = pathlib.Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # so the tests can import mcp_testkit

import mcp_testkit  # noqa: E402


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
