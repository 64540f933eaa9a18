"""The executor on saved and generated streams: deltas, assembled tool calls, usage, stop reasons."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent_kernel import Message, Request, Response, ToolCall, ToolSpec, Usage
from agent_kernel.errors import InferenceError
from agent_plugin_anthropic import AnthropicExecutor
from agent_plugin_anthropic.testing import (
    FakeAnthropic,
    RecordingDeltas,
    message_start,
    sse,
    text_stream,
    tool_use_stream,
)

ADD = ToolSpec("add", "Add two integers.", {"type": "object", "properties": {"a": {"type": "integer"}}})
REQUEST = Request("anthropic:claude-x", (Message("user", "What is 2+3?"),), (ADD,))


def infer(run: Any, *answers: Any, request: Request = REQUEST, **options: Any) -> tuple[Response, RecordingDeltas]:
    """One inference against a FakeAnthropic answering `answers`; also returns the recorded deltas."""
    server = FakeAnthropic(*answers, piece_size=options.pop("piece_size", 17))
    options.setdefault("api_key", "sk-ant-test")
    executor = AnthropicExecutor("claude-x", transport=server.transport, **options)
    deltas = RecordingDeltas()

    async def main() -> Response:
        try:
            return await executor.infer(request, deltas)
        finally:
            await executor.aclose()

    response = run(main)
    infer.server = server  # type: ignore[attr-defined]
    return response, deltas


@pytest.mark.parametrize("piece_size", [1, 7, 100_000])
def test_text_answer_streams_its_deltas(run: Any, fixture: Callable[[str], Path], piece_size: int) -> None:
    response, deltas = infer(run, fixture("text_answer.sse"), piece_size=piece_size)
    assert deltas.texts == ["Hello", "!", " How can I help", " you today?"]
    assert deltas.calls == []
    assert response == Response(
        Message("assistant", "Hello! How can I help you today?"),
        Usage(25, 15, 1),
        "end_turn",
        "claude-x-20250101",
    )


def test_request_line_and_headers(run: Any, fixture: Callable[[str], Path]) -> None:
    infer(run, fixture("text_answer.sse"))
    (request,) = infer.server.requests  # type: ignore[attr-defined]
    assert request.method == "POST"
    assert str(request.url) == "https://api.anthropic.com/v1/messages"
    assert request.headers["x-api-key"] == "sk-ant-test"
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.headers["content-type"] == "application/json"
    assert "authorization" not in request.headers
    assert json.loads(request.content)["stream"] is True


@pytest.mark.parametrize(
    ("base_url", "url"),
    [
        ("http://proxy.test", "http://proxy.test/v1/messages"),
        ("http://proxy.test/anthropic/", "http://proxy.test/anthropic/v1/messages"),
        ("http://proxy.test/v1", "http://proxy.test/v1/messages"),
    ],
)
def test_base_url(run: Any, fixture: Callable[[str], Path], base_url: str, url: str) -> None:
    infer(run, fixture("text_answer.sse"), base_url=base_url)
    assert str(infer.server.requests[0].url) == url  # type: ignore[attr-defined]


def test_base_url_and_key_from_the_environment(
    run: Any, fixture: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://from-env.test")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-from-env")
    infer(run, fixture("text_answer.sse"), api_key=None, headers={"anthropic-beta": "some-beta"})
    (request,) = infer.server.requests  # type: ignore[attr-defined]
    assert str(request.url) == "http://from-env.test/v1/messages"
    assert request.headers["x-api-key"] == "sk-from-env"
    assert request.headers["anthropic-beta"] == "some-beta"


def test_tool_use_answer_assembles_split_input_json(run: Any, fixture: Callable[[str], Path]) -> None:
    response, deltas = infer(run, fixture("tool_use_answer.sse"))
    call_id = "toolu_01T1x1fJ34qAmk2tNTrN7Up6"
    assert deltas.texts == ["Let me", " add those."]
    assert deltas.calls == [
        (0, call_id, "add", ""),  # announced when the block starts
        (0, call_id, "add", '{"a":'),
        (0, call_id, "add", " 2"),
        (0, call_id, "add", ', "b"'),
        (0, call_id, "add", ": 3}"),
    ]
    assert response.message == Message("assistant", "Let me add those.", (ToolCall(call_id, "add", {"a": 2, "b": 3}),))
    assert response.stop_reason == "tool_use"
    assert response.usage == Usage(472, 89, 1)


def test_two_tool_uses_get_indexes_0_and_1(run: Any, fixture: Callable[[str], Path]) -> None:
    response, deltas = infer(run, fixture("two_tool_uses.sse"), piece_size=3)
    assert [c.arguments for c in response.message.tool_calls] == [{"a": 1, "b": 1}, {"a": 10, "b": 20}]
    assert [c.id for c in response.message.tool_calls] == ["toolu_01A09q90qw90lq917835lq9", "toolu_01B7ax3kQ2pd"]
    assert json.loads(deltas.arguments(0)) == {"a": 1, "b": 1}
    assert json.loads(deltas.arguments(1)) == {"a": 10, "b": 20}
    assert response.message.content == ""
    assert deltas.texts == []


def test_usage_counts_cached_input_tokens(run: Any, fixture: Callable[[str], Path]) -> None:
    response, _ = infer(run, fixture("final_answer.sse"))
    assert response.usage == Usage(580 + 20, 9, 1)
    assert response.message.content == "2 + 3 = 5."


def test_crlf_line_endings(run: Any, fixture: Callable[[str], Path]) -> None:
    data = fixture("tool_use_answer.sse").read_bytes().replace(b"\n", b"\r\n")
    response, _ = infer(run, data)
    assert response.message.tool_calls[0].arguments == {"a": 2, "b": 3}


def test_a_tool_without_input(run: Any) -> None:
    response, deltas = infer(run, tool_use_stream("now", [""], call_id="toolu_n"))
    assert response.message.tool_calls == (ToolCall("toolu_n", "now", {}),)
    assert deltas.calls == [(0, "toolu_n", "now", "")]


@pytest.mark.parametrize(
    ("theirs", "ours"),
    [
        ("end_turn", "end_turn"),
        ("stop_sequence", "end_turn"),
        ("max_tokens", "max_tokens"),
        ("model_context_window_exceeded", "max_tokens"),
        ("pause_turn", "max_tokens"),
        ("refusal", "refusal"),
        ("a_future_reason", "end_turn"),
    ],
)
def test_stop_reasons(run: Any, theirs: str, ours: str) -> None:
    response, _ = infer(run, text_stream("x", stop_reason=theirs))
    assert response.stop_reason == ours


def test_unknown_stop_reason_with_tool_calls_is_tool_use(run: Any) -> None:
    response, _ = infer(run, tool_use_stream("add", ['{"a": 1}'], stop_reason="a_future_reason"))
    assert response.stop_reason == "tool_use"


def test_unknown_events_blocks_and_deltas_are_skipped(run: Any) -> None:
    """Thinking blocks, citations and event types added later do not disturb the answer."""
    data = sse(
        message_start(12),
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Hmm."}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "EqQB"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "a_new_event", "whatever": 1},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Four."}},
        {"type": "content_block_stop", "index": 1},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 30}},
        {"type": "message_stop"},
    )
    data = b": a comment line\n\n" + data
    response, deltas = infer(run, data)
    assert deltas.texts == ["Four."]
    assert response.message.content == "Four."
    assert response.usage == Usage(12, 30, 1)


def test_a_stream_that_ends_after_message_delta_is_complete(run: Any, fixture: Callable[[str], Path]) -> None:
    data = fixture("text_answer.sse").read_bytes()
    data = data[: data.index(b"event: message_stop")].rstrip(b"\n")  # and no final blank line
    response, _ = infer(run, data)
    assert response.message.content == "Hello! How can I help you today?"


def test_a_stream_cut_short_is_a_retryable_error(run: Any, fixture: Callable[[str], Path]) -> None:
    data = fixture("tool_use_answer.sse").read_bytes()
    data = data[: data.index(b"event: message_delta")]
    with pytest.raises(InferenceError) as info:
        infer(run, data)
    assert info.value.retryable
    assert "ended before the answer was complete" in str(info.value)
    assert "after 13 events" in str(info.value)  # message_start ... the last content_block_stop


def test_cut_off_by_max_tokens_inside_tool_input(run: Any) -> None:
    data = tool_use_stream("add", ['{"a": 1, "b"'], stop_reason="max_tokens")
    with pytest.raises(InferenceError) as info:
        infer(run, data, settings={"max_tokens": 64})
    assert not info.value.retryable
    assert "cut off at max_tokens=64 while writing the arguments of tool 'add'" in str(info.value)


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        (b"event: message_start\ndata: {not json\n\n", "not JSON"),
        (sse(message_start(), {"type": "content_block_delta", "index": 3, "delta": {}}), "never started"),
        (tool_use_stream("add", ["[1, 2]"]), "not a JSON object"),
        (tool_use_stream("add", ['{"a": 1']), "is not JSON"),
    ],
)
def test_malformed_streams_are_not_retryable(run: Any, data: bytes, complaint: str) -> None:
    with pytest.raises(InferenceError) as info:
        infer(run, data)
    assert not info.value.retryable
    assert "malformed answer from https://api.anthropic.com/v1/messages" in str(info.value)
    assert complaint in str(info.value)


def test_not_streaming(run: Any) -> None:
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-x-20250101",
        "content": [
            {"type": "text", "text": "Adding."},
            {"type": "tool_use", "id": "toolu_9", "name": "add", "input": {"a": 2, "b": 3}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 40, "output_tokens": 12},
    }
    response, deltas = infer(run, httpx.Response(200, json=message), stream=False)
    assert "stream" not in json.loads(infer.server.requests[0].content)  # type: ignore[attr-defined]
    assert infer.server.requests[0].headers["accept"] == "application/json"  # type: ignore[attr-defined]
    assert response == Response(
        Message("assistant", "Adding.", (ToolCall("toolu_9", "add", {"a": 2, "b": 3}),)),
        Usage(40, 12, 1),
        "tool_use",
        "claude-x-20250101",
    )
    assert deltas.texts == ["Adding."]
    assert json.loads(deltas.arguments(0)) == {"a": 2, "b": 3}
