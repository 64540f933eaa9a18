"""Issue 13, the newcomer's path: what a first user of the CLI, ``agent.toml`` and ``Agent(...)`` meets."""

from __future__ import annotations

from typing import Any

import pytest

from agent_kernel import Agent
from agent_kernel._agent import DEFAULT_MAX_STEPS
from agent_kernel.errors import MissingComponent, PluginLoadError
from agent_kernel.testing import ScriptedModel, text, tool_call
from agent_plugin_tools import Toolbox


def ping() -> str:
    """Answer pong."""
    return "pong"


def looping_agent(**kwargs: Any) -> Agent:
    model = ScriptedModel([tool_call("ping")] * 200)  # never answers in time
    return Agent(model="scripted", plugins=[model, Toolbox([ping])], autoload=False, **kwargs)


# ---------------------------------------------------------------------- 3. a default step limit


async def test_a_looping_model_stops_at_the_default_step_limit() -> None:
    outcome = await looping_agent().run("loop")
    assert DEFAULT_MAX_STEPS == 50
    assert outcome.reason == "stopped"
    assert outcome.stop is not None and outcome.stop.code == "limit.steps"
    assert outcome.stats.steps == DEFAULT_MAX_STEPS


async def test_the_step_limit_is_overridable_and_removable() -> None:
    outcome = await looping_agent(max_steps=3).run("loop")
    assert (outcome.reason, outcome.stats.steps) == ("stopped", 3)
    agent = looping_agent(max_steps=None)
    assert agent.max_steps is None and looping_agent(max_steps=0).max_steps is None
    finite = ScriptedModel([tool_call("ping")] * 60 + [text("done")])
    outcome = await Agent(model="scripted", plugins=[finite, Toolbox([ping])], autoload=False, max_steps=None).run("go")
    assert (outcome.reason, outcome.stats.steps) == ("completed", 61)


async def test_a_run_that_answers_at_the_last_step_completes() -> None:
    model = ScriptedModel([tool_call("ping"), text("done")])
    outcome = await Agent(model="scripted", plugins=[model, Toolbox([ping])], autoload=False, max_steps=2).run("go")
    assert outcome.reason == "completed" and outcome.output == "done"


async def test_a_run_stopped_by_the_step_limit_resumes_to_the_same_outcome() -> None:
    agent = looping_agent(max_steps=2)
    first = await agent.run("loop")
    again = await agent.resume(first.run_id)
    assert (again.reason, again.stop) == (first.reason, first.stop)
    assert again.stats.steps == first.stats.steps == 2


@pytest.mark.parametrize("bad", [-1, 2.5, True, "10"])
def test_a_bad_step_limit_is_refused(bad: Any) -> None:
    with pytest.raises(ValueError, match="max_steps"):
        looping_agent(max_steps=bad)


# ---------------------------------------------------------------------- 7. model strings


def model_error(model: str) -> str:
    agent = Agent(model=model, plugins=[ScriptedModel([text("hi")])], autoload=True, block=["approval"])
    problem = agent.unknown_model(model)
    assert problem is not None
    return problem


def test_a_provider_name_alone_says_to_add_the_model_name() -> None:
    message = model_error("openai")
    assert "install" not in message
    assert "'openai' names a provider, not a model: write openai:<model name>" in message


def test_a_bare_model_name_suggests_the_provider_prefix() -> None:
    message = model_error("gpt-4o-mini")
    assert "did you mean" in message and "openai:gpt-4o-mini" in message


def test_an_unknown_provider_says_what_to_install() -> None:
    assert "install agent-plugin-anthropic" in Agent(autoload=False).unknown_model("anthropic:claude")  # type: ignore[operator]


async def test_running_an_unknown_model_raises_the_same_message() -> None:
    agent = Agent(model="openai", plugins=[ScriptedModel([text("hi")])], autoload=True, block=["approval"])
    outcome = await agent.run("hi")
    assert outcome.reason == "error" and outcome.error is not None
    assert "write openai:<model name>" in outcome.error.message
    assert agent.unknown_model("scripted") is None and agent.unknown_model("openai:gpt-4o-mini") is None
    assert MissingComponent  # the type runs raise before a run exists


# ---------------------------------------------------------------------- 8. duplicate plugin names


class Named:
    name = "sqlite"


def test_two_plugins_of_one_name_are_both_described() -> None:
    with pytest.raises(PluginLoadError) as info:
        Agent(model="scripted", plugins=[Named(), Named()], autoload=False)
    message = str(info.value)
    assert "from code and code" not in message
    assert message.count(f"{__name__}.Named object given in code") == 2
