"""Through the kernel: ``Agent(model="llamacpp:gemma-3-270m")`` with the real model."""

from __future__ import annotations

import json
import time
from typing import Any

import anyio
from llamacpp_testkit import ADD, STORY, AddTool, ForceOnce, RunEnds

from agent_kernel import Agent, events
from agent_plugin_llamacpp import LlamaCpp


def test_the_entry_point_serves_llamacpp_models(run: Any, monkeypatch: Any) -> None:
    # Only this plugin is autoloaded (allow-list): the entry point alone must serve the model.
    monkeypatch.setenv("AGENT_KERNEL_PLUGINS", "llamacpp")
    agent = Agent(model="llamacpp:gemma-3-270m", settings={"max_tokens": 24, "temperature": 0})
    info = agent.plugins["llamacpp"]
    assert info.distribution == "agent-plugin-llamacpp"
    assert "agent_register_models" in info.hooks

    async def attempt() -> tuple[list[events.Event], Any]:
        async with agent.stream(STORY) as stream:
            seen = [event async for event in stream]
        return seen, stream.outcome

    counts = []
    for _ in range(3):  # a base model may answer nothing; three silent answers in a row would be news
        seen, outcome = run(attempt)
        assert outcome.reason == "completed", outcome.error
        deltas = [e.text for e in seen if isinstance(e, events.TextDelta)]
        assert "".join(deltas) == outcome.output  # the deltas are the message, piece by piece
        (finished,) = [e for e in seen if isinstance(e, events.InferenceFinished)]
        assert seen.index(finished) > max((i for i, e in enumerate(seen) if isinstance(e, events.TextDelta)), default=0)
        assert outcome.usage.input_tokens > 0 and 0 < outcome.usage.output_tokens <= 24
        assert outcome.usage.requests == 1
        counts.append(len(deltas))
        if len(deltas) >= 2:
            break
    assert max(counts) >= 2, f"no streamed text in 3 answers (deltas per answer: {counts})"


async def test_an_explicit_plugin_replaces_the_entry_points_registration(monkeypatch: Any) -> None:
    monkeypatch.setenv("AGENT_KERNEL_PLUGINS", "llamacpp")
    plugin = LlamaCpp(settings={"max_tokens": 3})
    agent = Agent(model="llamacpp:gemma-3-270m", plugins=[plugin])
    assert {"llamacpp", "llamacpp-config"} <= set(agent.plugins)
    outcome = await agent.run(STORY)
    assert outcome.reason == "completed", outcome.error
    assert set(plugin.executors) == {"gemma-3-270m"}  # this plugin served the model...
    assert outcome.usage.output_tokens <= 3  # ...with its settings


async def test_another_prefix_serves_the_same_models() -> None:
    plugin = LlamaCpp(prefix="local:", settings={"max_tokens": 3})
    agent = Agent(model="local:gemma-3-270m", plugins=[plugin], autoload=False)
    assert plugin.name == "llamacpp-config[local]"
    outcome = await agent.run(STORY)
    assert outcome.reason == "completed", outcome.error
    assert outcome.state.messages[-1].role == "assistant" and outcome.usage.output_tokens <= 3


async def test_a_forced_tool_call_runs_through_the_loop_and_the_run_completes(add_tool: AddTool) -> None:
    agent = Agent(
        model="llamacpp:gemma-3-270m",
        plugins=[LlamaCpp(settings={"max_tokens": 48, "temperature": 0}), add_tool.plugin, ForceOnce("add")],
        autoload=False,
    )
    async with agent.stream(ADD) as stream:
        seen = [event async for event in stream]
    outcome = stream.outcome
    assert outcome is not None and outcome.reason == "completed", outcome and outcome.error
    assert outcome.stats.steps == 2 and outcome.stats.llm_calls == 2
    assert outcome.stats.tool_calls == 1 and outcome.stats.tool_errors == 0

    # The grammar made the arguments follow the schema; the values are the model's.
    (arguments,) = add_tool.calls
    assert set(arguments) == {"a", "b"} and all(isinstance(v, int) for v in arguments.values())
    call_deltas = [e for e in seen if isinstance(e, events.ToolCallDelta)]
    assert len(call_deltas) > 1 and {e.name for e in call_deltas} == {"add"}
    assert json.loads("".join(e.arguments for e in call_deltas)) == arguments

    # The result went back into the conversation and step 2 (tool choice "auto") answered in text.
    messages = list(outcome.state.messages)
    assert [m.role for m in messages] == ["user", "assistant", "tool", "assistant"]
    (call,) = messages[1].tool_calls
    assert {e.call_id for e in call_deltas} == {call.id}
    assert messages[2].tool_call_id == call.id
    assert messages[2].content == str(arguments["a"] + arguments["b"]) and not messages[2].is_error
    assert not messages[3].tool_calls
    finished = [e for e in seen if isinstance(e, events.InferenceFinished)]
    assert finished[0].stop_reason == "tool_use"
    # Step 2's prompt holds step 1's conversation, so it is longer.
    assert finished[1].usage.input_tokens > finished[0].usage.input_tokens


async def test_tool_arguments_that_do_not_parse_are_refused_and_the_model_is_told(add_tool: AddTool) -> None:
    # max_tokens 3 cuts the forced call's arguments off: the call is blocked, not the run.
    agent = Agent(
        model="llamacpp:gemma-3-270m",
        plugins=[LlamaCpp(settings={"max_tokens": 3, "temperature": 0}), add_tool.plugin, ForceOnce("add")],
    )
    outcome = await agent.run(ADD)
    assert outcome.reason == "completed", outcome.error
    assert add_tool.calls == []  # the tool never ran
    messages = list(outcome.state.messages)
    assert [m.role for m in messages] == ["user", "assistant", "tool", "assistant"]
    (call,) = messages[1].tool_calls
    result = messages[2]
    assert result.tool_call_id == call.id and result.is_error
    assert "not a valid JSON object" in result.content and "cut off by max_tokens" in result.content
    assert "Call it again" in result.content


async def test_a_timeout_mid_generation_cancels_the_run_and_the_model_stays_usable() -> None:
    ends = RunEnds()
    plugin = LlamaCpp(settings={"max_tokens": 400})
    agent = Agent(model="llamacpp:gemma-3-270m", plugins=[plugin, ends], autoload=False)
    await plugin.executor("gemma-3-270m").load()

    # A deadline armed 50 ms after the first streamed piece, with hundreds of tokens to go.
    received = 0
    with anyio.move_on_after(60) as deadline:
        async with agent.stream(STORY) as stream:
            async for event in stream:
                if isinstance(event, events.TextDelta):
                    received += 1
                    if received == 1:
                        deadline.deadline = anyio.current_time() + 0.05
                        armed = time.perf_counter()
                assert not isinstance(event, events.InferenceFinished), "the answer finished before the timeout"
    ended_after = time.perf_counter() - armed
    assert deadline.cancelled_caught and received >= 1
    assert ends.reasons == ["cancelled"]
    assert ended_after < 0.6, f"the run took {ended_after:.2f} s to end after its deadline"

    # The same model answers the next runs; the kernel's own timeout works the same way.
    outcome = await agent.run(STORY, timeout=0.5)
    assert outcome.reason == "cancelled" and outcome.error.type == "TimeoutError"
    fast = Agent(model="llamacpp:gemma-3-270m", plugins=[LlamaCpp(settings={"max_tokens": 8}), ends], autoload=False)
    outcome = await fast.run(STORY, timeout=60)
    assert outcome.reason == "completed", outcome.error
    assert ends.reasons == ["cancelled", "cancelled", "completed"]
