"""The typed value round-trips through a persistent journal (the agent's converter)."""

from __future__ import annotations

from typing import Any

import attrs

from agent_kernel import Agent
from agent_kernel.journal import Committed
from agent_kernel.patches import SetData
from agent_kernel.testing import CodecJournal, ScriptedModel, UseJournal, fault, text, tool_call
from agent_plugin_output import TypedOutput

from .conftest import City

PARIS = {"name": "Paris", "population": 2_100_000, "country": "France"}


@attrs.frozen
class Tagged:
    """Needs the plugin's converter hooks: the agent's default converter cannot
    unstructure a frozenset to JSON nor structure an ``int | str`` union."""

    tags: frozenset[str]
    ref: int | str


def agent(journal: CodecJournal, output: TypedOutput[Any], turns: list[Any]) -> Agent:
    return Agent(model="scripted", plugins=[ScriptedModel(turns), output, UseJournal(journal)], autoload=False)


async def test_a_finished_run_resumed_in_another_process_has_the_same_typed_value() -> None:
    journal = CodecJournal()
    first = await agent(journal, TypedOutput(City), [tool_call("final_result", **PARIS)]).run("go", run_id="r")
    assert any('"name":"Paris"' in line for line in journal.texts["r"])  # journaled as JSON text
    output = TypedOutput(City)  # a fresh plugin and agent: nothing shared but the journal's text
    again = await agent(journal, output, []).resume("r")
    assert again.reason == first.reason == "completed"
    assert again.output == first.output
    value = output.value(again)
    assert isinstance(value, City) and value == City("Paris", 2_100_000, "France")
    [patch] = [
        p
        for e in await journal.load("r")
        if isinstance(e, Committed)
        for p in e.patches
        if isinstance(p, SetData) and p.key is output.VALUE
    ]
    assert isinstance(patch.value, City)  # structured back through the converter hooks


async def test_a_run_interrupted_after_a_failed_attempt_resumes_with_its_retry_count() -> None:
    journal = CodecJournal()
    turns = [
        tool_call("final_result", name="Paris"),
        fault("provider down", retryable=False),
        tool_call("final_result", **PARIS),
    ]
    interrupted = await agent(journal, TypedOutput(City, max_retries=1), turns).run("go", run_id="r")
    assert interrupted.reason == "error"
    output = TypedOutput(City, max_retries=1)
    resumed = await agent(
        journal, output, [tool_call("final_result", name="Paris"), tool_call("final_result", **PARIS)]
    ).resume("r")
    assert resumed.reason == "completed" and output.value(resumed) == City("Paris", 2_100_000, "France")
    assert resumed.state.get(output.RETRIES) == 1


async def test_a_json_schema_value_round_trips_too() -> None:
    journal = CodecJournal()
    schema = {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}}}}
    await agent(journal, TypedOutput(schema), [tool_call("final_result", tags=["a", "b"])]).run("go", run_id="r")
    output = TypedOutput(schema)
    again = await agent(journal, output, []).resume("r")
    assert output.value(again) == {"tags": ["a", "b"]}


async def test_native_values_round_trip() -> None:
    journal = CodecJournal()
    await agent(journal, TypedOutput(City, mode="native"), [text('{"name": "Rome", "population": 3}')]).run(
        "go", run_id="r"
    )
    output = TypedOutput(City, mode="native")
    assert output.value(await agent(journal, output, []).resume("r")) == City("Rome", 3)


async def test_values_that_need_the_plugins_converter_hooks_round_trip() -> None:
    journal = CodecJournal()
    first = await agent(journal, TypedOutput(Tagged), [tool_call("final_result", tags=["b", "a"], ref="x1")]).run(
        "go", run_id="r"
    )
    assert first.reason == "completed"
    output = TypedOutput(Tagged)
    again = await agent(journal, output, []).resume("r")
    assert output.value(again) == Tagged(frozenset({"a", "b"}), "x1")
