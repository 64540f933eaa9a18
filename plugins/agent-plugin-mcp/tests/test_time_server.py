"""Against the real ``mcp-server-time`` (stdio), through an Agent, under trio and asyncio."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest
from mcp_testkit import agent, children, only_new_child, reaped, time_server, tool_messages

from agent_kernel.testing import text, tool_call

pytestmark = pytest.mark.usefixtures("no_leftover_children")


def test_tools_are_listed_namespaced_with_schemas_passed_through(run: Any) -> None:
    async def main() -> Any:
        async with time_server() as server:
            built, model = agent([text("nothing to do")], server)
            outcome = await built.run("hi")
            return server.tools, built.tools, model.requests[0].tools, outcome

    specs, registered, offered, outcome = run(main)
    assert outcome.reason == "completed"
    by_name = {spec.name: spec for spec in specs}
    assert set(by_name) == {"time__get_current_time", "time__convert_time"}
    assert registered == specs
    assert {t.name for t in offered} == set(by_name)
    current = by_name["time__get_current_time"]
    assert current.plugin == "mcp:time"
    assert current.description  # the server's own description, unchanged
    assert current.parameters["type"] == "object"
    assert current.parameters["required"] == ["timezone"]
    assert current.parameters["properties"]["timezone"]["type"] == "string"
    assert set(by_name["time__convert_time"].parameters["required"]) == {"source_timezone", "time", "target_timezone"}
    assert current.idempotent  # the server annotates it read-only


def test_agent_calls_get_current_time_and_convert_time(run: Any) -> None:
    async def main() -> Any:
        async with time_server() as server:
            built, _ = agent(
                [
                    tool_call("time__get_current_time", timezone="Asia/Tokyo"),
                    tool_call("time__convert_time", source_timezone="UTC", time="12:00", target_timezone="Asia/Tokyo"),
                    tool_call("time__get_current_time", timezone="Not/A_Zone"),
                    text("done"),
                ],
                server,
            )
            return await built.run("What time is it in Tokyo?")

    before = datetime.datetime.now(datetime.UTC)
    outcome = run(main)
    assert outcome.reason == "completed", outcome.error
    assert outcome.output == "done"
    now, converted, invalid = tool_messages(outcome)
    assert not now.is_error
    current = json.loads(now.content)
    assert current["timezone"] == "Asia/Tokyo"
    moment = datetime.datetime.fromisoformat(current["datetime"])
    assert moment.utcoffset() == datetime.timedelta(hours=9)
    assert abs(moment - before) < datetime.timedelta(minutes=5)
    assert not converted.is_error
    conversion = json.loads(converted.content)
    assert conversion["source"]["timezone"] == "UTC"
    assert conversion["target"]["timezone"] == "Asia/Tokyo"
    assert datetime.datetime.fromisoformat(conversion["target"]["datetime"]).hour == 21
    assert invalid.is_error  # the server's own is_error result reaches the model
    assert "Not/A_Zone" in invalid.content
    assert outcome.stats.tool_calls == 3
    assert outcome.stats.tool_errors == 1


def test_the_server_process_is_reaped_when_the_block_ends(run: Any) -> None:
    async def main() -> int:
        before = children()
        async with time_server() as server:
            pid = only_new_child(before)
            assert server.connected
            result = await server.call("get_current_time", {"timezone": "UTC"})
            assert json.loads(result.content)["timezone"] == "UTC"
        assert not server.connected
        return pid

    pid = run(main)
    assert reaped(pid)


def test_mcp_tools_beside_a_toolbox_with_parallel_calls(run: Any) -> None:
    """MCP tools and Python tools in one agent; agent-plugin-tools' Parallel strategy runs them."""
    from agent_kernel import Agent
    from agent_kernel.testing import ScriptedModel
    from agent_plugin_tools import Toolbox

    def city_zone(city: str) -> str:
        """The IANA time zone of a city.

        Args:
            city: the city's name.
        """
        return {"Tokyo": "Asia/Tokyo"}.get(city, "UTC")

    async def main() -> Any:
        async with time_server() as server:
            model = ScriptedModel(
                [
                    [tool_call("city_zone", city="Tokyo"), tool_call("time__get_current_time", timezone="Asia/Tokyo")],
                    text("done"),
                ]
            )
            toolbox = Toolbox([city_zone], parallel=True)
            built = Agent(model="scripted", plugins=[model, toolbox, server], autoload=False)
            return await built.run("time in Tokyo")

    outcome = run(main)
    assert outcome.reason == "completed", outcome.error
    zone, now = tool_messages(outcome)
    assert zone.content == "Asia/Tokyo"
    assert json.loads(now.content)["timezone"] == "Asia/Tokyo"
