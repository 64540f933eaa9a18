"""`OpenAIExecutor` on the documented streaming wire format, under trio and asyncio.

Every test runs twice through the `run` fixture: once in `trio.run`, once in
`asyncio.run`. The server is `FakeServer` (an ``httpx.MockTransport``) serving SSE
bodies in 7-byte pieces, so lines and JSON objects arrive split.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.abc
import httpx
import pytest

from agent_kernel import Message, Request, ToolCall, ToolSpec, Usage
from agent_kernel.errors import InferenceError
from agent_plugin_openai import INVALID_ARGUMENTS, OpenAIExecutor
from agent_plugin_openai.testing import FakeServer, chunk, sse, text_chunks, tool_call_chunks

BASE = "http://fake.test/v1"
ADD = ToolSpec("add", "Add.", {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}})
MUL = ToolSpec("mul", "Multiply.")


class Sink:
    def __init__(self) -> None:
        self.texts: list[str] = []
        self.calls: list[tuple[int, str, str, str]] = []

    def text(self, text: str) -> None:
        self.texts.append(text)

    def tool_call(self, index: int, call_id: str, name: str, arguments: str) -> None:
        self.calls.append((index, call_id, name, arguments))


def ask(*, tools: tuple[ToolSpec, ...] = (), choice: str = "auto", **settings: Any) -> Request:
    return Request("openai:fake", (Message("user", "hello"),), tools, choice, settings)


def executor(server: FakeServer, **options: Any) -> OpenAIExecutor:
    options.setdefault("api_key", "sk-test")
    return OpenAIExecutor("fake-model", base_url=BASE, transport=server.transport, **options)


def test_text_stream(run: Any) -> None:
    server = FakeServer(sse(*text_chunks("Hel", "lo", ", world")))
    sink = Sink()

    async def main() -> Any:
        return await executor(server, settings={"temperature": 0}).infer(ask(max_tokens=5), sink)

    response = run(main)
    assert sink.texts == ["Hel", "lo", ", world"]
    assert response.message == Message("assistant", "Hello, world")
    assert response.usage == Usage(11, 7, 1)
    assert response.stop_reason == "end_turn"
    assert response.model == "fake-model"
    (request,) = server.requests
    assert str(request.url) == BASE + "/chat/completions"
    assert request.method == "POST"
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == "text/event-stream"
    assert server.bodies[0] == {
        "model": "fake-model",
        "messages": [{"role": "user", "content": "hello"}],
        "temperature": 0,
        "max_tokens": 5,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


class GatedStream(httpx.AsyncByteStream):
    """Serves `first`, waits for `gate`, then serves `rest`; records whether it was closed."""

    def __init__(self, first: bytes, rest: bytes, gate: Any) -> None:
        self.first, self.rest, self.gate = first, rest, gate
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.first
        await self.gate()
        yield self.rest

    async def aclose(self) -> None:
        self.closed = True


def test_text_deltas_arrive_before_the_stream_ends(run: Any) -> None:
    """The second half is only served after the executor reported the first delta."""
    events = text_chunks("first", " second")
    first, rest = sse(*events[:2], done=False), sse(*events[2:])
    state: dict[str, Any] = {}

    class Waiting(Sink):
        def text(self, text: str) -> None:
            super().text(text)
            state["event"].set()

    async def gate() -> None:
        with anyio.fail_after(5):  # a buffering executor would never get here
            await state["event"].wait()

    stream = GatedStream(first, rest, gate)
    server = FakeServer(
        lambda request: httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=stream)
    )
    sink = Waiting()

    async def main() -> Any:
        state["event"] = anyio.Event()
        return await executor(server).infer(ask(), sink)

    assert run(main).message.content == "first second"
    assert sink.texts == ["first", " second"]
    assert stream.closed


def test_streamed_tool_calls_are_assembled_by_index(run: Any) -> None:
    calls = [("add", '{"a": 2, "b": 3}', "call_A"), ("mul", '{"x": [1, 2], "y": "z"}', "call_B")]
    server = FakeServer(sse(*tool_call_chunks(*calls, split=3)), piece=5)
    sink = Sink()

    async def main() -> Any:
        return await executor(server).infer(ask(tools=(ADD, MUL), choice="required"), sink)

    response = run(main)
    assert response.message.content == ""
    assert response.message.tool_calls == (
        ToolCall("call_A", "add", {"a": 2, "b": 3}),
        ToolCall("call_B", "mul", {"x": [1, 2], "y": "z"}),
    )
    assert response.stop_reason == "tool_use"
    assert response.usage == Usage(20, 9, 1)
    for index, (name, arguments, call_id) in enumerate(calls):
        mine = [c for c in sink.calls if c[0] == index]
        assert {(c[1], c[2]) for c in mine} == {(call_id, name)}
        assert "".join(c[3] for c in mine) == arguments
        assert len(mine) > 3  # reported fragment by fragment
    assert server.bodies[0]["tool_choice"] == "required"
    assert server.bodies[0]["tools"][0] == {
        "type": "function",
        "function": {"name": "add", "description": "Add.", "parameters": dict(ADD.parameters)},
    }


def test_interleaved_tool_call_deltas(run: Any) -> None:
    """Deltas of two calls alternate; ids come only in each call's first delta."""

    def part(index: int, arguments: str, **head: Any) -> dict[str, Any]:
        function: dict[str, Any] = {"arguments": arguments}
        if "name" in head:
            function["name"] = head.pop("name")
        return chunk(tool_calls=[{"index": index, **head, "function": function}])

    events = [
        chunk(role="assistant", content=None),
        part(0, "", id="c0", type="function", name="add"),
        part(1, '{"b"', id="c1", type="function", name="add"),
        part(0, '{"a": 1'),
        part(1, ": 2}"),
        part(0, "}"),
        chunk(finish_reason="tool_calls"),
    ]
    server = FakeServer(sse(*events))

    async def main() -> Any:
        return await executor(server).infer(ask(tools=(ADD,)), Sink())

    assert run(main).message.tool_calls == (ToolCall("c0", "add", {"a": 1}), ToolCall("c1", "add", {"b": 2}))


