"""Request mapping, argument parsing and SSE decoding: pure functions, no I/O."""

from __future__ import annotations

import json
from types import MappingProxyType

import pytest

from agent_kernel import Message, Request, ToolCall, ToolSpec
from agent_kernel.errors import InferenceError
from agent_plugin_openai import INVALID_ARGUMENTS
from agent_plugin_openai._wire import (
    Accumulator,
    Malformed,
    SSEDecoder,
    build_body,
    message_to_wire,
    parse_arguments,
    tool_choice_to_wire,
)

ADD = ToolSpec(
    "add",
    "Add two integers.",
    {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]},
)
NOW = ToolSpec("now")


class Sink:
    def __init__(self) -> None:
        self.texts: list[str] = []
        self.calls: list[tuple[int, str, str, str]] = []

    def text(self, text: str) -> None:
        self.texts.append(text)

    def tool_call(self, index: int, call_id: str, name: str, arguments: str) -> None:
        self.calls.append((index, call_id, name, arguments))


def request(*messages: Message, tools: tuple[ToolSpec, ...] = (), choice: str = "auto", **settings: object) -> Request:
    return Request("openai:m", messages, tools, choice, settings)


def test_messages_map_to_chat_messages() -> None:
    call = ToolCall("call_1", "add", {"a": 2, "b": MappingProxyType({"x": (1, 2)})})
    body = build_body(
        "gpt-test",
        request(
            Message("system", "Be brief."),
            Message("user", "2+3?"),
            Message("assistant", "", (call,)),
            Message("tool", "5", tool_call_id="call_1", is_error=False),
            Message("assistant", "It is 5."),
        ),
    )
    assert body["model"] == "gpt-test"
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "2+3?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "add", "arguments": '{"a":2,"b":{"x":[1,2]}}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "5"},
        {"role": "assistant", "content": "It is 5."},
    ]
    json.dumps(body)  # the body is plain JSON


def test_assistant_content_is_never_null() -> None:
    wire = message_to_wire(Message("assistant", "", (ToolCall("c", "now"),)))
    assert wire["content"] == ""
    assert json.loads(wire["tool_calls"][0]["function"]["arguments"]) == {}


def test_invalid_arguments_go_back_as_an_empty_object() -> None:
    call = ToolCall("c", "add", parse_arguments('{"a": 1,'))
    wire = message_to_wire(Message("assistant", "", (call,)))
    assert wire["tool_calls"][0]["function"]["arguments"] == "{}"


def test_tools_and_tool_choice() -> None:
    body = build_body("m", request(Message("user", "hi"), tools=(ADD, NOW)))
    assert body["tools"] == [
        {
            "type": "function",
            "function": {"name": "add", "parameters": dict(ADD.parameters), "description": "Add two integers."},
        },
        {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}},
    ]
    assert body["tool_choice"] == "auto"
    json.loads(json.dumps(body, default=dict))


@pytest.mark.parametrize(
    ("choice", "wire"),
    [
        ("auto", "auto"),
        ("none", "none"),
        ("required", "required"),
        ("add", {"type": "function", "function": {"name": "add"}}),
    ],
)
def test_tool_choice_values(choice: str, wire: object) -> None:
    assert tool_choice_to_wire(choice, (ADD,)) == wire
    assert build_body("m", request(Message("user", "x"), tools=(ADD,), choice=choice))["tool_choice"] == wire


def test_tool_choice_naming_an_unknown_tool_is_a_clear_error() -> None:
    with pytest.raises(InferenceError, match=r"tool_choice asks for tool 'sub'.*\(add\)") as info:
        build_body("m", request(Message("user", "x"), tools=(ADD,), choice="sub"))
    assert not info.value.retryable


def test_no_tools_sends_neither_tools_nor_tool_choice() -> None:
    body = build_body("m", request(Message("user", "x"), choice="none"))
    assert "tools" not in body
    assert "tool_choice" not in body


