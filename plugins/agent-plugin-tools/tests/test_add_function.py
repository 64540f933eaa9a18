"""`add_function`: a plugin registers typed functions as tools from its own ``agent_register_tools`` hook."""

from __future__ import annotations

from typing import Any

import pytest

from agent_kernel import Agent, ToolRegistrar, hookimpl
from agent_kernel.errors import ConfigurationError
from agent_kernel.testing import ScriptedModel, text, tool_call
from agent_plugin_tools import Sequential, Toolbox, ToolDefinitionError, add_function, tool

from .conftest import tool_messages


def add(a: int, b: int = 1) -> int:
    """Add two integers.

    Args:
        a: the first addend.
        b: the second addend.
    """
    return a + b


class Weather:
    """A plugin that offers its own tools among other work."""

    name = "weather"

    def __init__(self) -> None:
        self.asked: list[str] = []

    @hookimpl
    def agent_register_tools(self, tools: ToolRegistrar) -> None:
        add_function(tools, self.forecast)
        add_function(tools, add, timeout=5)

    @tool(idempotent=True)
    async def forecast(self, city: str, days: int = 1) -> str:
        """The forecast for a city.

        Args:
            city: the city.
            days: how many days ahead.
        """
        self.asked.append(city)
        return f"sunny in {city} for {days} day(s)"


def agent_with(plugin: object, turns: list[Any]) -> Agent:
    # the strategy comes from the `tools` entry point in a real install; here it is explicit
    class Strategy:
        name = "strategy"

        @hookimpl
        def agent_register_runtime(self, runtime: object) -> None:
            runtime.set_tool_strategy(Sequential(), default=True)  # type: ignore[attr-defined]

    return Agent(model="scripted", plugins=[ScriptedModel(turns), Strategy(), plugin], autoload=False)


def test_the_tools_have_the_toolbox_schema_and_the_plugins_name() -> None:
    agent = agent_with(Weather(), [text("hi")])
    specs = {spec.name: spec for spec in agent.tools}
    assert set(specs) == {"forecast", "add"}
    assert specs["forecast"].plugin == "weather" and specs["add"].plugin == "weather"
    assert specs["forecast"].idempotent is True
    boxed = Toolbox([add]).specs[0]
    assert (specs["add"].description, specs["add"].parameters) == (boxed.description, boxed.parameters)
    assert specs["forecast"].parameters["required"] == ["city"]
    assert "self" not in specs["forecast"].parameters["properties"]


async def test_calls_are_validated_then_run() -> None:
    weather = Weather()
    turns = [[tool_call("forecast", city="Lisbon", days=2), tool_call("add", a="2")], text("done")]
    outcome = await agent_with(weather, turns).run("go")
    assert outcome.reason == "completed"
    ok, bad = tool_messages(outcome)
    assert (ok.content, ok.is_error) == ("sunny in Lisbon for 2 day(s)", False)
    assert bad.is_error and "a" in bad.content and "integer" in bad.content
    assert weather.asked == ["Lisbon"]


def test_a_function_that_cannot_be_a_tool_fails_at_registration() -> None:
    def untyped(x):  # type: ignore[no-untyped-def]
        return x

    class Broken:
        name = "broken"

        @hookimpl
        def agent_register_tools(self, tools: ToolRegistrar) -> None:
            add_function(tools, untyped)

    with pytest.raises(ToolDefinitionError, match="untyped"):
        agent_with(Broken(), [text("hi")])


def test_two_plugins_adding_one_tool_name_are_both_named() -> None:
    class Other:
        name = "other"

        @hookimpl
        def agent_register_tools(self, tools: ToolRegistrar) -> None:
            add_function(tools, add)

    with pytest.raises(ConfigurationError, match="tool 'add' is registered by both"):
        Agent(model="scripted", plugins=[ScriptedModel([text("hi")]), Weather(), Other()], autoload=False)