def test_text_and_tool_call_in_one_turn_without_ids(run: Any) -> None:
    events = [
        chunk("Let me add.", role="assistant"),
        chunk(tool_calls=[{"index": 0, "function": {"name": "add", "arguments": '{"a":1,"b":1}'}}]),
        chunk(finish_reason="tool_calls", usage=(3, 4)),  # usage on the final chunk
    ]
    server = FakeServer(sse(*events))

    async def main() -> Any:
        return await executor(server).infer(ask(tools=(ADD,)), Sink())

    response = run(main)
    assert response.message.content == "Let me add."
    (call,) = response.message.tool_calls
    assert call.name == "add" and call.arguments == {"a": 1, "b": 1}
    assert call.id.startswith("call_") and len(call.id) > 10  # generated when the server gives none
    assert response.usage == Usage(3, 4, 1)


@pytest.mark.parametrize(
    ("finish", "stop"),
    [("stop", "end_turn"), ("length", "max_tokens"), ("content_filter", "refusal"), ("something_new", "end_turn")],
)
def test_finish_reason_maps_to_stop_reason(run: Any, finish: str, stop: str) -> None:
    server = FakeServer(sse(*text_chunks("x", finish_reason=finish)))

    async def main() -> Any:
        return await executor(server).infer(ask(), Sink())

    assert run(main).stop_reason == stop


def test_without_a_usage_chunk_the_request_still_counts(run: Any) -> None:
    server = FakeServer(sse(*text_chunks("x", usage=None)))

    async def main() -> Any:
        return await executor(server).infer(ask(), Sink())

    assert run(main).usage == Usage(0, 0, 1)


