"""The Chat Completions wire format: requests out, streamed chunks in.

Pure functions and one accumulator; no I/O and no httpx, so everything here is
unit-testable without a server. The format is the one OpenAI documents for
``POST /chat/completions`` (``stream: true`` answers are server-sent events whose
``data`` is a ``chat.completion.chunk`` object, ended by ``data: [DONE]``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

from agent_kernel import Deltas, Message, Request, Response, ToolCall, ToolSpec, Usage
from agent_kernel.errors import InferenceError

#: Key under which a tool call's arguments carry the raw text when the model sent
#: arguments that are not a JSON object. The value is ``{"raw": str, "error": str}``.
#: The plugin's ``agent_before_tool_execute`` hook blocks such calls, so the model
#: sees the parse error instead of the tool running with made-up arguments.
INVALID_ARGUMENTS = "__agent_plugin_openai_invalid_arguments__"

#: Request fields the executor owns; `Request.settings` may not set them.
RESERVED = frozenset({"model", "messages", "tools", "tool_choice", "stream", "stream_options"})

#: ``finish_reason`` → the kernel's ``Response.stop_reason``.
STOP_REASONS = {
    "stop": "end_turn",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "length": "max_tokens",
    "content_filter": "refusal",
    "error": "error",
}

_RAW_LIMIT = 2000


class Malformed(Exception):
    """The server's answer does not follow the Chat Completions format."""


