"""A server that cannot start gives a clear `MCPError` quickly: no hang, no process left."""

from __future__ import annotations

import time
from typing import Any

import pytest
from mcp_testkit import PY, free_port, time_server

from agent_plugin_mcp import MCPError, MCPTimeout, MCPTools

pytestmark = pytest.mark.usefixtures("no_leftover_children")


def start(run: Any, server: MCPTools) -> tuple[BaseException, float]:
    async def main() -> None:
        async with server:
            raise AssertionError("the server should not have started")

    started = time.monotonic()
    with pytest.raises(MCPError) as info:
        run(main)
    return info.value, time.monotonic() - started


def test_missing_command(run: Any) -> None:
    error, took = start(run, MCPTools("ghost", command="/nonexistent/bin/mcp-server-ghost", args=["--x"]))
    assert type(error) is MCPError
    assert "'ghost'" in str(error)
    assert "/nonexistent/bin/mcp-server-ghost --x" in str(error)
    assert "No such file or directory" in str(error)
    assert error.server == "ghost"
    assert took < 15


def test_server_exiting_at_once_quotes_its_stderr(run: Any) -> None:
    script = "import sys; sys.stderr.write('fatal: the config file is missing\\n'); sys.exit(3)"
    error, took = start(run, MCPTools("broken", command=PY, args=["-c", script]))
    message = str(error)
    assert "MCP server 'broken'" in message
    assert "exited or closed the connection" in message
    assert PY in message
    assert "fatal: the config file is missing" in message
    assert "fatal: the config file is missing" in error.stderr
    assert took < 15


@pytest.mark.parametrize(
    "script", ["import time; time.sleep(60)", "print('not json-rpc', flush=True); import time; time.sleep(60)"]
)
def test_server_that_never_answers_times_out(run: Any, script: str) -> None:
    error, took = start(run, MCPTools("mute", command=PY, args=["-c", script], timeout=1.0))
    assert isinstance(error, MCPTimeout)
    assert isinstance(error, TimeoutError)
    assert "MCP server 'mute'" in str(error) and "within 1.0 s" in str(error)
    # 1 s to start, then the SDK's bounded shutdown: 2 s for the process to exit by itself, then SIGTERM.
    assert took < 10


def test_missing_working_directory(run: Any) -> None:
    error, _ = start(run, MCPTools("nowhere", command=PY, args=["-c", "pass"], cwd="/nonexistent/dir"))
    assert "MCP server 'nowhere'" in str(error) and "/nonexistent/dir" in str(error)


def test_nothing_listening_at_the_url(run: Any) -> None:
    url = f"http://127.0.0.1:{free_port()}/mcp"
    error, took = start(run, MCPTools("web", url=url, timeout=10))
    assert "MCP server 'web'" in str(error)
    assert url in str(error)
    assert took < 10


def test_asking_for_a_tool_the_server_lacks(run: Any) -> None:
    error, _ = start(run, time_server(tools=["get_current_time", "get_weather"]))
    assert "MCP server 'time'" in str(error)
    assert "'get_weather'" in str(error)
    assert "get_current_time" in str(error)  # the tools it does have
