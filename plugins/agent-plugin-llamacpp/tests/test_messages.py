"""The request mapping, without a model: messages, tool choice, settings."""

from __future__ import annotations

import json

import pytest
from llamacpp_testkit import ADD_SPEC

from agent_kernel import Message, ToolCall, ToolSpec
from agent_kernel.errors import InferenceError
from agent_plugin_llamacpp._messages import merge_settings, to_chat_messages, tool_arguments

CALL = ToolCall("call_1", "add", {"a": 2, "b": 3})
CONVERSATION = (
    Message("system", "Be brief."),
    Message("user", "What is 2+3?"),
    Message("assistant", "", (CALL,)),
    Message("tool", "5", tool_call_id="call_1"),
)


def test_gemma_puts_system_text_in_front_of_the_next_user_turn() -> None:
    # llama-cpp-python's "gemma" format drops system messages; Gemma's own template folds them.
    out = to_chat_messages(CONVERSATION, "gemma")
    assert [m["role"] for m in out] == ["user", "assistant", "user"]
    assert out[0]["content"] == "Be brief.\n\nWhat is 2+3?"


def test_other_formats_keep_system_messages() -> None:
    for chat_format in ("chatml", "chatml-function-calling", "chat_template.default", None):
        out = to_chat_messages(CONVERSATION, chat_format)
        assert out[0] == {"role": "system", "content": "Be brief."}
        assert [m["role"] for m in out] == ["system", "user", "assistant", "user"]


def test_tool_calls_and_results_are_shown_as_text() -> None:
    # No built-in format renders role "tool": results become user turns, calls become text.
    out = to_chat_messages(CONVERSATION, "gemma")
    assert out[1] == {"role": "assistant", "content": '[called tool add with {"a": 2, "b": 3}]'}
    assert out[2] == {"role": "user", "content": "[result of tool add]\n5"}


def test_chatml_function_calling_gets_native_tool_calls() -> None:
    out = to_chat_messages(CONVERSATION, "chatml-function-calling")
    assistant = out[2]
    assert assistant["content"] == ""
    (call,) = assistant["tool_calls"]
    assert call["id"] == "call_1" and call["function"]["name"] == "add"
    assert json.loads(call["function"]["arguments"]) == {"a": 2, "b": 3}
    assert out[3] == {"role": "user", "content": "[result of tool add]\n5"}  # its template drops role "tool"


def test_results_of_several_calls_merge_into_one_user_turn_with_ids() -> None:
    calls = (ToolCall("c1", "add", {"a": 1, "b": 2}), ToolCall("c2", "add", {"a": 3, "b": 4}))
    messages = (
        Message("user", "Add twice."),
        Message("assistant", "Sure.", calls),
        Message("tool", "3", tool_call_id="c1"),
        Message("tool", "bad input", tool_call_id="c2", is_error=True),
        Message("user", "Thanks."),
    )
    out = to_chat_messages(messages, "gemma")
    assert [m["role"] for m in out] == ["user", "assistant", "user"]  # roles alternate
    assert out[1]["content"] == (
        'Sure.\n[called tool add (c1) with {"a": 1, "b": 2}]\n[called tool add (c2) with {"a": 3, "b": 4}]'
    )
    assert out[2]["content"] == "[result of tool add (c1)]\n3\n\n[tool add (c2) failed]\nbad input\n\nThanks."


def test_system_text_never_moves_past_an_assistant_turn() -> None:
    messages = (
        Message("user", "Hi."),
        Message("system", "Context for the answer."),
        Message("assistant", "Hello."),
        Message("system", "Trailing note."),
    )
    out = to_chat_messages(messages, "gemma")
    assert out == [
        {"role": "user", "content": "Hi.\n\nContext for the answer."},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Trailing note."},
    ]


def test_an_unknown_role_is_an_inference_error() -> None:
    with pytest.raises(InferenceError, match="role 'developer'"):
        to_chat_messages([Message("developer", "x")], "gemma")  # type: ignore[arg-type]


OTHER = ToolSpec("sub", "Subtract.", {"type": "object", "properties": {"a": {"type": "integer"}}})


def test_a_tool_name_forces_that_tool() -> None:
    got = tool_arguments((ADD_SPEC, OTHER), "add", "gemma")
    assert got["tool_choice"] == {"type": "function", "function": {"name": "add"}}
    assert [t["function"]["name"] for t in got["tools"]] == ["add", "sub"]
    assert got["tools"][0]["function"]["parameters"] == dict(ADD_SPEC.parameters)
    assert got["tools"][0]["function"]["description"] == "Add two integers."


def test_none_and_no_tools_ask_for_text() -> None:
    assert tool_arguments((ADD_SPEC,), "none", "gemma") == {}
    assert tool_arguments((), "add", "gemma") == {}


def test_auto_is_text_except_with_chatml_function_calling() -> None:
    assert tool_arguments((ADD_SPEC,), "auto", "gemma") == {}
    assert tool_arguments((ADD_SPEC,), "auto", "chatml") == {}
    got = tool_arguments((ADD_SPEC,), "auto", "chatml-function-calling")
    assert got["tool_choice"] == "auto" and len(got["tools"]) == 1


def test_required_forces_the_only_tool_and_refuses_several() -> None:
    got = tool_arguments((ADD_SPEC,), "required", "gemma")
    assert got["tool_choice"] == {"type": "function", "function": {"name": "add"}}
    with pytest.raises(InferenceError, match=r"'required' with 2 tools \(add, sub\).*patches.ToolChoice"):
        tool_arguments((ADD_SPEC, OTHER), "required", "gemma")


def test_forcing_an_unknown_tool_is_an_inference_error() -> None:
    with pytest.raises(InferenceError, match=r"'mul', which is not among the request's tools \(add\)"):
        tool_arguments((ADD_SPEC,), "mul", "gemma")


def test_settings_merge_later_wins_and_none_drops() -> None:
    merged = merge_settings({"max_tokens": 512, "top_k": 40}, {"max_tokens": 8, "top_k": None}, {"temperature": 0})
    assert merged == {"max_tokens": 8, "temperature": 0}


def test_reserved_and_unknown_settings_are_refused() -> None:
    with pytest.raises(InferenceError, match=r"'tool_choice' is set by the llama\.cpp executor itself.*ToolChoice"):
        merge_settings({"tool_choice": "auto"})
    with pytest.raises(InferenceError, match=r"'stream' is set by the llama\.cpp executor itself"):
        merge_settings({"stream": False})
    with pytest.raises(InferenceError, match=r"unknown llama\.cpp setting 'max_completion_tokens'.*max_tokens"):
        merge_settings({"max_completion_tokens": 3}, allowed={"max_tokens", "temperature"})
