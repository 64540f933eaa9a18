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
    """A turn in which the model answers with `content` (reporting `usage` if given)."""

    content: str
    usage: Usage | None = None


@frozen
class Call:
    """A tool call in a scripted turn (its `usage`, if given, is the turn's)."""

    name: str
    arguments: dict[str, Any]
    usage: Usage | None = None


@frozen
class Fault:
    """Put before a turn: requesting that turn raises `error` the first `times` times."""

    error: Exception
    times: int = 1


Turn = Text | Call | Sequence[Call] | Fault | Callable[[Request], Any]


def text(content: str, *, usage: Usage | None = None) -> Text:
    """A scripted turn answering `content`; `usage` is reported instead of the estimate."""
    return Text(content, usage)


def tool_call(name: str, /, *, usage: Usage | None = None, **arguments: Any) -> Call:
    """A scripted turn calling tool `name` with `arguments` (put several in a list).

    `usage` is reported instead of the estimate (in a list, the first call's counts).
    """
    return Call(name, arguments, usage)


def fault(error: Exception | str = "scripted failure", *, times: int = 1, retryable: bool = True) -> Fault:
    """A scripted failure: the request raises `error` `times` times, then the script moves on."""
    if isinstance(error, str):
        error = InferenceError(error, retryable=retryable, status=503 if retryable else 400)
    return Fault(error, times)


