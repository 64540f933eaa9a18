"""`ScriptedModel`: a deterministic LLM executor driven by a script of turns."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from attrs import frozen

from .._registry import Deltas, ModelRegistrar
from .._state import Message, Request, Response, ToolCall, Usage
from ..errors import InferenceError
from ..hookspecs import hookimpl


@frozen
class Text:
    """A turn in which the model answers with `content`."""

    content: str


@frozen
class Call:
    """A tool call in a scripted turn."""

    name: str
    arguments: dict[str, Any]


@frozen
class Fault:
    """Put before a turn: requesting that turn raises `error` the first `times` times."""

    error: Exception
    times: int = 1


Turn = Text | Call | Sequence[Call] | Fault | Callable[[Request], Any]


def text(content: str) -> Text:
    """A scripted turn answering `content`."""
    return Text(content)


def tool_call(name: str, /, **arguments: Any) -> Call:
    """A scripted turn calling tool `name` with `arguments` (put several in a list)."""
    return Call(name, arguments)


def fault(error: Exception | str = "scripted failure", *, times: int = 1, retryable: bool = True) -> Fault:
    """A scripted failure: the request raises `error` `times` times, then the script moves on."""
    if isinstance(error, str):
        error = InferenceError(error, retryable=retryable, status=503 if retryable else 400)
    return Fault(error, times)


def _estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4) if text else 0


_COUNTED_MAX = 4096  # assistant messages a ScriptedModel remembers (beyond: counted again once)


class ScriptedModel:
    """A plugin registering the model ``scripted``, answering from `turns`.

    The turn used for a request is the number of assistant messages already in it,
    so a resumed run (even in a new process) continues at the right turn. A turn is
    `text(...)`, `tool_call(...)`, a list of tool calls, `fault(...)`, or a function
    of the `Request` returning one of those. `requests` lists every request received.
    Text streams word by word as `TextDelta` events.
    """

    name = "scripted"

    def __init__(self, turns: Sequence[Turn], *, model: str = "scripted") -> None:
        self.model = model
        self.requests: list[Request] = []
        self._slots: list[tuple[list[Fault], Any]] = []
        faults: list[Fault] = []
        for turn in turns:
            if isinstance(turn, Fault):
                faults.append(turn)
            else:
                self._slots.append((faults, turn))
                faults = []
        if faults:
            raise ValueError("a fault(...) must come before the turn it delays")
        self._failures: dict[tuple[int, int], int] = {}
        self._counted: dict[int, tuple[Message, int]] = {}

    @hookimpl(trylast=True)
    def agent_register_models(self, models: ModelRegistrar) -> None:
        models.add(self.model, self)

    async def infer(self, request: Request, deltas: Deltas) -> Response:
        self.requests.append(request)
        index = self._assistant_turns(request.messages)
        if index >= len(self._slots):
            raise InferenceError(f"ScriptedModel has {len(self._slots)} turns; turn {index + 1} was requested")
        faults, turn = self._slots[index]
        for n, planned in enumerate(faults):
            failed = self._failures.get((index, n), 0)
            if failed < planned.times:
                self._failures[index, n] = failed + 1
                raise planned.error
        if callable(turn) and not isinstance(turn, (Text, Call)):
            turn = turn(request)
        return self._respond(index, turn, request, deltas)

    def _assistant_turns(self, messages: Sequence[Message]) -> int:
        """Count assistant messages, scanning back only to the last one counted before.

        Keeps the per-request cost flat in the length of the conversation. Only
        assistant messages are remembered (by identity): the model made each of them,
        whereas other messages may be one constant object appended again and again.
        """
        counted = self._counted
        base, new = 0, []
        for i in range(len(messages) - 1, -1, -1):
            message = messages[i]
            if message.role != "assistant":
                continue
            memo = counted.get(id(message))
            if memo is not None and memo[0] is message:
                base = memo[1]
                break
            new.append(message)
        if len(counted) > _COUNTED_MAX:  # bounded: a long-lived model serving many runs
            counted.clear()
        for ordinal, message in enumerate(reversed(new), start=base + 1):
            counted[id(message)] = (message, ordinal)
        return base + len(new)

    def _respond(self, index: int, turn: Any, request: Request, deltas: Deltas) -> Response:
        input_tokens = sum(_estimate_tokens(m.content) for m in request.messages)
        if isinstance(turn, str):
            turn = Text(turn)
        if isinstance(turn, Text):
            words = turn.content.split(" ")
            for i, word in enumerate(words):
                deltas.text(word if i == 0 else " " + word)
            usage = Usage(input_tokens, _estimate_tokens(turn.content), 1)
            return Response(Message("assistant", turn.content), usage, "end_turn", self.model)
        calls_spec = [turn] if isinstance(turn, Call) else list(turn)
        calls = []
        for i, spec in enumerate(calls_spec):
            if not isinstance(spec, Call):
                raise TypeError(f"scripted turn {index + 1}: expected text(...) or tool_call(...), got {spec!r}")
            call_id = f"call_{index + 1}_{i + 1}"
            arguments = json.dumps(spec.arguments)
            deltas.tool_call(i, call_id, spec.name, arguments)
            calls.append(ToolCall(call_id, spec.name, spec.arguments))
        usage = Usage(input_tokens, _estimate_tokens(json.dumps([c.arguments for c in calls_spec])), 1)
        return Response(Message("assistant", "", tuple(calls)), usage, "tool_use", self.model)
