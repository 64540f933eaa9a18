"""The Messages API wire format: requests out, server-sent events in. No I/O here.

`build_body` turns a kernel `Request` into the JSON body of ``POST /v1/messages``;
`SSEDecoder` splits the response stream into events; `Accumulator` folds the
events into a kernel `Response`, reporting text and tool-call pieces to the
executor's `Deltas` as they arrive.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from agent_kernel import Deltas, Message, Request, Response, ToolCall, Usage
from agent_kernel.errors import InferenceError

__all__ = [
    "ERROR_STATUS",
    "RESERVED",
    "STOP_REASONS",
    "Accumulator",
    "Malformed",
    "SSEDecoder",
    "build_body",
    "dumps",
    "events_of_message",
    "tool_choice",
]

#: Body fields the executor owns; settings may not set them.
RESERVED = frozenset({"model", "messages", "system", "tools", "tool_choice", "stream"})

#: Anthropic stop reasons → the kernel's. See the README for why ``pause_turn`` is
#: ``max_tokens``: the turn is unfinished, not a natural end.
STOP_REASONS: Mapping[str, str] = {
    "end_turn": "end_turn",
    "stop_sequence": "end_turn",
    "tool_use": "tool_use",
    "max_tokens": "max_tokens",
    "model_context_window_exceeded": "max_tokens",
    "pause_turn": "max_tokens",
    "refusal": "refusal",
}

#: Error types of the documented error bodies and the HTTP status each stands for.
ERROR_STATUS: Mapping[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "conflict_error": 409,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


class Malformed(Exception):
    """The server's answer does not follow the documented format."""


