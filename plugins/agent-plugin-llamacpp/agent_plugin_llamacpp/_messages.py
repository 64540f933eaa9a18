"""From a kernel `Request` to the arguments of ``Llama.create_chat_completion``.

Pure functions, no llama-cpp-python import: unit-testable without a model.

Chat formats differ in what they can show the model. llama-cpp-python's ``gemma``
format drops system messages; no built-in format (``gemma``, ``chatml``,
``chatml-function-calling``...) renders ``tool`` messages at all. So the mapping is
the same for every format, and loses nothing:

- system messages stay system messages, except with ``gemma``, where they are put
  in front of the next user turn (what Gemma's own template does);
- a tool result becomes a user turn ``[result of tool add]\\n5`` (or
  ``[tool add failed]\\n...``); consecutive user turns are merged, so templates
  that insist on alternating roles accept the conversation;
- an assistant turn that called tools carries the calls as text
  ``[called tool add with {"a": 2, "b": 3}]``; with ``chatml-function-calling``,
  whose template renders calls itself, they go as native ``tool_calls``.

Call ids are shown (``[result of tool add (call_1)]``) only when one assistant
turn made several calls and the model needs them to tell the results apart.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from agent_kernel import Message, ToolCall, ToolSpec, patches
from agent_kernel.errors import InferenceError

__all__ = [
    "DEFAULT_SETTINGS",
    "INVALID_ARGUMENTS",
    "RESERVED_SETTINGS",
    "invalid_arguments_block",
    "merge_settings",
    "parse_arguments",
    "render_call",
    "render_result",
    "to_chat_messages",
    "tool_arguments",
]

#: Key under which a tool call's arguments carry the model's text when it is not a
#: JSON object: ``{"raw": str, "error": str}``. The plugin's ``agent_before_tool_execute``
#: blocks such a call, so the model reads the error instead of the run ending.
#: (agent-plugin-openai does the same with its own key; the two plugins share no module.)
INVALID_ARGUMENTS = "__agent_plugin_llamacpp_invalid_arguments__"

_RAW_LIMIT = 2000

#: Settings every request gets unless overridden (a base model may otherwise talk
#: until the context window is full).
DEFAULT_SETTINGS: Mapping[str, Any] = {"max_tokens": 512}


def parse_arguments(raw: str, *, cut_off: bool = False) -> dict[str, Any]:
    """Decode the arguments the model wrote for a tool call; never raises.

    ``""`` is ``{}``. Text that is not a JSON object becomes
    ``{INVALID_ARGUMENTS: {"raw": ..., "error": ...}}``; with `cut_off` (generation
    stopped at ``max_tokens``) the error says so.
    """
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError as exc:
        error = f"invalid JSON: {exc}"
    else:
        if isinstance(value, dict):
            return value
        error = f"expected a JSON object, got {type(value).__name__}"
    if cut_off:
        error += " (the answer was cut off by max_tokens)"
    return {INVALID_ARGUMENTS: {"raw": raw[:_RAW_LIMIT], "error": error}}


def invalid_arguments_block(call: ToolCall) -> list[patches.Patch] | None:
    """A `Block` for a call whose arguments did not parse (see `parse_arguments`), else None."""
    bad = call.arguments.get(INVALID_ARGUMENTS)
    if bad is None:
        return None
    raw, error = (bad.get("raw", ""), bad.get("error", "")) if isinstance(bad, Mapping) else (str(bad), "")
    shown = raw if len(raw) <= 500 else raw[:500] + "…"
    return [
        patches.Block(
            f"The arguments for {call.name!r} were not a valid JSON object ({error}); the tool did not run. "
            f"Call it again with a JSON object matching its parameters. You sent: {shown}"
        )
    ]


def _call_arguments(call: ToolCall) -> dict[str, Any]:
    """What the history shows of a call's arguments: ``{}`` for arguments that did not parse."""
    return {} if INVALID_ARGUMENTS in call.arguments else dict(call.arguments)


#: ``create_chat_completion`` arguments the executor sets itself.
RESERVED_SETTINGS = frozenset(
    {"messages", "tools", "tool_choice", "functions", "function_call", "stream", "logits_processor"}
)

NATIVE_TOOL_CALLS = frozenset({"chatml-function-calling"})
SYSTEM_FOLDED = frozenset({"gemma"})


def _dumps(value: Any) -> str:
    def plain(obj: Any) -> Any:
        if isinstance(obj, Mapping):
            return dict(obj)
        raise TypeError(f"{type(obj).__name__} is not JSON serialisable")

    return json.dumps(value, default=plain, ensure_ascii=False)


def render_call(call: ToolCall, *, show_id: bool = False) -> str:
    """An assistant's tool call as text, for formats that cannot show calls."""
    ident = f" ({call.id})" if show_id else ""
    return f"[called tool {call.name}{ident} with {_dumps(_call_arguments(call))}]"


def render_result(message: Message, tool: str | None, *, show_id: bool = False) -> str:
    """A tool result as the text of a user turn."""
    name = tool or "?"
    ident = f" ({message.tool_call_id})" if show_id and message.tool_call_id else ""
    head = f"[tool {name}{ident} failed]" if message.is_error else f"[result of tool {name}{ident}]"
    return f"{head}\n{message.content}"


