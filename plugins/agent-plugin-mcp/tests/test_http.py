"""Streamable HTTP: a small MCPServer script served on 127.0.0.1 in a subprocess."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from mcp_testkit import HttpServer, agent, tool_messages

from agent_kernel.testing import text, tool_call
from agent_plugin_mcp import MCPTools

pytestmark = pytest.mark.usefixtures("no_leftover_children")


def test_agent_calls_a_streamable_http_server(run: Any, http_server: HttpServer) -> None:
    async def main() -> Any:
        async with MCPTools("web", url=http_server.url, headers={"Authorization": "Bearer test"}) as server:
            built, _ = agent(
                [[tool_call("web__add", a=40, b=2), tool_call("web__structured")], text("42")],
                server,
            )
            return server.tools, await built.run("add")

    specs, outcome = run(main)
    assert "web__add" in {spec.name for spec in specs}
    assert outcome.reason == "completed", outcome.error
    added, structured = tool_messages(outcome)
    assert added.content == "42" and not added.is_error
    assert structured.content == '{"answer": 42, "unit": "none"}'


def test_http_call_cancelled_by_the_run_then_the_session_goes_on(run: Any, http_server: HttpServer) -> None:
    async def main() -> Any:
        async with MCPTools("web", url=http_server.url) as server:
            slow, _ = agent([tool_call("web__slow", seconds=30), text("never")], server)
            with anyio.fail_after(20):
                cancelled = await slow.run("wait", timeout=0.5)
            return cancelled, await server.call("add", {"a": 1, "b": 2})

    cancelled, result = run(main)
    assert cancelled.reason == "cancelled"
    assert result.content == "3"


def test_http_server_killed_mid_run_gives_error_results_no_hang(run: Any, http_server: HttpServer) -> None:
    async def main() -> Any:
        async with MCPTools("web", url=http_server.url, restart=False) as server:

            def kill_then_call(request: Any) -> Any:
                http_server.stop()
                return tool_call("web__add", a=2, b=2)

            built, _ = agent(
                [tool_call("web__add", a=1, b=1), kill_then_call, tool_call("web__add", a=3, b=3), text("gone")],
                server,
            )
            with anyio.fail_after(30):
                return await built.run("go")

    outcome = run(main)
    assert outcome.reason == "completed", outcome.error
    ok, lost, still_lost = tool_messages(outcome)
    assert ok.content == "2" and not ok.is_error
    for message in (lost, still_lost):
        assert message.is_error
        assert "MCP server 'web'" in message.content
