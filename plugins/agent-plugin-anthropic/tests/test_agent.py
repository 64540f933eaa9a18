"""The plugin inside `agent_kernel.Agent`: discovery, streaming, tool round trips, retries, cancellation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from importlib_metadata import entry_points

from agent_kernel import Agent, Retry, Usage, events, hookimpl, patches
from agent_plugin_anthropic import Anthropic, AnthropicExecutor
from agent_plugin_anthropic.testing import FakeAnthropic, text_stream

Fixture = Callable[[str], Path]


def agent_with(server: FakeAnthropic, *plugins: Any, model: str = "anthropic:claude-x", **options: Any) -> Agent:
    options.setdefault("api_key", "sk-ant-test")
    agent_options = {k: options.pop(k) for k in ("settings", "instructions") if k in options}
    return Agent(
        model=model,
        plugins=[Anthropic(transport=server.transport, **options), *plugins],
        autoload=False,
        **agent_options,
    )


async def stream_all(agent: Agent, prompt: str) -> tuple[list[events.Event], Any]:
    async with agent.stream(prompt) as stream:
        seen = [event async for event in stream]
    return seen, stream.outcome


class ForceTool:
    """Forces tool `tool` on the first inference of the run, then forbids tools."""

    name = "force-tool"

    def __init__(self, tool: str) -> None:
        self.tool = tool

    @hookimpl
    def agent_before_inference(self, ctx: Any) -> list[patches.Patch]:
        first = not any(m.role == "tool" for m in ctx.state.messages)
        return [patches.ToolChoice(self.tool if first else "none")]


class RetryRetryable:
    """Retries retryable inference errors at once, up to 3 attempts."""

    name = "retry-retryable"

    def __init__(self) -> None:
        self.errors: list[Exception] = []

    @hookimpl
    def agent_on_inference_error(self, error: Exception, attempt: int) -> Retry | None:
        self.errors.append(error)
        if getattr(error, "retryable", False) and attempt < 3:
            return Retry(0.0)
        return None


# ----------------------------------------------------------------------------- discovery


def test_entry_point_is_declared() -> None:
    (ep,) = [ep for ep in entry_points(group="agent_kernel.plugins") if ep.name == "anthropic"]
    assert ep.value == "agent_plugin_anthropic.plugin"
    assert ep.dist is not None and ep.dist.name == "agent-plugin-anthropic"
    module = ep.load()
    assert callable(module.agent_register_models)


def test_autoloaded_plugin_serves_anthropic_models_from_the_environment(
    run: Any, monkeypatch: pytest.MonkeyPatch, closed_port: int
) -> None:
    monkeypatch.setenv("AGENT_KERNEL_PLUGINS", "anthropic")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", f"http://127.0.0.1:{closed_port}")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-env")
    agent = Agent(model="anthropic:claude-x")
    info = agent.plugins["anthropic"]
    assert info.distribution == "agent-plugin-anthropic"
    assert "agent_register_models" in info.hooks
    outcome = run(agent.run, "hi")
    assert outcome.reason == "error"
    assert outcome.error is not None
    assert f"could not connect to http://127.0.0.1:{closed_port}/v1/messages" in outcome.error.message


def test_loading_the_plugin_does_not_import_httpx() -> None:
    code = (
        "import sys; from agent_kernel import Agent; "
        "a = Agent(model='anthropic:claude-x'); assert 'anthropic' in a.plugins, a.plugins; "
        "print('httpx' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENT_KERNEL_", "ANTHROPIC_"))}
    env["AGENT_KERNEL_PLUGINS"] = "anthropic"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_explicit_plugin_replaces_the_autoloaded_registration(
    run: Any, monkeypatch: pytest.MonkeyPatch, fixture: Fixture
) -> None:
    monkeypatch.setenv("AGENT_KERNEL_PLUGINS", "anthropic")
    server = FakeAnthropic(fixture("text_answer.sse"))
    agent = Agent(model="anthropic:claude-x", plugins=[Anthropic("sk-ant-k", transport=server.transport)])
    assert {"anthropic", "anthropic-config"} <= set(agent.plugins)
    outcome = run(agent.run, "hi")
    assert outcome.reason == "completed", outcome.error
    assert outcome.output == "Hello! How can I help you today?"
    assert server.requests[0].headers["x-api-key"] == "sk-ant-k"


def test_another_prefix(run: Any, fixture: Fixture) -> None:
    server = FakeAnthropic(fixture("text_answer.sse"))
    plugin = Anthropic(base_url="http://proxy.test", transport=server.transport, prefix="proxy:")
    assert plugin.name == "anthropic-config[proxy]"
    agent = Agent(model="proxy:claude-haiku", plugins=[plugin], autoload=False)
    assert run(agent.run, "hi").output == "Hello! How can I help you today?"
    assert server.bodies[0]["model"] == "claude-haiku"
    assert str(server.requests[0].url) == "http://proxy.test/v1/messages"
    assert isinstance(plugin.executors["claude-haiku"], AnthropicExecutor)


def test_max_tokens_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_tokens must be a positive int"):
        Anthropic(max_tokens=0)


# ----------------------------------------------------------------------------- runs


def test_text_streams_as_text_delta_events(run: Any, fixture: Fixture) -> None:
    server = FakeAnthropic(fixture("text_answer.sse"))
    agent = agent_with(server, settings={"temperature": 0.5, "max_tokens": 300}, instructions="Be brief.")
    seen, outcome = run(stream_all, agent, "Hi!")
    assert [e.text for e in seen if isinstance(e, events.TextDelta)] == ["Hello", "!", " How can I help", " you today?"]
    assert outcome.reason == "completed"
    assert outcome.output == "Hello! How can I help you today?"
    assert outcome.usage == Usage(25, 15, 1)
    (finished,) = [e for e in seen if isinstance(e, events.InferenceFinished)]
    assert finished.stop_reason == "end_turn"
    assert server.bodies == [
        {
            "model": "claude-x",
            "max_tokens": 300,
            "system": "Be brief.",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi!"}]}],
            "temperature": 0.5,
            "stream": True,
        }
    ]


def test_tool_call_then_final_answer(run: Any, fixture: Fixture, toolbox: Any, add_calls: list[Any]) -> None:
    """The whole loop: a streamed tool call (split input JSON), the tool, the result back, the answer."""
    server = FakeAnthropic(fixture("tool_use_answer.sse"), fixture("final_answer.sse"))
    agent = agent_with(server, toolbox)
    seen, outcome = run(stream_all, agent, "What is 2+3?")

    assert outcome.reason == "completed", outcome.error
    assert outcome.output == "2 + 3 = 5."
    assert add_calls == [{"a": 2, "b": 3}]
    assert outcome.stats.llm_calls == 2 and outcome.stats.tool_calls == 1
    assert outcome.usage == Usage(472 + 600, 89 + 9, 2)

    texts = [e.text for e in seen if isinstance(e, events.TextDelta)]
    assert texts == ["Let me", " add those.", "2 + 3", " = 5."]
    call_deltas = [e for e in seen if isinstance(e, events.ToolCallDelta)]
    assert {(e.index, e.call_id, e.name) for e in call_deltas} == {(0, "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "add")}
    assert "".join(e.arguments for e in call_deltas) == '{"a": 2, "b": 3}'
    kinds = [type(e).__name__ for e in seen]
    assert (
        kinds.index("ToolCallStarted") < kinds.index("ToolCallFinished") < len(kinds) - kinds[::-1].index("TextDelta")
    )

    first, second = server.bodies
    assert first["tools"] == [
        {
            "name": "add",
            "description": "Add two integers.",
            "input_schema": {
                "type": "object",
                "properties": {
                    "a": {"type": "integer", "description": "the first addend."},
                    "b": {"type": "integer", "description": "the second addend."},
                },
                "required": ["a", "b"],
                "additionalProperties": False,
            },
        }
    ]
    assert first["tool_choice"] == {"type": "auto"}
    assert second["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "What is 2+3?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me add those."},
                {"type": "tool_use", "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "name": "add", "input": {"a": 2, "b": 3}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
                    "content": "5",
                    "is_error": False,
                }
            ],
        },
    ]


def test_parallel_tool_results_go_back_in_one_user_message(run: Any, fixture: Fixture, toolbox: Any) -> None:
    server = FakeAnthropic(fixture("two_tool_uses.sse"), fixture("final_answer.sse"))
    outcome = run(agent_with(server, toolbox).run, "Add 1+1 and 10+20.")
    assert outcome.reason == "completed", outcome.error
    last = server.bodies[1]["messages"][-1]
    assert last == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01A09q90qw90lq917835lq9", "content": "2", "is_error": False},
            {"type": "tool_result", "tool_use_id": "toolu_01B7ax3kQ2pd", "content": "30", "is_error": False},
        ],
    }
    assert len(server.bodies[1]["messages"]) == 3


def test_tool_choice_patches_reach_the_request(run: Any, fixture: Fixture, toolbox: Any) -> None:
    server = FakeAnthropic(fixture("tool_use_answer.sse"), fixture("final_answer.sse"))
    outcome = run(agent_with(server, toolbox, ForceTool("add")).run, "What is 2+3?")
    assert outcome.reason == "completed", outcome.error
    assert [b["tool_choice"] for b in server.bodies] == [{"type": "tool", "name": "add"}, {"type": "none"}]


def test_a_failed_tool_goes_back_as_an_error_result(run: Any, fixture: Fixture, toolbox: Any) -> None:
    bad = fixture("tool_use_answer.sse").read_bytes().replace(b'" 2"', b'" \\"two\\""')
    server = FakeAnthropic(bad, fixture("final_answer.sse"))
    outcome = run(agent_with(server, toolbox).run, "What is 2+3?")
    assert outcome.reason == "completed", outcome.error
    (result,) = server.bodies[1]["messages"][-1]["content"]
    assert result["type"] == "tool_result" and result["is_error"] is True
    assert "parameter a" in result["content"]


def test_a_retryable_error_mid_stream_is_retried(run: Any, fixture: Fixture) -> None:
    retry = RetryRetryable()
    server = FakeAnthropic(fixture("error_mid_stream.sse"), fixture("text_answer.sse"))
    seen, outcome = run(stream_all, agent_with(server, retry), "Tell me a story.")
    assert outcome.reason == "completed", outcome.error
    assert outcome.output == "Hello! How can I help you today?"
    assert outcome.stats.retries == 1
    assert [getattr(e, "retryable", None) for e in retry.errors] == [True]
    texts = [e.text for e in seen if isinstance(e, events.TextDelta)]
    assert texts[:2] == ["Once upon", " a time"]  # the failed attempt had streamed these
    (scheduled,) = [e for e in seen if isinstance(e, events.RetryScheduled)]
    assert "overloaded_error: Overloaded" in scheduled.error
    assert server.bodies[0] == server.bodies[1]


def test_an_invalid_request_fails_the_run_with_the_server_message(run: Any, fixture: Fixture) -> None:
    retry = RetryRetryable()
    server = FakeAnthropic(fixture("invalid_request_400.http"))
    outcome = run(agent_with(server, retry).run, "hi")
    assert outcome.reason == "error"
    assert outcome.error is not None
    assert "HTTP 400 Bad Request: invalid_request_error: messages: roles must alternate" in outcome.error.message
    assert outcome.error.plugin == "anthropic-config"
    assert len(server.requests) == 1  # not retried


# ----------------------------------------------------------------------------- cancellation


class Hanging(httpx.AsyncByteStream):
    """Sends the first events of an answer, then blocks until cancelled; records closing."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.data
        await anyio.sleep_forever()

    async def aclose(self) -> None:
        self.closed = True


