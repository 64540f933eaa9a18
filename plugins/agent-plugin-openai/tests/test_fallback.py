"""Servers that will not stream tool calls, a configured tool choice, and usage a server does not report.

The real llama.cpp server's side of these is in test_llamacpp_server.py; here
`FakeServer` plays the documented shapes of each refusal, under trio and asyncio.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent_kernel import Message, Request, ToolSpec, Usage
from agent_kernel.config import load_config
from agent_kernel.errors import InferenceError
from agent_plugin_openai import OpenAI, OpenAIExecutor
from agent_plugin_openai.testing import FakeServer, chunk, sse, text_chunks, tool_call_chunks

BASE = "http://fake.test/v1"
ADD = ToolSpec("add", "Add.", {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}})


class Sink:
    def __init__(self) -> None:
        self.texts: list[str] = []
        self.calls: list[tuple[int, str, str, str]] = []

    def text(self, text: str) -> None:
        self.texts.append(text)

    def tool_call(self, index: int, call_id: str, name: str, arguments: str) -> None:
        self.calls.append((index, call_id, name, arguments))


def ask(*, tools: tuple[ToolSpec, ...] = (ADD,), choice: str = "auto") -> Request:
    return Request("openai:fake", (Message("user", "What is 2+3?"),), tools, choice)


def executor(server: FakeServer, **options: Any) -> OpenAIExecutor:
    return OpenAIExecutor("fake-model", base_url=BASE, api_key="sk-test", transport=server.transport, **options)


def plain_call() -> httpx.Response:
    """A non-streamed answer calling ``add``."""
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "add", "arguments": '{"a":2,"b":3}'}}],
    }
    return httpx.Response(
        200,
        json={
            "object": "chat.completion",
            "model": "fake-model",
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 30, "completion_tokens": 8, "total_tokens": 38},
        },
    )


EMPTY_STREAM = b""  # what llama-cpp-python's server sends when it cannot stream a tool call
REFUSED_HTTP = httpx.Response(500, json={"error": {"code": 500, "message": "Cannot use tools with stream"}})
REFUSED_IN_STREAM = sse('event: error\ndata: {"error": {"message": "streaming tool calls are not supported"}}\n\n')


@pytest.mark.parametrize(
    ("refusal", "said"),
    [
        (EMPTY_STREAM, "before its first chunk"),
        (REFUSED_HTTP, "HTTP 500: Cannot use tools with stream"),
        (REFUSED_IN_STREAM, "streaming tool calls are not supported"),
    ],
    ids=["empty-stream", "http-error", "error-event"],
)
def test_a_refused_streamed_tool_request_is_sent_again_unstreamed_and_remembered(
    run: Any, caplog: pytest.LogCaptureFixture, refusal: Any, said: str
) -> None:
    server = FakeServer(refusal, plain_call(), plain_call(), sse(*text_chunks("plain text")))
    ex = executor(server)

    async def main() -> Any:
        first = await ex.infer(ask(), Sink())
        second = await ex.infer(ask(), Sink())  # remembered: not streamed at all
        third = await ex.infer(ask(tools=()), Sink())  # without tools it streams as before
        return first, second, third

    with caplog.at_level(logging.WARNING, logger="agent_plugin_openai"):
        first, second, third = run(main)
    (call,) = first.message.tool_calls
    assert (call.name, dict(call.arguments)) == ("add", {"a": 2, "b": 3})
    assert first.usage == Usage(30, 8, 1) and second.message.tool_calls == first.message.tool_calls
    assert third.message.content == "plain text"
    assert [b.get("stream", False) for b in server.bodies] == [True, False, False, True]
    assert server.bodies[1]["tools"] == server.bodies[0]["tools"]
    assert ex.streams_tools is False
    (warning,) = [r.getMessage() for r in caplog.records if "sent again without streaming" in r.getMessage()]
    assert said in warning and BASE in warning


def test_a_connection_the_refusing_server_dropped_is_not_the_answer(run: Any) -> None:
    def reset(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("socket connection broken: [Errno 104] Connection reset by peer")

    server = FakeServer(EMPTY_STREAM, reset, plain_call())

    async def main() -> Any:
        return await executor(server).infer(ask(), Sink())

    assert run(main).message.tool_calls[0].name == "add"
    assert [b.get("stream", False) for b in server.bodies] == [True, False, False]


def test_when_the_unstreamed_request_fails_too_both_reasons_are_told(run: Any) -> None:
    server = FakeServer(EMPTY_STREAM, httpx.Response(400, json={"error": {"message": "tools are not supported"}}))

    async def main() -> Any:
        return await executor(server).infer(ask(), Sink())

    with pytest.raises(InferenceError) as info:
        run(main)
    message = str(info.value)
    assert "HTTP 400" in message and "tools are not supported" in message
    assert "sent without streaming because" in message and "before its first chunk" in message
    assert info.value.status == 400 and not info.value.retryable


def test_other_failures_of_a_streamed_tool_request_do_not_fall_back(run: Any) -> None:
    cut = sse(chunk(role="assistant"), done=False)  # a stream that breaks off after it started
    server = FakeServer(cut, httpx.Response(500, json={"error": {"message": "out of memory"}}))
    ex = executor(server)

    async def main(n: int) -> Any:
        return await ex.infer(ask(), Sink())

    with pytest.raises(InferenceError, match="ended before the answer was complete"):
        run(main, 1)
    with pytest.raises(InferenceError, match=r"HTTP 500 .*out of memory"):
        run(main, 2)
    assert [b["stream"] for b in server.bodies] == [True, True] and ex.streams_tools is None


def test_an_empty_stream_without_tools_is_still_an_error(run: Any) -> None:
    server = FakeServer(EMPTY_STREAM)

    async def main() -> Any:
        return await executor(server).infer(ask(tools=()), Sink())

    with pytest.raises(InferenceError, match=r"ended before the answer was complete .* after 0 chunks"):
        run(main)
    assert len(server.bodies) == 1


def test_the_configured_tool_choice_replaces_auto_only(run: Any) -> None:
    answers = [sse(*tool_call_chunks(("add", '{"a": 1, "b": 2}'))) for _ in range(4)]
    server = FakeServer(*answers)
    ex = executor(server, tool_choice="add")
    mul = ToolSpec("mul", "Multiply.")

    async def main() -> None:
        await ex.infer(ask(), Sink())  # the kernel's default "auto": the configured choice
        await ex.infer(ask(choice="none"), Sink())  # a plugin's choice wins
        await ex.infer(ask(tools=(mul,)), Sink())  # "add" is not offered: auto stays
        await ex.infer(ask(tools=()), Sink())  # no tools: no tool_choice at all

    run(main)
    assert [b.get("tool_choice") for b in server.bodies] == [
        {"type": "function", "function": {"name": "add"}},
        "none",
        "auto",
        None,
    ]


def test_tool_choice_comes_from_agent_toml(tmp_path: Path) -> None:
    (tmp_path / "agent.toml").write_text(
        '[agent]\nmodel = "openai:m"\n[plugins.openai]\nbase_url = "http://127.0.0.1:9/v1"\ntool_choice = "required"\n'
    )
    config = load_config(tmp_path / "agent.toml", env={}, user=False)
    (plugin,) = config.plugin_objects()
    assert isinstance(plugin, OpenAI)
    assert plugin.executor("m").tool_choice == "required"
    assert config.as_dict()["plugins"]["openai"]["tool_choice"] == "required"


def test_usage_the_server_does_not_report_is_said_once(run: Any, caplog: pytest.LogCaptureFixture) -> None:
    server = FakeServer(sse(*text_chunks("a", usage=None)), sse(*text_chunks("b", usage=None)), sse(*text_chunks("c")))
    ex = executor(server)

    async def main() -> list[Any]:
        return [(await ex.infer(ask(tools=()), Sink())).usage for _ in range(3)]

    assert ex.usage_reported is None
    with caplog.at_level(logging.WARNING, logger="agent_plugin_openai"):
        usages = run(main)
    assert usages == [Usage(0, 0, 1), Usage(0, 0, 1), Usage(11, 7, 1)]
    assert server.bodies[0]["stream_options"] == {"include_usage": True}
    (warning,) = [r.getMessage() for r in caplog.records if "no token usage" in r.getMessage()]
    assert "stream_options.include_usage" in warning and "unknown" in warning
    assert ex.usage_reported is True  # the last answer carried it