def to_chat_messages(messages: Iterable[Message], chat_format: str | None) -> list[dict[str, Any]]:
    """The kernel's messages as llama-cpp-python chat messages (see the module docstring)."""
    native_calls = chat_format in NATIVE_TOOL_CALLS
    fold_system = chat_format in SYSTEM_FOLDED
    out: list[dict[str, Any]] = []
    tool_names: dict[str, tuple[str | None, bool]] = {}  # call id -> (tool name, show the id)
    held_system: list[str] = []  # system text waiting for the next user turn (gemma)

    def add_user(text: str) -> None:
        nonlocal held_system
        if held_system:
            text = "\n\n".join([*held_system, text]) if text else "\n\n".join(held_system)
            held_system = []
        if out and out[-1]["role"] == "user":
            out[-1]["content"] += "\n\n" + text
        else:
            out.append({"role": "user", "content": text})

    for message in messages:
        role = message.role
        if role == "system":
            if fold_system:
                held_system.append(message.content)
            else:
                out.append({"role": "system", "content": message.content})
        elif role == "user":
            add_user(message.content)
        elif role == "tool":
            name, show_id = tool_names.get(message.tool_call_id or "", (None, True))
            add_user(render_result(message, name, show_id=show_id))
        elif role == "assistant":
            if held_system:  # system text between user and assistant stays before the assistant
                add_user("")
            entry: dict[str, Any] = {"role": "assistant", "content": message.content}
            several = len(message.tool_calls) > 1
            for call in message.tool_calls:
                tool_names[call.id] = (call.name, several)
            if message.tool_calls and native_calls:
                entry["tool_calls"] = [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": _dumps(_call_arguments(call))},
                    }
                    for call in message.tool_calls
                ]
            elif message.tool_calls:
                entry["content"] = "\n".join(
                    [
                        *([message.content] if message.content else []),
                        *(render_call(call, show_id=several) for call in message.tool_calls),
                    ]
                )
            out.append(entry)
        else:
            raise InferenceError(f"cannot send a message with role {role!r} to a llama.cpp model")
    if held_system:  # system text after the last user turn: a user turn of its own
        add_user("")
    return out


def _tool_to_wire(spec: ToolSpec) -> dict[str, Any]:
    function: dict[str, Any] = {"name": spec.name, "parameters": json.loads(_dumps(spec.parameters))}
    if spec.description:
        function["description"] = spec.description
    return {"type": "function", "function": function}


def tool_arguments(tools: Sequence[ToolSpec], tool_choice: str, chat_format: str | None) -> dict[str, Any]:
    """``tools`` / ``tool_choice`` for ``create_chat_completion``; empty for a text answer.

    - ``"none"``, or no tools: a text answer.
    - a tool name: that tool is forced; its arguments are generated under a grammar
      made from its JSON schema, so they always parse (unless cut off by ``max_tokens``).
    - ``"required"``: forces the only tool; with several tools it is an error, since
      llama-cpp-python can force only one named tool.
    - ``"auto"``: with ``chatml-function-calling``, llama-cpp-python's own choice between
      text and calls (not streamed); with every other format a text answer, because
      only the grammar-forced calls are dependable on small local models.

    Raises:
        InferenceError: an unknown tool name, or ``"required"`` with several tools.
    """
    if not tools or tool_choice == "none":
        return {}
    names = [t.name for t in tools]
    if tool_choice == "auto":
        if chat_format in NATIVE_TOOL_CALLS:
            return {"tools": [_tool_to_wire(t) for t in tools], "tool_choice": "auto"}
        return {}
    if tool_choice == "required":
        if len(tools) != 1:
            raise InferenceError(
                f"tool_choice 'required' with {len(tools)} tools ({', '.join(names)}): llama.cpp can force "
                f"only one named tool; choose it with patches.ToolChoice(<name>)"
            )
        tool_choice = names[0]
    if tool_choice not in names:
        raise InferenceError(
            f"tool_choice asks for tool {tool_choice!r}, which is not among the request's tools "
            f"({', '.join(names) or 'none'})"
        )
    return {
        "tools": [_tool_to_wire(t) for t in tools],
        "tool_choice": {"type": "function", "function": {"name": tool_choice}},
    }


def merge_settings(*sources: Mapping[str, Any], allowed: Iterable[str] | None = None) -> dict[str, Any]:
    """Merge settings, later sources winning; a value of None drops the key.

    Raises:
        InferenceError: a reserved key, or (with `allowed`) a key
            ``create_chat_completion`` does not take.
    """
    allowed_set = None if allowed is None else frozenset(allowed) - RESERVED_SETTINGS
    merged: dict[str, Any] = {}
    for source in sources:
        for key, value in source.items():
            if key in RESERVED_SETTINGS:
                hint = " (use the kernel's patches.ToolChoice)" if key == "tool_choice" else ""
                raise InferenceError(f"setting {key!r} is set by the llama.cpp executor itself{hint}")
            if allowed_set is not None and key not in allowed_set:
                raise InferenceError(
                    f"unknown llama.cpp setting {key!r}; create_chat_completion takes: {', '.join(sorted(allowed_set))}"
                )
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
    return merged