def first_text_events(fixture: Fixture) -> bytes:
    """The text answer up to its first text delta ("Hello")."""
    data = fixture("text_answer.sse").read_bytes()
    second_delta = data.index(b"event: content_block_delta", data.index(b"event: content_block_delta") + 1)
    return data[:second_delta]


def test_run_timeout_mid_stream_cancels_and_closes_the_stream(run: Any, fixture: Fixture) -> None:
    stream = Hanging(first_text_events(fixture))
    server = FakeAnthropic(
        lambda request: httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=stream),
        fixture("text_answer.sse"),
    )
    agent = agent_with(server)

    async def main() -> tuple[Any, Any, list[str]]:
        texts: list[str] = []
        async with agent.stream("hi", timeout=0.3) as events_:
            async for event in events_:
                if isinstance(event, events.TextDelta):
                    texts.append(event.text)
        second = await agent.run("again")
        return events_.outcome, second, texts

    first, second, texts = run(main)
    assert texts == ["Hello"]  # the first chunk arrived before the stream hung
    assert first.reason == "cancelled"
    assert stream.closed
    assert second.reason == "completed" and second.output == "Hello! How can I help you today?"


def test_run_timeout_with_agent_run(run: Any, fixture: Fixture) -> None:
    stream = Hanging(first_text_events(fixture))
    server = FakeAnthropic(
        lambda request: httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=stream)
    )

    async def main() -> Any:
        with anyio.fail_after(10):
            return await agent_with(server).run("hi", timeout=0.2)

    outcome = run(main)
    assert outcome.reason == "cancelled"
    assert stream.closed


def test_leaving_the_event_stream_early_closes_the_http_stream(run: Any, fixture: Fixture) -> None:
    stream = Hanging(first_text_events(fixture))
    server = FakeAnthropic(
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

    assert run(main) == ["Hello"]
    assert stream.closed


def test_one_plugin_serves_trio_then_asyncio() -> None:
    """The client (connection pool) is per event loop: reusing the agent across loops works."""
    import asyncio

    import trio

    server = FakeAnthropic(*[text_stream(str(i)) for i in range(4)])
    agent = agent_with(server)
    outputs = [trio.run(agent.run, "a").output, asyncio.run(agent.run("b")).output]
    outputs += [trio.run(agent.run, "c").output, asyncio.run(agent.run("d")).output]
    assert outputs == ["0", "1", "2", "3"]
    assert [json.loads(r.content)["messages"][-1]["content"][0]["text"] for r in server.requests] == list("abcd")
