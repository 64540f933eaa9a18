"""The ``guardrails`` entry point: found by autoload, it changes nothing by itself."""

from __future__ import annotations

import importlib_metadata
import pytest

from agent_kernel import Agent
from agent_kernel.testing import ScriptedModel, text
from agent_plugin_guardrails import plugin


def test_entry_point_is_declared_in_the_plugin_group() -> None:
    [ep] = importlib_metadata.entry_points(group="agent_kernel.plugins", name="guardrails")
    assert ep.value == "agent_plugin_guardrails.plugin"
    assert ep.dist is not None and ep.dist.name == "agent-plugin-guardrails"
    assert ep.load() is plugin


async def test_autoload_registers_a_plugin_without_behaviour(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_KERNEL_PLUGINS", "guardrails")
    agent = Agent(model="scripted", plugins=[ScriptedModel([text("password=hunter2")])])
    info = agent.plugins["guardrails"]
    assert (info.distribution, info.hooks) == ("agent-plugin-guardrails", ())
    outcome = await agent.run("anything")
    assert (outcome.reason, outcome.output) == ("completed", "password=hunter2")