def _default(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def plain(value: Any) -> Any:
    """`value` as plain JSON data: read-only mappings become dicts, tuples lists."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def dumps(value: Any) -> str:
    """Compact JSON; read-only mappings (the kernel's frozen values) become objects."""
    return json.dumps(value, default=_default, ensure_ascii=False, separators=(",", ":"))


# ----------------------------------------------------------------------------- requests


def tool_choice(choice: str) -> dict[str, Any]:
    """The kernel's tool choice as the API's ``tool_choice`` object."""
    if choice == "auto":
        return {"type": "auto"}
    if choice == "required":
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    return {"type": "tool", "name": choice}


def _blocks(message: Message) -> list[dict[str, Any]]:
    """The content blocks of one kernel message (empty text is never sent: the API refuses it)."""
    if message.role == "tool":
        block: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id or ""}
        if message.content:
            block["content"] = message.content
        block["is_error"] = message.is_error
        return [block]
    blocks: list[dict[str, Any]] = []
    if message.content:
        blocks.append({"type": "text", "text": message.content})
    if message.role == "assistant":
        blocks += [
            {"type": "tool_use", "id": c.id, "name": c.name, "input": plain(c.arguments)} for c in message.tool_calls
        ]
    return blocks


def _messages(messages: Iterable[Message]) -> tuple[list[str], list[dict[str, Any]], set[str]]:
    """Split into system texts and API messages; consecutive same-role turns merge.

    Tool results become ``tool_result`` blocks of a user turn, so the results of
    one step (and any user text after them) form a single user message.
    """
    system: list[str] = []
    out: list[dict[str, Any]] = []
    used_tools: set[str] = set()
    for message in messages:
        if message.role == "system":
            if message.content:
                system.append(message.content)
            continue
        blocks = _blocks(message)
        if not blocks:
            continue
        if message.role == "assistant":
            used_tools.update(c.name for c in message.tool_calls)
        role = "assistant" if message.role == "assistant" else "user"
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    return system, out, used_tools


def _settings(defaults: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    merged = {**defaults, **settings}
    bad = sorted(RESERVED & {k for k, v in merged.items() if v is not None})
    if bad:
        raise InferenceError(
            f"setting(s) {', '.join(bad)} cannot be set through settings: the Anthropic executor builds them "
            "from the request (system messages, tools, tool_choice)"
        )
    if "stop" in merged:  # the OpenAI-style name
        stop = merged.pop("stop")
        if stop is not None and "stop_sequences" not in merged:
            merged["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    return {k: v for k, v in merged.items() if v is not None}


def build_body(
    model: str,
    request: Request,
    *,
    max_tokens: int,
    defaults: Mapping[str, Any] | None = None,
    stream: bool = True,
) -> dict[str, Any]:
    """The JSON body of ``POST /v1/messages`` for `request`.

    - System messages (wherever they are) → top-level ``system``: a string for one,
      a list of text blocks for several, in order.
    - User and assistant messages → content blocks; assistant tool calls →
      ``tool_use`` blocks (id, name, input); tool messages → ``tool_result`` blocks
      (tool_use_id, content, is_error) in a user turn; consecutive turns of one
      role merge, so the results of a step go back as one user message.
    - Tools → ``{name, description, input_schema}``; ``tool_choice`` auto → auto,
      required → any, none → none, a tool name → ``{"type": "tool", "name": ...}``.
      Without tools neither is sent, except when the conversation already holds
      tool calls: the API then insists on definitions, so the tools those calls
      named are declared (schema-less) with ``tool_choice`` none.
    - ``max_tokens`` (required by the API): the merged settings' value, else `max_tokens`.
    - Settings: `defaults`, then ``request.settings`` (later wins, None drops a key);
      ``stop`` is sent as ``stop_sequences``.

    Raises:
        InferenceError: a setting tries to set a field the executor owns.
    """
    settings = _settings(defaults or {}, request.settings)
    system, messages, used_tools = _messages(request.messages)
    body: dict[str, Any] = {"model": model, "max_tokens": settings.pop("max_tokens", max_tokens)}
    if system:
        body["system"] = system[0] if len(system) == 1 else [{"type": "text", "text": s} for s in system]
    body["messages"] = messages
    if request.tools:
        tools = []
        for spec in request.tools:
            tool: dict[str, Any] = {"name": spec.name}
            if spec.description:
                tool["description"] = spec.description
            tool["input_schema"] = plain(spec.parameters)
            tools.append(tool)
        body["tools"] = tools
        body["tool_choice"] = tool_choice(request.tool_choice)
    elif used_tools:
        body["tools"] = [
            {"name": name, "description": "Not available now.", "input_schema": {"type": "object"}}
            for name in sorted(used_tools)
        ]
        body["tool_choice"] = {"type": "none"}
    body.update(settings)
    if stream:
        body["stream"] = True
    return body


# ----------------------------------------------------------------------------- responses


class SSEDecoder:
    """Incremental server-sent-events decoder (the parts of the WHATWG rules servers use).

    Feed it lines without their line ending; it returns ``(event, data)`` when a
    blank line ends an event. Comment lines are ignored; several ``data:`` lines
    join with newlines.
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


class _Block:
    """One content block being streamed."""

    __slots__ = ("call", "fragments", "kind", "start_input", "stopped")

    def __init__(self, kind: str, call: int | None = None, start_input: Any = None) -> None:
        self.kind = kind
        self.call = call  # index among the tool calls, for tool_use blocks
        self.fragments: list[str] = []
        self.start_input = start_input
        self.stopped = False


class Accumulator:
    """Folds Messages API stream events into a `Response`, reporting deltas as they come.

    Text deltas go to ``deltas.text``; a tool_use block is announced with an empty
    fragment when it starts (so its name is known at once), then every
    ``input_json_delta`` goes to ``deltas.tool_call(index, id, name, fragment)``,
    `index` counting the tool calls of the message from 0.
    """

    def __init__(self, deltas: Deltas, *, max_tokens: int | None = None) -> None:
        self.deltas = deltas
        self.max_tokens = max_tokens
        self.text: list[str] = []
        self.blocks: dict[int, _Block] = {}
        self.calls: list[tuple[str, str, _Block]] = []
        self.usage: dict[str, int] = {}
        self.model = ""
        self.stop_reason: str | None = None
        self.started = False
        self.finished = False
        self.events = 0

    def feed(self, payload: Any) -> None:
        """Handle one event's decoded ``data``. Unknown event and block types are skipped."""
        if not isinstance(payload, dict):
            raise Malformed(f"event data is not a JSON object: {dumps(payload)[:200]}")
        self.events += 1
        kind = payload.get("type")
        if kind == "content_block_delta":
            self._delta(payload)
        elif kind == "content_block_start":
            self._start_block(payload)
        elif kind == "content_block_stop":
            self._block(payload).stopped = True
        elif kind == "message_start":
            message = payload.get("message")
            if not isinstance(message, dict):
                raise Malformed("message_start without a message object")
            self.started = True
            self.model = str(message.get("model") or "")
            self._usage(message.get("usage"))
            if message.get("stop_reason"):
                self.stop_reason = message["stop_reason"]
        elif kind == "message_delta":
            delta = payload.get("delta") or {}
            if isinstance(delta, dict) and delta.get("stop_reason"):
                self.stop_reason = str(delta["stop_reason"])
            self._usage(payload.get("usage"))
        elif kind == "message_stop":
            self.finished = True
        # "ping" and event types added later (the API's versioning policy) are ignored.

    def _block(self, payload: dict[str, Any]) -> _Block:
        index = payload.get("index")
        block = self.blocks.get(index)  # type: ignore[arg-type]
        if block is None:
            raise Malformed(f"{payload.get('type')} for content block {index!r}, which never started")
        return block

    def _start_block(self, payload: dict[str, Any]) -> None:
        index = payload.get("index")
        content = payload.get("content_block")
        if not isinstance(index, int) or not isinstance(content, dict):
            raise Malformed(f"content_block_start without an index and a content_block: {dumps(payload)[:200]}")
        if index in self.blocks:
            raise Malformed(f"content block {index} started twice")
        kind = str(content.get("type"))
        if kind == "tool_use":
            call_id, name = content.get("id"), content.get("name")
            if not isinstance(call_id, str) or not call_id or not isinstance(name, str) or not name:
                raise Malformed(f"tool_use block {index} without an id and a name")
            block = _Block(kind, len(self.calls), content.get("input"))
            self.calls.append((call_id, name, block))
            self.deltas.tool_call(block.call, call_id, name, "")  # type: ignore[arg-type]
        else:
            block = _Block(kind)
            if kind == "text" and content.get("text"):
                self._text(str(content["text"]))
        self.blocks[index] = block

    def _delta(self, payload: dict[str, Any]) -> None:
        block = self._block(payload)
        delta = payload.get("delta")
        if not isinstance(delta, dict):
            raise Malformed(f"content_block_delta without a delta: {dumps(payload)[:200]}")
        kind = delta.get("type")
        if kind == "text_delta":
            self._text(str(delta.get("text") or ""))
        elif kind == "input_json_delta":
            if block.call is None:
                raise Malformed(f"input_json_delta for a {block.kind} block")
            fragment = str(delta.get("partial_json") or "")
            if fragment:
                block.fragments.append(fragment)
                call_id, name, _ = self.calls[block.call]
                self.deltas.tool_call(block.call, call_id, name, fragment)
        # thinking_delta, signature_delta, citations_delta...: not part of the kernel's message.

    def _text(self, text: str) -> None:
        if text:
            self.text.append(text)
            self.deltas.text(text)

    def _usage(self, usage: Any) -> None:
        """Counts are cumulative: a later event's value replaces an earlier one."""
        if isinstance(usage, dict):
            for key, value in usage.items():
                if isinstance(value, int) and not isinstance(value, bool):
                    self.usage[key] = value

    @property
    def complete(self) -> bool:
        """message_stop arrived, or at least the final message_delta did."""
        return self.finished or self.stop_reason is not None

    def response(self, model: str) -> Response:
        """The `Response` (call once the stream is complete)."""
        raw_stop = self.stop_reason
        calls = tuple(self._call(call_id, name, block, raw_stop) for call_id, name, block in self.calls)
        usage = self.usage
        input_tokens = (
            usage.get("input_tokens", 0)
            + usage.get("cache_creation_input_tokens", 0)
            + usage.get("cache_read_input_tokens", 0)
        )
        # an unknown or missing stop reason: say what the message holds
        stop = STOP_REASONS.get(raw_stop or "") or ("tool_use" if calls else "end_turn")
        return Response(
            Message("assistant", "".join(self.text), calls),
            Usage(input_tokens, usage.get("output_tokens", 0), 1),
            stop,  # type: ignore[arg-type]
            self.model or model,
        )

    def _call(self, call_id: str, name: str, block: _Block, raw_stop: str | None) -> ToolCall:
        text = "".join(block.fragments)
        if not text:
            arguments = block.start_input if block.start_input is not None else {}
            if arguments:  # input sent whole in content_block_start: report it as one fragment
                self.deltas.tool_call(block.call, call_id, name, dumps(arguments))  # type: ignore[arg-type]
        else:
            try:
                arguments = json.loads(text)
            except ValueError as exc:
                if raw_stop in ("max_tokens", "model_context_window_exceeded"):
                    limit = f"max_tokens={self.max_tokens}" if self.max_tokens else "max_tokens"
                    raise InferenceError(
                        f"the answer was cut off at {limit} while writing the arguments of tool {name!r} "
                        f"({len(text)} characters so far); raise max_tokens (Agent(settings={{'max_tokens': ...}}) "
                        "or Anthropic(max_tokens=...))"
                    ) from None
                raise Malformed(
                    f"the input of tool_use {call_id} ({name}) is not JSON ({exc}): {text[:200]!r}"
                ) from None
        if not isinstance(arguments, dict):
            raise Malformed(f"the input of tool_use {call_id} ({name}) is not a JSON object: {dumps(arguments)[:200]}")
        return ToolCall(call_id, name, arguments)


def events_of_message(message: Any) -> list[dict[str, Any]]:
    """The stream events equivalent to a whole (non-streamed) Message object."""
    if not isinstance(message, dict) or message.get("type", "message") != "message":
        raise Malformed(f"expected a Message object, got {dumps(message)[:200]}")
    content = message.get("content")
    if not isinstance(content, list):
        raise Malformed("the Message has no content list")
    usage = message.get("usage") or {}
    start = {k: v for k, v in message.items() if k not in ("content", "stop_reason", "stop_sequence")}
    out: list[dict[str, Any]] = [{"type": "message_start", "message": {**start, "content": []}}]
    for index, block in enumerate(content):
        if not isinstance(block, dict):
            raise Malformed(f"content block {index} is not an object")
        if block.get("type") == "text":
            out.append({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}})
            out.append(
                {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": block["text"]}}
            )
        elif block.get("type") == "tool_use":
            start_block = {**block, "input": {}}
            out.append({"type": "content_block_start", "index": index, "content_block": start_block})
            fragment = {"type": "input_json_delta", "partial_json": dumps(block.get("input") or {})}
            out.append({"type": "content_block_delta", "index": index, "delta": fragment})
        else:
            out.append({"type": "content_block_start", "index": index, "content_block": block})
        out.append({"type": "content_block_stop", "index": index})
    out.append({"type": "message_delta", "delta": {"stop_reason": message.get("stop_reason")}, "usage": usage})
    out.append({"type": "message_stop"})
    return out
