"""The ``approval`` entry point: discoverable, and inert unless an `Approval` is added."""

from __future__ import annotations

from approval_testkit import Calls
from importlib_metadata import entry_points

import agent_plugin_approval.plugin
from agent_kernel import Agent
from agent_kernel.testing import text, tool_call
from agent_plugin_approval import Approval
from agent_plugin_approval.policies import require_approval


def test_the_entry_point_is_declared():
    [ep] = [ep for ep in entry_points(group="agent_kernel.plugins") if ep.name == "approval"]
    assert ep.value == "agent_plugin_approval.plugin"
    assert ep.dist is not None and ep.dist.name == "agent-plugin-approval"
    assert ep.load() is agent_plugin_approval.plugin


def test_autoloaded_it_implements_no_hook():
    agent = Agent(model="scripted", autoload=True)
    info = agent.plugins["approval"]
    assert info.distribution == "agent-plugin-approval"
    assert info.hooks == ()


async def test_installing_the_distribution_never_requires_approval():
    from agent_kernel.testing import ScriptedModel

    calls = Calls()
    model = ScriptedModel([tool_call("delete", path="a"), text("ok")])
    agent = Agent(model="scripted", plugins=[model, calls.toolbox(name="my-tools")], autoload=True)
    outcome = await agent.run("go")
    assert outcome.reason == "completed" and calls.names() == ["delete"]


def test_with_autoload_an_explicit_approval_replaces_the_entry_point():
    agent = Agent(model="scripted", plugins=[Approval(require_approval("x"))], autoload=True)
    assert agent.plugins["approval"].distribution is None  # the instance, not the installed module
    assert "agent_before_tool_execute" in agent.plugins["approval"].hooks