def test_settings_merge_defaults_then_request_and_none_drops() -> None:
    body = build_body(
        "m",
        request(Message("user", "x"), temperature=0.2, max_tokens=None, seed=7),
        defaults={"temperature": 1.0, "max_tokens": 100, "top_p": 0.9},
    )
    assert body["temperature"] == 0.2
    assert body["top_p"] == 0.9
    assert body["seed"] == 7
    assert "max_tokens" not in body
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


def test_stream_options_can_be_left_out() -> None:
    body = build_body("m", request(Message("user", "x")), include_usage=False)
    assert body["stream"] is True
    assert "stream_options" not in body
    assert "stream" not in build_body("m", request(Message("user", "x")), stream=False)


@pytest.mark.parametrize("key", ["model", "messages", "tools", "tool_choice", "stream", "stream_options"])
def test_reserved_settings_are_refused(key: str) -> None:
    with pytest.raises(InferenceError, match=f"setting '{key}' is set by the OpenAI executor"):
        build_body("m", Request("openai:m", (Message("user", "x"),), settings={key: "x"}))


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ('{"a": 1, "b": 2}', {"a": 1, "b": 2}),
        ('{ "a" :1,  "b":2} ', {"a": 1, "b": 2}),  # spaces, as llama.cpp's grammar emits them
        ("", {}),
        ("   ", {}),
        ('"{\\"a\\": 1}"', {"a": 1}),  # double-encoded
    ],
)
def test_parse_arguments(raw: str, parsed: dict[str, object]) -> None:
    assert parse_arguments(raw) == parsed


@pytest.mark.parametrize(("raw", "error"), [('{"a": 1,', "invalid JSON"), ("[1, 2]", "got list"), ("42", "got int")])
def test_parse_arguments_never_raises(raw: str, error: str) -> None:
    out = parse_arguments(raw)
    assert list(out) == [INVALID_ARGUMENTS]
    assert out[INVALID_ARGUMENTS]["raw"] == raw
    assert error in out[INVALID_ARGUMENTS]["error"]


def test_sse_decoder_follows_the_event_stream_rules() -> None:
    decoder = SSEDecoder()
    lines = [": ping", "event: error", 'data: {"a":', "data: 1}", "", "", "data:[DONE]", ""]
    events = [e for e in map(decoder.line, lines) if e is not None]
    assert events == [("error", '{"a":\n1}'), ("message", "[DONE]")]
    decoder.line("data: tail")
    assert decoder.flush() == ("message", "tail")
    assert decoder.flush() is None


def test_accumulator_rejects_shapes_that_are_not_chunks() -> None:
    for bad in (
        [],
        {"choices": {}},
        {"choices": [1]},
        {"choices": [{"delta": "x"}]},
        {"choices": [{"delta": {"content": 5}}]},
    ):
        with pytest.raises(Malformed):
            Accumulator(Sink()).feed(bad)


def test_accumulator_tool_call_without_a_name_is_malformed() -> None:
    acc = Accumulator(Sink())
    acc.feed({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}}]})
    with pytest.raises(Malformed, match="no function name"):
        acc.response("m")


def test_accumulator_ignores_repeated_names_and_other_choices() -> None:
    sink = Sink()
    acc = Accumulator(sink)
    for piece in ('{"a"', ": 1}"):
        acc.feed(
            {
                "choices": [
                    {
                        "index": 0,
                        "delta": {
                            "tool_calls": [{"index": 0, "id": "c1", "function": {"name": "add", "arguments": piece}}]
                        },
                    },
                    {"index": 1, "delta": {"content": "other choice"}},
                ]
            }
        )
    acc.feed({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    response = acc.response("m")
    assert response.message.tool_calls == (ToolCall("c1", "add", {"a": 1}),)
    assert response.stop_reason == "tool_use"  # "stop" with tool calls (Ollama) is still tool use
    assert sink.texts == []
    assert sink.calls == [(0, "c1", "add", '{"a"'), (0, "c1", "add", ": 1}")]
