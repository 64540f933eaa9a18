"""Helpers shared by the tests: run an agent with a script and some tools."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from agent_kernel import Agent, Message, Outcome
from agent_kernel.testing import ScriptedModel


async def run_agent(turns: Sequence[Any], *plugins: object, input: str = "go", **kwargs: Any) -> Outcome:
    """Run a fresh agent (scripted model + `plugins`, no autoload) on `input`."""
    agent = Agent(model="scripted", plugins=[ScriptedModel(turns), *plugins], autoload=False)
    return await agent.run(input, **kwargs)


def tool_messages(outcome: Outcome) -> list[Message]:
    """The tool result messages of a run, in the order they were appended."""
    return [m for m in outcome.state.messages if m.role == "tool"]


@pytest.fixture(autouse=True)
def _no_autoload_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the environment from changing which plugins load."""
    monkeypatch.delenv("AGENT_KERNEL_PLUGINS", raising=False)
    monkeypatch.delenv("AGENT_KERNEL_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("AGENT_KERNEL_TRACE_HOOKS", raising=False)