def _estimate_tokens(text: str) -> int:
    """The default token estimate: a quarter of the characters (at least 1 for any text)."""
    return max(1, len(text) // 4) if text else 0


# a tool-call turn: its calls, their arguments as JSON, its output estimate, the usage it gives
_Encoded = tuple[tuple[ToolCall, ...], list[str], int, "Usage | None"]
_COUNTED_MAX = 4096  # assistant messages a ScriptedModel remembers (beyond: counted again once)


class ScriptedModel:
    """A plugin registering the model ``scripted``, answering from `turns`.

    The turn used for a request is the number of assistant messages already in it,
    so a resumed run (even in a new process) continues at the right turn. A turn is
    `text(...)`, `tool_call(...)`, a list of tool calls, `fault(...)`, or a function
    of the `Request` returning one of those; ``ScriptedModel(fn)`` answers every turn
    with ``fn(request)``. `requests` lists every request received. Text streams word
    by word as `TextDelta` events.

    Usage is what a turn's ``usage=`` says, else an estimate: a quarter of the
    characters of the request's messages (input) and of the answer (output), one
    request. Both the turn number and the estimate cost the same whatever the length
    of the conversation (messages are counted from the last assistant message seen).
    """

    name = "scripted"

    def __init__(self, turns: Sequence[Turn] | Callable[[Request], Any], *, model: str = "scripted") -> None:
        self.model = model
        self.requests: list[Request] = []
        self._every: Callable[[Request], Any] | None = None
        self._slots: list[tuple[list[Fault], Any]] = []
        self._failures: dict[tuple[int, int], int] = {}
        # id(assistant message) -> (the message, its turn number, its index, tokens up to it)
        self._counted: dict[int, tuple[Message, int, int, int]] = {}
        # turn index -> its tool-call turn, encoded once (turns of the script itself)
        self._encoded: dict[int, _Encoded] = {}
        if callable(turns):
            self._every = turns
            return
        faults: list[Fault] = []
        for turn in turns:
            if isinstance(turn, Fault):
                faults.append(turn)
            else:
                self._slots.append((faults, turn))
                faults = []
        if faults:
            raise ValueError("a fault(...) must come before the turn it delays")

    @hookimpl(trylast=True)
    def agent_register_models(self, models: ModelRegistrar) -> None:
        models.add(self.model, self)

    async def infer(self, request: Request, deltas: Deltas) -> Response:
        self.requests.append(request)
        index, input_tokens = self._count(request.messages)
        if self._every is not None:
            return self._respond(index, self._every(request), input_tokens, deltas)
        if index >= len(self._slots):
            raise InferenceError(f"ScriptedModel has {len(self._slots)} turns; turn {index + 1} was requested")
        faults, turn = self._slots[index]
        for n, planned in enumerate(faults):
            failed = self._failures.get((index, n), 0)
            if failed < planned.times:
                self._failures[index, n] = failed + 1
                raise planned.error
        if callable(turn) and not isinstance(turn, (Text, Call)):
            return self._respond(index, turn(request), input_tokens, deltas)
        return self._respond(index, turn, input_tokens, deltas, scripted=True)

    def _count(self, messages: Sequence[Message]) -> tuple[int, int]:
        """The assistant messages in `messages` and their estimated input tokens.

        Scans back only to the last assistant message seen before at the same index,
        so the cost stays flat in the length of the conversation; the newest one
        scanned is remembered with the totals up to it. Only assistant messages are
        remembered (by identity): the model made each of them, whereas other messages
        may be one constant object appended again and again.
        """
        counted = self._counted
        turns = tokens = 0
        newest: tuple[Message, int, int] | None = None  # the newest assistant message, its index, tokens after it
        i = len(messages)
        for message in reversed(messages):
            i -= 1
            if message.role == "assistant":
                memo = counted.get(id(message))
                if memo is not None and memo[0] is message and memo[2] == i:
                    turns += memo[1]
                    tokens += memo[3]
                    break
                if newest is None:
                    newest = (message, i, tokens)
                turns += 1
            tokens += _estimate_tokens(message.content)
        if newest is not None:
            if len(counted) > _COUNTED_MAX:  # bounded: a long-lived model serving many runs
                counted.clear()
            message, index, after = newest
            counted[id(message)] = (message, turns, index, tokens - after)
        return turns, tokens

    def _respond(self, index: int, turn: Any, input_tokens: int, deltas: Deltas, *, scripted: bool = False) -> Response:
        """The response for `turn`; `scripted`: the turn is the script's own (not made by a function)."""
        if isinstance(turn, str):
            turn = Text(turn)
        if isinstance(turn, Text):
            words = turn.content.split(" ")
            for i, word in enumerate(words):
                deltas.text(word if i == 0 else " " + word)
            usage = turn.usage or Usage(input_tokens, _estimate_tokens(turn.content), 1)
            return Response(Message("assistant", turn.content), usage, "end_turn", self.model)
        encoded = self._encoded.get(index) if scripted else None
        if encoded is None:
            encoded = self._encode(index, (turn,) if isinstance(turn, Call) else tuple(turn))
            if scripted:  # a turn of the script itself is the same every time: encoded once
                self._encoded[index] = encoded
        calls, arguments, output_tokens, given = encoded
        for i, call in enumerate(calls):
            deltas.tool_call(i, call.id, call.name, arguments[i])
        usage = given or Usage(input_tokens, output_tokens, 1)
        return Response(Message("assistant", "", calls), usage, "tool_use", self.model)

    @staticmethod
    def _encode(index: int, specs: tuple[Any, ...]) -> _Encoded:
        """A tool-call turn's calls, their arguments as JSON, the output estimate of the
        turn and the usage the turn gives (None: estimated)."""
        calls, arguments = [], []
        for i, spec in enumerate(specs):
            if not isinstance(spec, Call):
                raise TypeError(f"scripted turn {index + 1}: expected text(...) or tool_call(...), got {spec!r}")
            calls.append(ToolCall(f"call_{index + 1}_{i + 1}", spec.name, spec.arguments))
            arguments.append(json.dumps(spec.arguments))
        # the estimate reads the arguments as one JSON list: "[" + ", ".join(...) + "]" is json.dumps of it
        estimate = _estimate_tokens("[" + ", ".join(arguments) + "]")
        given = next((spec.usage for spec in specs if spec.usage is not None), None)
        return tuple(calls), arguments, estimate, given
