"""The request body: kernel messages, tools and settings in the Messages API's shape."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agent_kernel import Message, Request, ToolCall, ToolSpec
from agent_kernel.errors import InferenceError
from agent_plugin_anthropic import build_body

ADD = ToolSpec(
    "add",
    "Add two integers.",
    {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]},
)
NOTE = ToolSpec("note", "", {"type": "object", "properties": {"text": {"type": "string"}}})


def body(*messages: Message, tools: tuple[ToolSpec, ...] = (), tool_choice: str = "auto", **options: Any) -> Any:
    settings = options.pop("settings", {})
    options.setdefault("max_tokens", 1024)
    made = build_body("claude-x", Request("anthropic:claude-x", messages, tools, tool_choice, settings), **options)
    return json.loads(json.dumps(made))  # what goes on the wire (read-only mappings must serialise)


def test_a_whole_tool_conversation() -> None:
    """The exact body for a conversation with a system prompt, two parallel calls and their results."""
    calls = (ToolCall("toolu_1", "add", {"a": 1, "b": 1}), ToolCall("toolu_2", "add", {"a": 10, "b": 20}))
    got = body(
        Message("system", "Be brief."),
        Message("user", "Add 1+1 and 10+20."),
        Message("assistant", "Adding both.", calls),
        Message("tool", "2", tool_call_id="toolu_1"),
        Message("tool", "boom", tool_call_id="toolu_2", is_error=True),
        tools=(ADD,),
    )
    assert got == {
        "model": "claude-x",
        "max_tokens": 1024,
        "system": "Be brief.",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Add 1+1 and 10+20."}]},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Adding both."},
                    {"type": "tool_use", "id": "toolu_1", "name": "add", "input": {"a": 1, "b": 1}},
                    {"type": "tool_use", "id": "toolu_2", "name": "add", "input": {"a": 10, "b": 20}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "2", "is_error": False},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "content": "boom", "is_error": True},
                ],
            },
        ],
        "tools": [
            {
                "name": "add",
                "description": "Add two integers.",
                "input_schema": {
                    "type": "object",
                    "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                    "required": ["a", "b"],
                },
            }
        ],
        "tool_choice": {"type": "auto"},
        "stream": True,
    }


def test_consecutive_tool_results_merge_into_one_user_message_then_text_follows() -> None:
    got = body(
        Message("user", "go"),
        Message("assistant", "", (ToolCall("t1", "add", {}), ToolCall("t2", "add", {}), ToolCall("t3", "add", {}))),
        Message("tool", "r1", tool_call_id="t1"),
        Message("tool", "r2", tool_call_id="t2"),
        Message("tool", "r3", tool_call_id="t3"),
        Message("user", "and now?"),
        tools=(ADD,),
    )["messages"]
    assert [m["role"] for m in got] == ["user", "assistant", "user"]
    assert got[1]["content"] == [  # no empty text block: the API refuses those
        {"type": "tool_use", "id": "t1", "name": "add", "input": {}},
        {"type": "tool_use", "id": "t2", "name": "add", "input": {}},
        {"type": "tool_use", "id": "t3", "name": "add", "input": {}},
    ]
    assert [b["type"] for b in got[2]["content"]] == ["tool_result"] * 3 + ["text"]
    assert [b.get("tool_use_id") for b in got[2]["content"][:3]] == ["t1", "t2", "t3"]
    assert got[2]["content"][3] == {"type": "text", "text": "and now?"}


def test_two_steps_of_tool_calls_stay_separate_turns() -> None:
    got = body(
        Message("user", "go"),
        Message("assistant", "", (ToolCall("t1", "add", {"a": 1, "b": 2}),)),
        Message("tool", "3", tool_call_id="t1"),
        Message("assistant", "", (ToolCall("t2", "add", {"a": 3, "b": 4}),)),
        Message("tool", "7", tool_call_id="t2"),
        tools=(ADD,),
    )["messages"]
    assert [m["role"] for m in got] == ["user", "assistant", "user", "assistant", "user"]
    assert [[b.get("tool_use_id") for b in m["content"]] for m in got[2::2]] == [["t1"], ["t2"]]


def test_system_messages_go_to_the_top_level_system_in_order() -> None:
    one = body(Message("system", "Only one."), Message("user", "hi"))
    assert one["system"] == "Only one."
    assert one["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]

    several = body(
        Message("system", "Injected context."),
        Message("system", "Instructions."),
        Message("user", "hi"),
        Message("assistant", "hello"),
        Message("system", ""),
        Message("system", "Two steps left."),
        Message("user", "more"),
    )
    assert several["system"] == [
        {"type": "text", "text": "Injected context."},
        {"type": "text", "text": "Instructions."},
        {"type": "text", "text": "Two steps left."},
    ]
    assert [m["role"] for m in several["messages"]] == ["user", "assistant", "user"]

    assert "system" not in body(Message("user", "hi"))


def test_empty_messages_are_not_sent_and_their_neighbours_merge() -> None:
    got = body(Message("user", "a"), Message("assistant", ""), Message("user", "b"))["messages"]
    assert got == [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]


def test_a_tool_result_without_content_omits_it() -> None:
    got = body(
        Message("user", "go"),
        Message("assistant", "", (ToolCall("t1", "note", {"text": "x"}),)),
        Message("tool", "", tool_call_id="t1"),
        tools=(NOTE,),
    )["messages"][2]["content"]
    assert got == [{"type": "tool_result", "tool_use_id": "t1", "is_error": False}]


@pytest.mark.parametrize(
    ("choice", "wire"),
    [
        ("auto", {"type": "auto"}),
        ("required", {"type": "any"}),
        ("none", {"type": "none"}),
        ("note", {"type": "tool", "name": "note"}),
    ],
)
def test_tool_choice_mapping(choice: str, wire: dict[str, str]) -> None:
    got = body(Message("user", "hi"), tools=(ADD, NOTE), tool_choice=choice)
    assert got["tool_choice"] == wire
    assert got["tools"][1] == {
        "name": "note",
        "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}},
    }  # no empty description


def test_without_tools_neither_tools_nor_tool_choice_is_sent() -> None:
    for choice in ("auto", "required", "none"):
        got = body(Message("user", "hi"), tool_choice=choice)
        assert "tools" not in got and "tool_choice" not in got


def test_hidden_tools_used_earlier_are_declared_and_forbidden() -> None:
    """The API rejects tool_use blocks without tool definitions; the kernel hid every tool."""
    got = body(
        Message("user", "go"),
        Message("assistant", "", (ToolCall("t1", "note", {"text": "x"}), ToolCall("t2", "add", {"a": 1, "b": 2}))),
        Message("tool", "ok", tool_call_id="t1"),
        Message("tool", "3", tool_call_id="t2"),
        tool_choice="auto",
    )
    assert got["tools"] == [
        {"name": "add", "description": "Not available now.", "input_schema": {"type": "object"}},
        {"name": "note", "description": "Not available now.", "input_schema": {"type": "object"}},
    ]
    assert got["tool_choice"] == {"type": "none"}


def test_max_tokens_comes_from_settings_then_the_default() -> None:
    assert body(Message("user", "hi"), max_tokens=333)["max_tokens"] == 333
    assert body(Message("user", "hi"), max_tokens=333, settings={"max_tokens": 50})["max_tokens"] == 50
    assert body(Message("user", "hi"), max_tokens=333, defaults={"max_tokens": 70})["max_tokens"] == 70


def test_settings_merge_request_over_defaults_none_drops_stop_is_renamed() -> None:
    got = body(
        Message("user", "hi"),
        defaults={"temperature": 1.0, "top_k": 5, "metadata": {"user_id": "u1"}},
        settings={"temperature": 0.0, "top_k": None, "stop": "END"},
    )
    assert got["temperature"] == 0.0
    assert "top_k" not in got
    assert got["metadata"] == {"user_id": "u1"}
    assert got["stop_sequences"] == ["END"] and "stop" not in got
    assert body(Message("user", "hi"), settings={"stop": ["A", "B"]})["stop_sequences"] == ["A", "B"]


@pytest.mark.parametrize("key", ["model", "messages", "system", "tools", "tool_choice", "stream"])
def test_settings_cannot_set_fields_the_executor_owns(key: str) -> None:
    with pytest.raises(InferenceError, match=f"setting\\(s\\) {key} cannot be set") as info:
        body(Message("user", "hi"), settings={key: "x"})
    assert not info.value.retryable


def test_not_streaming_leaves_stream_out() -> None:
    assert "stream" not in body(Message("user", "hi"), stream=False)