def plain(value: Any) -> Any:
    """`json.dumps` default: read-only mappings (the kernel's frozen values) as dicts."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(value: Any) -> str:
    return json.dumps(value, default=plain, ensure_ascii=False, separators=(",", ":"))


# ---------------------------------------------------------------------------------
# Request
# ---------------------------------------------------------------------------------


def _arguments_json(call: ToolCall) -> str:
    if INVALID_ARGUMENTS in call.arguments:
        return "{}"  # never echo broken JSON back: some servers parse history arguments
    return dumps(call.arguments)


def message_to_wire(message: Message) -> dict[str, Any]:
    """One kernel `Message` as a chat message.

    Assistant messages always carry a string ``content`` (``""`` when they only call
    tools): the llama.cpp server answers HTTP 500 to ``null``. Tool results go as
    ``role: tool`` with their ``tool_call_id``; ``is_error`` has no wire field, the
    kernel's error texts already say what failed.
    """
    role = message.role
    if role == "assistant":
        out: dict[str, Any] = {"role": "assistant", "content": message.content or ""}
        if message.tool_calls:
            out["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": _arguments_json(c)}}
                for c in message.tool_calls
            ]
        return out
    if role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id or "", "content": message.content}
    if role in ("system", "user"):
        return {"role": role, "content": message.content}
    raise InferenceError(f"cannot send a message with role {role!r} to a Chat Completions server")


def tool_to_wire(spec: ToolSpec) -> dict[str, Any]:
    function: dict[str, Any] = {"name": spec.name, "parameters": spec.parameters}
    if spec.description:
        function["description"] = spec.description
    return {"type": "function", "function": function}


def tool_choice_to_wire(choice: str, tools: Iterable[ToolSpec]) -> Any:
    """``auto`` / ``none`` / ``required`` as they are; a tool name forces that tool."""
    if choice in ("auto", "none", "required"):
        return choice
    names = [t.name for t in tools]
    if choice not in names:
        raise InferenceError(
            f"tool_choice asks for tool {choice!r}, which is not among the request's tools "
            f"({', '.join(names) or 'none'})"
        )
    return {"type": "function", "function": {"name": choice}}


def build_body(
    model: str,
    request: Request,
    *,
    defaults: Mapping[str, Any] = {},
    stream: bool = True,
    include_usage: bool = True,
) -> dict[str, Any]:
    """The JSON body of ``POST /chat/completions`` for `request`.

    Settings: the executor's `defaults`, then ``request.settings`` (later wins); a
    value of None drops the key. Keys in `RESERVED` are the executor's own and raise
    `InferenceError` (use ``patches.ToolChoice`` to choose tools, not settings).
    Without tools, neither ``tools`` nor ``tool_choice`` is sent.
    """
    body: dict[str, Any] = {"model": model, "messages": [message_to_wire(m) for m in request.messages]}
    if request.tools:
        body["tools"] = [tool_to_wire(t) for t in request.tools]
        body["tool_choice"] = tool_choice_to_wire(request.tool_choice, request.tools)
    for source in (defaults, request.settings):
        for key, value in source.items():
            if key in RESERVED:
                hint = " (use the kernel's patches.ToolChoice)" if key == "tool_choice" else ""
                raise InferenceError(
                    f"setting {key!r} is set by the OpenAI executor itself and cannot be overridden{hint}"
                )
            if value is None:
                body.pop(key, None)
            else:
                body[key] = value
    if stream:
        body["stream"] = True
        if include_usage:
            body["stream_options"] = {"include_usage": True}
    return body


# ---------------------------------------------------------------------------------
# Answer
# ---------------------------------------------------------------------------------


def parse_arguments(raw: str) -> dict[str, Any]:
    """Decode tool-call arguments; never raises.

    ``""`` is ``{}``. JSON that is a string holding a JSON object (double-encoded
    arguments, seen from some servers) is decoded twice. Anything else that is not a
    JSON object becomes ``{INVALID_ARGUMENTS: {"raw": ..., "error": ...}}``.
    """
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
        if isinstance(value, str):
            value = json.loads(value)
    except ValueError as exc:
        error = f"invalid JSON: {exc}"
    else:
        if isinstance(value, dict):
            return value
        error = f"expected a JSON object, got {type(value).__name__}"
    return {INVALID_ARGUMENTS: {"raw": raw[:_RAW_LIMIT], "error": error}}


class _CallParts:
    __slots__ = ("arguments", "id", "name")

    def __init__(self) -> None:
        self.id = ""
        self.name = ""
        self.arguments: list[str] = []


def _usage(value: Any) -> Usage | None:
    if not isinstance(value, Mapping):
        return None
    prompt, completion = value.get("prompt_tokens"), value.get("completion_tokens")
    return Usage(prompt if isinstance(prompt, int) else 0, completion if isinstance(completion, int) else 0, 1)


def _str(value: Any, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Malformed(f"{what} is {type(value).__name__}, not a string")
    return value


class Accumulator:
    """Folds ``chat.completion.chunk`` objects into one `Response`.

    Text deltas go to ``deltas.text`` as they arrive; tool-call deltas are joined by
    ``index`` and reported through ``deltas.tool_call`` (id and name as known so far,
    plus the argument fragment). Only choice 0 is read. The last ``usage`` seen wins.
    """

    __slots__ = ("calls", "chunks", "content", "deltas", "finish_reason", "model", "refusal", "usage")

    def __init__(self, deltas: Deltas) -> None:
        self.deltas = deltas
        self.content: list[str] = []
        self.refusal: list[str] = []
        self.calls: dict[int, _CallParts] = {}
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.model = ""
        self.chunks = 0

    def feed(self, chunk: Any) -> None:
        """Fold one decoded chunk. Raises `Malformed` for a shape that is not a chunk."""
        if not isinstance(chunk, dict):
            raise Malformed(f"a stream chunk is {type(chunk).__name__}, not an object")
        self.chunks += 1
        model = chunk.get("model")
        if isinstance(model, str) and model:
            self.model = model
        usage = _usage(chunk.get("usage"))
        if usage is not None:
            self.usage = usage
        choices = chunk.get("choices")
        if choices is None:
            return
        if not isinstance(choices, list):
            raise Malformed(f"'choices' is {type(choices).__name__}, not a list")
        for choice in choices:
            if not isinstance(choice, dict):
                raise Malformed("a choice is not an object")
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            if delta is None:
                delta = choice.get("message")  # a non-streaming body, fed as one chunk
            if delta is not None:
                self._delta(delta)
            finish = choice.get("finish_reason")
            if finish is not None:
                self.finish_reason = _str(finish, "'finish_reason'")

    def _delta(self, delta: Any) -> None:
        if not isinstance(delta, dict):
            raise Malformed(f"'delta' is {type(delta).__name__}, not an object")
        text = _str(delta.get("content"), "'content'")
        if text:
            self.content.append(text)
            self.deltas.text(text)
        refusal = _str(delta.get("refusal"), "'refusal'")
        if refusal:
            self.refusal.append(refusal)
            self.deltas.text(refusal)
        tool_calls = delta.get("tool_calls")
        if tool_calls is None:
            return
        if not isinstance(tool_calls, list):
            raise Malformed(f"'tool_calls' is {type(tool_calls).__name__}, not a list")
        for position, part in enumerate(tool_calls):
            if not isinstance(part, dict):
                raise Malformed("a tool call delta is not an object")
            index = part.get("index", position)
            if not isinstance(index, int):
                raise Malformed(f"tool call 'index' is {index!r}, not an integer")
            call = self.calls.get(index)
            if call is None:
                call = self.calls[index] = _CallParts()
            call_id = _str(part.get("id"), "tool call 'id'")
            if call_id and not call.id:
                call.id = call_id
            function = part.get("function") or {}
            if not isinstance(function, dict):
                raise Malformed("tool call 'function' is not an object")
            name = _str(function.get("name"), "function 'name'")
            if name and name != call.name:
                call.name = call.name + name if call.name else name  # fragments join; repeats are ignored
            fragment = function.get("arguments")
            if isinstance(fragment, (dict, list)):  # some servers send decoded arguments
                fragment = json.dumps(fragment)
            fragment = _str(fragment, "function 'arguments'")
            if fragment:
                call.arguments.append(fragment)
            self.deltas.tool_call(index, call.id, call.name, fragment)

    def response(self, fallback_model: str) -> Response:
        """The assembled `Response` (after the stream ended)."""
        calls = []
        seen: set[str] = set()
        for index in sorted(self.calls):
            parts = self.calls[index]
            if not parts.name:
                raise Malformed(f"tool call {index} has no function name")
            call_id = parts.id or f"call_{os.urandom(12).hex()}"
            if call_id in seen:  # ids must be unique within a step
                call_id = f"{call_id}_{index}"
            seen.add(call_id)
            calls.append(ToolCall(call_id, parts.name, parse_arguments("".join(parts.arguments))))
        content = "".join(self.content) + "".join(self.refusal)
        stop = STOP_REASONS.get(self.finish_reason or "", "end_turn")
        if calls and stop == "end_turn":
            stop = "tool_use"  # Ollama and others say "stop" after tool calls
        if self.refusal and not self.content and not calls:
            stop = "refusal"
        usage = self.usage or Usage(0, 0, 1)
        return Response(Message("assistant", content, tuple(calls)), usage, stop, self.model or fallback_model)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------
# Server-sent events
# ---------------------------------------------------------------------------------


class SSEDecoder:
    """Incremental server-sent-events decoder (WHATWG rules, the parts servers use).

    Feed it lines without their line ending; it returns ``(event, data)`` when a blank
    line ends an event. Comment lines (``: ping``) are ignored; several ``data:``
    lines join with newlines.
    """

    __slots__ = ("data", "event")

    def __init__(self) -> None:
        self.event = ""
        self.data: list[str] = []

    def line(self, line: str) -> tuple[str, str] | None:
        if not line:
            return self.flush()
        if line[0] == ":":
            return None
        field, _, value = line.partition(":")
        if value[:1] == " ":
            value = value[1:]
        if field == "data":
            self.data.append(value)
        elif field == "event":
            self.event = value
        return None

    def flush(self) -> tuple[str, str] | None:
        if not self.data:
            self.event = ""
            return None
        out = (self.event or "message", "\n".join(self.data))
        self.event, self.data = "", []
        return out
