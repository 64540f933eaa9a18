"""A fake Messages API for tests, built on ``httpx.MockTransport``.

Usage::

    server = FakeAnthropic(text_stream("Hel", "lo"), tool_use_stream("add", ['{"a": 1', ', "b": 2}']))
    agent = Agent(model="anthropic:claude-x", plugins=[Anthropic(api_key="k", transport=server.transport)])

Each request is answered by the next scripted answer:

- ``bytes``: a server-sent-events body, served with HTTP 200 ``text/event-stream``
  in small pieces (so the client has to reassemble lines);
- a `pathlib.Path`: a saved answer. ``*.sse`` files are SSE bodies as above;
  ``*.http`` files are whole HTTP responses (status line, headers, blank line, body);
- an ``httpx.Response``;
- a function of the ``httpx.Request`` returning any of these.

``server.requests`` holds the requests, ``server.bodies`` their decoded JSON bodies.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import httpx

__all__ = [
    "FakeAnthropic",
    "RecordingDeltas",
    "error_event",
    "load_http",
    "message_start",
    "sse",
    "text_stream",
    "tool_use_stream",
]

Answer = bytes | Path | httpx.Response | Callable[[httpx.Request], Any]


def sse(*events: dict[str, Any]) -> bytes:
    """Events as the API sends them: ``event: <type>`` and ``data: <json>``, blank-line separated."""
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()


def message_start(
    input_tokens: int = 10, *, model: str = "claude-x-fake", message_id: str = "msg_fake"
) -> dict[str, Any]:
    """The documented ``message_start`` event (empty content, input usage)."""
    return {
        "type": "message_start",
        "message": {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": model,
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": 1},
        },
    }


def _text_block(index: int, pieces: Iterable[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}
    ]
    out += [
        {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": piece}}
        for piece in pieces
    ]
    out.append({"type": "content_block_stop", "index": index})
    return out


def _end(stop_reason: str, output_tokens: int) -> list[dict[str, Any]]:
    return [
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": output_tokens},
        },
        {"type": "message_stop"},
    ]


def text_stream(*pieces: str, stop_reason: str = "end_turn", usage: tuple[int, int] = (10, 5)) -> bytes:
    """A streamed text answer: one text block made of `pieces`."""
    return sse(message_start(usage[0]), *_text_block(0, pieces), *_end(stop_reason, usage[1]))


def tool_use_stream(
    name: str,
    fragments: Sequence[str],
    *,
    call_id: str = "toolu_fake_1",
    text: Sequence[str] = (),
    stop_reason: str = "tool_use",
    usage: tuple[int, int] = (20, 15),
) -> bytes:
    """A streamed tool call: optional text first, then a tool_use block whose input
    arrives as the ``input_json_delta`` `fragments` (they must join to a JSON object)."""
    events: list[dict[str, Any]] = [message_start(usage[0])]
    index = 0
    if text:
        events += _text_block(0, text)
        index = 1
    events.append(
        {
            "type": "content_block_start",
            "index": index,
            "content_block": {"type": "tool_use", "id": call_id, "name": name, "input": {}},
        }
    )
    events += [
        {"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": f}}
        for f in fragments
    ]
    events.append({"type": "content_block_stop", "index": index})
    return sse(*events, *_end(stop_reason, usage[1]))


def error_event(error_type: str, message: str) -> dict[str, Any]:
    """A documented ``error`` event, e.g. ``error_event("overloaded_error", "Overloaded")``."""
    return {"type": "error", "error": {"type": error_type, "message": message}}


def load_http(path: Path | str) -> httpx.Response:
    """An ``httpx.Response`` from a saved HTTP response (status line, headers, blank line, body)."""
    raw = Path(path).read_bytes()
    head, _, body = raw.partition(b"\n\n")
    lines = head.decode().splitlines()
    _, status, *_ = lines[0].split(" ", 2)
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip():
            headers.append((name.strip(), value.strip()))
    return httpx.Response(int(status), headers=headers, content=body)


class _Pieces(httpx.AsyncByteStream):
    """An SSE body served a few bytes at a time."""

    def __init__(self, data: bytes, size: int) -> None:
        self.data = data
        self.size = size

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.data), self.size):
            yield self.data[start : start + self.size]


class FakeAnthropic:
    """A scripted Messages API endpoint: ``transport`` answers each request with the next answer.

    Args:
        *answers: one per expected request (see the module docstring).
        piece_size: bytes per piece when serving an SSE body.
    """

    def __init__(self, *answers: Answer, piece_size: int = 17) -> None:
        self.answers = list(answers)
        self.piece_size = piece_size
        self.requests: list[httpx.Request] = []
        self.transport = httpx.MockTransport(self._handle)

    @property
    def bodies(self) -> list[Any]:
        """The JSON body of every request received."""
        return [json.loads(r.content) for r in self.requests]

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if not self.answers:
            return httpx.Response(
                500,
                json={"type": "error", "error": {"type": "api_error", "message": "FakeAnthropic has no more answers"}},
            )
        answer: Any = self.answers.pop(0)
        if callable(answer):
            answer = answer(request)
        return self.response(answer)

    def response(self, answer: Any) -> httpx.Response:
        """The ``httpx.Response`` for one scripted answer."""
        if isinstance(answer, httpx.Response):
            return answer
        if isinstance(answer, str):
            answer = Path(answer)
        if isinstance(answer, Path):
            if answer.suffix == ".http":
                return load_http(answer)
            answer = answer.read_bytes()
        if isinstance(answer, bytes):
            return httpx.Response(
                200,
                headers={"content-type": "text/event-stream; charset=utf-8", "request-id": "req_fake"},
                stream=_Pieces(answer, self.piece_size),
            )
        raise TypeError(f"FakeAnthropic cannot serve {answer!r}")


class RecordingDeltas:
    """A `Deltas` sink that keeps what an executor streamed (for calling `infer` directly)."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.calls: list[tuple[int, str, str, str]] = []

    def text(self, text: str) -> None:
        self.texts.append(text)

    def tool_call(self, index: int, call_id: str, name: str, arguments: str) -> None:
        self.calls.append((index, call_id, name, arguments))

    def arguments(self, index: int) -> str:
        """The argument fragments of tool call `index`, joined."""
        return "".join(fragment for i, _, _, fragment in self.calls if i == index)
