"""The ``output`` entry point: found by autoload, it changes nothing by itself."""

from __future__ import annotations

import importlib_metadata
import pytest

from agent_kernel import Agent
from agent_kernel.testing import ScriptedModel, text
from agent_plugin_output import plugin


def test_entry_point_is_declared_in_the_plugin_group() -> None:
    [ep] = importlib_metadata.entry_points(group="agent_kernel.plugins", name="output")
    assert ep.value == "agent_plugin_output.plugin"
    assert ep.dist is not None and ep.dist.name == "agent-plugin-output"
    assert ep.load() is plugin


async def test_autoload_registers_a_plugin_without_behaviour(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_KERNEL_PLUGINS", "output")
    agent = Agent(model="scripted", plugins=[ScriptedModel([text("plain text is fine")])])
    info = agent.plugins["output"]
    assert (info.distribution, info.hooks) == ("agent-plugin-output", ())
    outcome = await agent.run("go")
    assert (outcome.reason, outcome.output) == ("completed", "plain text is fine")
