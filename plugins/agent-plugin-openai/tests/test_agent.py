"""The plugin inside `agent_kernel.Agent`: registration, events, tool round trips, errors, cancel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
from importlib_metadata import entry_points

from agent_kernel import Agent, Retry, Usage, events, hookimpl, patches
from agent_plugin_openai import OpenAI, OpenAIExecutor
from agent_plugin_openai.testing import FakeServer, chunk, sse, text_chunks, tool_call_chunks

BASE = "http://fake.test/v1"


def agent_with(server: FakeServer, *plugins: Any, model: str = "openai:fake", **options: Any) -> Agent:
    options.setdefault("api_key", "sk-test")
    return Agent(model=model, plugins=[OpenAI(BASE, transport=server.transport, **options), *plugins], autoload=False)


class ForceTool:
    """Forces tool `name` on the first inference of the run, then forbids tools."""

    name = "force-tool"

    def __init__(self, tool: str) -> None:
        self.tool = tool

    @hookimpl
    def agent_before_inference(self, ctx: Any) -> list[patches.Patch]:
        first = not any(m.role == "tool" for m in ctx.state.messages)
        return [patches.ToolChoice(self.tool if first else "none")]


class RetryRetryable:
    name = "retry-retryable"

    @hookimpl
    def agent_on_inference_error(self, error: Exception, attempt: int) -> Retry | None:
        if getattr(error, "retryable", False) and attempt < 3:
            return Retry(0.0)
        return None


def test_entry_point_is_declared() -> None:
    (ep,) = [ep for ep in entry_points(group="agent_kernel.plugins") if ep.name == "openai"]
    assert ep.value == "agent_plugin_openai.plugin"
    assert ep.dist is not None and ep.dist.name == "agent-plugin-openai"
    module = ep.load()
    assert callable(module.agent_register_models)


def test_autoloaded_plugin_serves_openai_models_from_the_environment(
    run: Any, monkeypatch: pytest.MonkeyPatch, closed_port: int
) -> None:
    monkeypatch.delenv("AGENT_KERNEL_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.setenv("AGENT_KERNEL_PLUGINS", "openai")
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{closed_port}/v1")
    agent = Agent(model="openai:some-model")
    info = agent.plugins["openai"]
    assert info.distribution == "agent-plugin-openai"
    assert "agent_register_models" in info.hooks
    outcome = run(agent.run, "hi")
    assert outcome.reason == "error"
    assert outcome.error is not None
    assert f"could not connect to http://127.0.0.1:{closed_port}/v1/chat/completions" in outcome.error.message


def test_loading_the_plugin_does_not_import_httpx() -> None:
    code = (
        "import sys; from agent_kernel import Agent; "
        "a = Agent(model='openai:x'); assert 'openai' in a.plugins, a.plugins; "
        "print('httpx' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_KERNEL_")}
    env["AGENT_KERNEL_PLUGINS"] = "openai"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_explicit_plugin_replaces_the_autoloaded_registration(run: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENT_KERNEL_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.setenv("AGENT_KERNEL_PLUGINS", "openai")
    server = FakeServer(sse(*text_chunks("configured")))
    agent = Agent(model="openai:fake", plugins=[OpenAI(BASE, api_key="k", transport=server.transport)])
    assert {"openai", "openai-config"} <= set(agent.plugins)
    outcome = run(agent.run, "hi")
    assert outcome.reason == "completed", outcome.error
    assert outcome.output == "configured"
    assert len(server.requests) == 1


def test_another_prefix(run: Any) -> None:
    server = FakeServer(sse(*text_chunks("local")))
    plugin = OpenAI(BASE, transport=server.transport, prefix="local:")
    assert plugin.name == "openai-config[local]"
    agent = Agent(model="local:gemma-3", plugins=[plugin], autoload=False)
    assert run(agent.run, "hi").output == "local"
    assert server.bodies[0]["model"] == "gemma-3"
    assert isinstance(plugin.executors["gemma-3"], OpenAIExecutor)


def test_text_streams_as_text_delta_events(run: Any) -> None:
    server = FakeServer(sse(*text_chunks("It ", "is ", "five.")))
    agent = agent_with(server, settings={"temperature": 0.5})

    async def main() -> tuple[list[events.Event], Any]:
        async with agent.stream("What is 2+3?") as stream:
            seen = [event async for event in stream]
        return seen, stream.outcome

    seen, outcome = run(main)
    deltas = [e for e in seen if isinstance(e, events.TextDelta)]
    assert [d.text for d in deltas] == ["It ", "is ", "five."]
    assert outcome.reason == "completed"
    assert outcome.output == "It is five."
    assert outcome.usage == Usage(11, 7, 1)
    finished = [e for e in seen if isinstance(e, events.InferenceFinished)]
    assert finished[0].stop_reason == "end_turn"
    assert server.bodies[0]["temperature"] == 0.5


def test_tool_call_round_trip(run: Any, add_tool: Any) -> None:
    server = FakeServer(
        sse(*tool_call_chunks(("add", '{"a": 2, "b": 3}', "call_X"), split=2)),
        sse(*text_chunks("5")),
    )
    agent = agent_with(server, add_tool.plugin, ForceTool("add"), settings={"max_tokens": 50})

    async def main() -> tuple[list[events.Event], Any]:
        async with agent.stream("What is 2+3?") as stream:
            seen = [event async for event in stream]
        return seen, stream.outcome

    seen, outcome = run(main)
    assert outcome.reason == "completed", outcome.error
    assert add_tool.calls == [{"a": 2, "b": 3}]
    assert outcome.stats.llm_calls == 2 and outcome.stats.tool_calls == 1
    assert outcome.usage == Usage(31, 16, 2)
    tool_deltas = [e for e in seen if isinstance(e, events.ToolCallDelta)]
    assert "".join(d.arguments for d in tool_deltas) == '{"a": 2, "b": 3}'
    assert {(d.call_id, d.name) for d in tool_deltas} == {("call_X", "add")}
    first, second = server.bodies
    assert first["tool_choice"] == {"type": "function", "function": {"name": "add"}}
    assert first["max_tokens"] == 50
    assert second["tool_choice"] == "none"
    assert second["messages"][1:] == [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "call_X", "type": "function", "function": {"name": "add", "arguments": '{"a":2,"b":3}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_X", "content": "5"},
    ]


def test_invalid_arguments_are_blocked_and_the_model_is_told(run: Any, add_tool: Any) -> None:
    server = FakeServer(sse(*tool_call_chunks(("add", '{"a": 2, "b": }', "call_bad"))), sse(*text_chunks("sorry")))
    agent = agent_with(server, add_tool.plugin, ForceTool("add"))
    outcome = run(agent.run, "What is 2+3?")
    assert outcome.reason == "completed", outcome.error
    assert add_tool.calls == []  # the tool never ran on made-up arguments
    tool_message = server.bodies[1]["messages"][-1]
    assert tool_message["role"] == "tool" and tool_message["tool_call_id"] == "call_bad"
    assert "not a valid JSON object" in tool_message["content"]
    assert '{"a": 2, "b": }' in tool_message["content"]
    assert server.bodies[1]["messages"][-2]["tool_calls"][0]["function"]["arguments"] == "{}"
    assert outcome.state.messages[-2].is_error


def test_inference_errors_reach_the_outcome(run: Any) -> None:
    server = FakeServer(httpx.Response(400, json={"error": {"message": "model 'fake' does not exist"}}))
    outcome = run(agent_with(server).run, "hi")
    assert outcome.reason == "error"
    assert outcome.error is not None
    assert "HTTP 400" in outcome.error.message and "model 'fake' does not exist" in outcome.error.message


def test_retry_plugin_gets_retryable_errors_and_retry_after(run: Any) -> None:
    server = FakeServer(
        httpx.Response(429, headers={"retry-after": "0.2"}, json={"error": {"message": "slow down"}}),
        sse(chunk("Hel", role="assistant"), 'data: {"error": {"message": "overloaded"}}\n\n'),
        sse(*text_chunks("fine")),
    )
    agent = agent_with(server, RetryRetryable())
    started = time.monotonic()
    outcome = run(agent.run, "hi")
    assert outcome.reason == "completed", outcome.error
    assert outcome.output == "fine"
    assert outcome.stats.retries == 2
    assert time.monotonic() - started >= 0.2  # the kernel waited for Retry-After
    assert len(server.requests) == 3


class Hanging(httpx.AsyncByteStream):
    """Sends one text chunk, then nothing, until closed."""

    def __init__(self) -> None:
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield sse(chunk("Hel", role="assistant"), done=False)
        await anyio.sleep_forever()

    async def aclose(self) -> None:
        self.closed = True


def test_run_timeout_mid_stream_cancels_and_closes_the_stream(run: Any) -> None:
    stream = Hanging()
    server = FakeServer(
        lambda request: httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=stream),
        sse(*text_chunks("after")),
    )
    agent = agent_with(server)

    async def main() -> tuple[Any, Any]:
        first = await agent.run("hi", timeout=0.3)
        second = await agent.run("again")
        return first, second

    first, second = run(main)
    assert first.reason == "cancelled"
    assert stream.closed
    assert second.reason == "completed" and second.output == "after"


def test_leaving_the_event_stream_early_closes_the_http_stream(run: Any) -> None:
    stream = Hanging()
    server = FakeServer(
        lambda request: httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=stream)
    )
    agent = agent_with(server)

    async def main() -> list[str]:
        texts = []
        with anyio.fail_after(5):
            async with agent.stream("hi") as events_:
                async for event in events_:
                    if isinstance(event, events.TextDelta):
                        texts.append(event.text)
                        break
        return texts

    assert run(main) == ["Hel"]
    assert stream.closed


def test_one_executor_serves_trio_then_asyncio() -> None:
    """The client (connection pool) is per event loop: reusing the agent across loops works."""
    import asyncio

    import trio

    server = FakeServer(*[sse(*text_chunks(str(i))) for i in range(4)])
    agent = agent_with(server)
    outputs = [trio.run(agent.run, "a").output, asyncio.run(agent.run("b")).output]
    outputs += [trio.run(agent.run, "c").output, asyncio.run(agent.run("d")).output]
    assert outputs == ["0", "1", "2", "3"]
    assert json.loads(server.requests[3].content)["messages"][-1]["content"] == "d"