def test_invalid_json_arguments_do_not_fail_the_inference(run: Any) -> None:
    server = FakeServer(sse(*tool_call_chunks(("add", '{"a": 1, "b": '))))  # cut off, e.g. by max_tokens

    async def main() -> Any:
        return await executor(server).infer(ask(tools=(ADD,)), Sink())

    (call,) = run(main).message.tool_calls
    assert call.name == "add"
    assert call.arguments[INVALID_ARGUMENTS]["raw"] == '{"a": 1, "b": '
    assert "invalid JSON" in call.arguments[INVALID_ARGUMENTS]["error"]


def test_malformed_json_chunk_is_a_clear_error(run: Any) -> None:
    server = FakeServer(sse(chunk("ok", role="assistant"), 'data: {"choices": [{"delta": {"content": "x"\n\n'))

    async def main() -> Any:
        return await executor(server).infer(ask(), Sink())

    with pytest.raises(
        InferenceError, match=r"malformed answer from http://fake.test/v1/chat/completions: not JSON"
    ) as info:
        run(main)
    assert not info.value.retryable
    assert '{"choices"' in str(info.value)


def test_chunk_of_the_wrong_shape_is_a_clear_error(run: Any) -> None:
    server = FakeServer(sse({"choices": "nope"}))

    async def main() -> Any:
        return await executor(server).infer(ask(), Sink())

    with pytest.raises(InferenceError, match=r"malformed answer.*'choices' is str, not a list"):
        run(main)


def test_stream_that_stops_early_is_retryable(run: Any) -> None:
    server = FakeServer(sse(chunk("partial", role="assistant"), done=False))

    async def main() -> Any:
        return await executor(server).infer(ask(), Sink())

    with pytest.raises(InferenceError, match="ended before the answer was complete") as info:
        run(main)
    assert info.value.retryable


def test_stream_without_done_after_a_finish_reason_is_accepted(run: Any) -> None:
    server = FakeServer(sse(*text_chunks("fine"), done=False))

    async def main() -> Any:
        return await executor(server).infer(ask(), Sink())

    assert run(main).message.content == "fine"


@pytest.mark.parametrize(
    ("error_event", "retryable", "status"),
    [
        (
            'data: {"error": {"message": "The server had an error while processing your request.", "type": "server_error"}}\n\n',
            True,
            None,
        ),
        ('event: error\ndata: {"message": "model overloaded", "code": 503}\n\n', True, 503),
        ('data: {"error": {"object": "error", "message": "context too long", "code": 400}}\n\n', False, 400),
    ],
)
def test_error_inside_the_stream(run: Any, error_event: str, retryable: bool, status: int | None) -> None:
    server = FakeServer(sse(chunk("Hel", role="assistant"), error_event))
    sink = Sink()

    async def main() -> Any:
        return await executor(server).infer(ask(), sink)

    with pytest.raises(InferenceError, match="reported an error mid-stream") as info:
        run(main)
    message = json.loads(error_event.split("data: ", 1)[1])
    detail = message.get("error", message)["message"]
    assert detail in str(info.value)
    assert info.value.retryable is retryable
    assert info.value.status == status
    assert sink.texts == ["Hel"]


def test_connection_cut_mid_stream_is_retryable(run: Any) -> None:
    class Broken(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield sse(chunk("Hel", role="assistant"), done=False)
            raise httpx.ReadError("peer closed connection without sending complete message body")

    server = FakeServer(
        lambda request: httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=Broken())
    )

    async def main() -> Any:
        return await executor(server).infer(ask(), Sink())

    with pytest.raises(
        InferenceError, match=r"connection to http://fake.test/v1/chat/completions failed: ReadError"
    ) as info:
        run(main)
    assert info.value.retryable


def test_cancelling_mid_stream_closes_the_http_stream(run: Any) -> None:
    events: dict[str, Any] = {}

    async def never() -> None:
        events["waiting"].set()
        await anyio.sleep_forever()

    stream = GatedStream(sse(chunk("Hel", role="assistant"), done=False), b"", never)
    server = FakeServer(
        lambda request: httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=stream)
    )
    sink = Sink()

    async def main() -> bool:
        events["waiting"] = anyio.Event()
        ex = executor(server)
        async with anyio.create_task_group() as tg:

            async def infer() -> None:
                await ex.infer(ask(), sink)

            tg.start_soon(infer)
            with anyio.fail_after(5):
                await events["waiting"].wait()
            assert not stream.closed
            tg.cancel_scope.cancel()
        return stream.closed

    assert run(main) is True
    assert sink.texts == ["Hel"]


