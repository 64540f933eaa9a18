"""The ``tools`` entry point: found by autoload, registers the default strategy."""

from __future__ import annotations

import anyio
import importlib_metadata
import pytest

from agent_kernel import Agent, ToolResult, ToolSpec, hookimpl
from agent_kernel.testing import ScriptedModel, text, tool_call
from agent_plugin_tools import Sequential, Toolbox, plugin

from .conftest import tool_messages


class BareTools:
    """A hand-made tool plugin that registers a tool but no strategy."""

    name = "bare-tools"

    @hookimpl
    def agent_register_tools(self, tools):  # type: ignore[no-untyped-def]
        async def shout(arguments, ctx):  # type: ignore[no-untyped-def]
            return ToolResult(str(arguments["text"]).upper())

        tools.add(ToolSpec("shout", "Shout."), shout)


def test_entry_point_is_declared_in_the_plugin_group() -> None:
    [ep] = importlib_metadata.entry_points(group="agent_kernel.plugins", name="tools")
    assert ep.value == "agent_plugin_tools.plugin"
    assert ep.dist is not None and ep.dist.name == "agent-plugin-tools"
    assert ep.load() is plugin


async def test_autoload_makes_any_tool_plugin_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_KERNEL_PLUGINS", "tools")  # only our entry point, whatever else is installed
    model = ScriptedModel([tool_call("shout", text="hi"), text("ok")])
    agent = Agent(model="scripted", plugins=[model, BareTools()])
    info = agent.plugins["tools"]
    assert (info.distribution, info.hooks) == ("agent-plugin-tools", ("agent_register_runtime",))
    outcome = await agent.run("go")
    assert [m.content for m in tool_messages(outcome)] == ["HI"]


async def test_without_the_entry_point_the_kernel_runs_calls_one_after_another() -> None:
    model = ScriptedModel([tool_call("shout", text="hi"), text("ok")])
    outcome = await Agent(model="scripted", plugins=[model, BareTools()], autoload=False).run("go")
    assert (outcome.reason, outcome.output) == ("completed", "ok")
    assert [m.content for m in outcome.state.messages if m.role == "tool"] == ["HI"]


async def test_a_toolbox_strategy_wins_over_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_KERNEL_PLUGINS", "tools")
    both_running = anyio.Event()
    arrived: list[int] = []

    async def meet(i: int) -> str:
        arrived.append(i)
        if len(arrived) == 2:
            both_running.set()
        with anyio.fail_after(5):
            await both_running.wait()  # only returns if the two calls overlap
        return "met"

    model = ScriptedModel([[tool_call("meet", i=0), tool_call("meet", i=1)], text("ok")])
    agent = Agent(model="scripted", plugins=[model, Toolbox([meet], parallel=True, name="my-tools")])
    assert "tools" in agent.plugins
    outcome = await agent.run("go")
    assert [(m.content, m.is_error) for m in tool_messages(outcome)] == [("met", False), ("met", False)]


async def test_blocking_the_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_KERNEL_PLUGINS", "tools")
    model = ScriptedModel([tool_call("shout", text="hi"), text("ok")])
    agent = Agent(model="scripted", plugins=[model, BareTools()], block=["tools"])
    assert "tools" not in agent.plugins
    outcome = await agent.run("go")  # the kernel's own sequential default runs the call
    assert (outcome.reason, outcome.output) == ("completed", "ok")


def test_the_plugin_module_registers_the_default_sequential_strategy() -> None:
    class Runtime:
        def __init__(self) -> None:
            self.calls: list[tuple[object, bool]] = []

        def set_tool_strategy(self, strategy: object, *, default: bool = False) -> None:
            self.calls.append((strategy, default))

    runtime = Runtime()
    plugin.agent_register_runtime(runtime)  # type: ignore[arg-type]
    assert runtime.calls == [(Sequential(), True)]