def test_plain_json_answer(run: Any) -> None:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "fake-model-2024",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": "c9", "type": "function", "function": {"name": "add", "arguments": '{ "a":1, "b":2} '}}
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 35, "completion_tokens": 13, "total_tokens": 48},
    }
    for stream in (False, True):  # True: a server that ignores "stream" and answers JSON
        server = FakeServer(httpx.Response(200, json=body))
        sink = Sink()

        async def main(stream: bool = stream, server: FakeServer = server, sink: Sink = sink) -> Any:
            return await executor(server, stream=stream).infer(ask(tools=(ADD,)), sink)

        response = run(main)
        assert response.message.tool_calls == (ToolCall("c9", "add", {"a": 1, "b": 2}),)
        assert response.usage == Usage(35, 13, 1)
        assert response.model == "fake-model-2024"
        assert sink.calls == [(0, "c9", "add", '{ "a":1, "b":2} ')]
        assert ("stream" in server.bodies[0]) is stream


def test_an_answer_that_is_not_chat_completions_is_refused(run: Any) -> None:
    server = FakeServer(httpx.Response(200, headers={"content-type": "text/html"}, text="<html>Login required</html>"))

    async def main() -> Any:
        return await executor(server).infer(ask(), Sink())

    with pytest.raises(
        InferenceError, match=r"content-type 'text/html', not a Chat Completions answer: <html>Login required"
    ) as info:
        run(main)
    assert not info.value.retryable


def test_a_client_you_own_is_used_and_left_open(run: Any) -> None:
    server = FakeServer(sse(*text_chunks("a")), sse(*text_chunks("b")))

    async def main() -> tuple[str, bool]:
        async with httpx.AsyncClient(transport=server.transport) as client:
            ex = OpenAIExecutor("m", base_url=BASE, client=client, headers={"OpenAI-Organization": "org-1"})
            first = await ex.infer(ask(), Sink())
            await ex.aclose()  # does not close a client it was given
            second = await ex.infer(ask(), Sink())
            return first.message.content + second.message.content, client.is_closed

    assert run(main) == ("ab", False)
    assert server.requests[0].headers["openai-organization"] == "org-1"
    assert "authorization" not in server.requests[0].headers  # no key configured, none sent


def test_the_connection_is_kept_alive_between_turns(run: Any) -> None:
    """A real loopback HTTP/1.1 server: after [DONE] the executor reads the body's end,
    so the next turn reuses the connection (against OpenAI that saves a TLS handshake)."""
    body = sse(*text_chunks("kept", " alive"))
    served: dict[str, int] = {"connections": 0, "requests": 0}

    async def handle(stream: Any) -> None:
        served["connections"] += 1
        buffer = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    buffer += await stream.receive()
                head, buffer = buffer.split(b"\r\n\r\n", 1)
                length = int(
                    next(
                        line.split(b":")[1]
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    )
                )
                while len(buffer) < length:
                    buffer += await stream.receive()
                buffer = buffer[length:]
                served["requests"] += 1
                await stream.send(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
                    + f"{len(body):x}\r\n".encode()
                    + body
                    + b"\r\n"
                )
                await anyio.sleep(0.05)  # the end of the body comes after [DONE], as from real servers
                await stream.send(b"0\r\n\r\n")
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass

    async def main() -> list[str]:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, handle)
            ex = OpenAIExecutor("m", base_url=f"http://127.0.0.1:{port}/v1")
            texts = [(await ex.infer(ask(), Sink())).message.content for _ in range(3)]
            await ex.aclose()
            tg.cancel_scope.cancel()
        return texts

    assert run(main) == ["kept alive"] * 3
    assert served == {"connections": 1, "requests": 3}
