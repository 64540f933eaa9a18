"""Shared helpers of the memory tests: a model answering by request count, conversations, tools."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from agent_kernel import Deltas, Message, ModelRegistrar, Request, Response, ToolCall, Usage, hookimpl, patches
from agent_kernel.errors import InferenceError

#: Settings of the property tests: ``MEMORY_EXAMPLES`` examples (default 30, like the root ``ci``
#: profile), no deadline (agent runs on a busy machine), on top of whatever profile is loaded.
PROPERTY = settings(
    max_examples=int(os.environ.get("MEMORY_EXAMPLES", "30")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

Turn = str | list[tuple[str, dict[str, Any]]] | Exception


class CountingModel:
    """Model ``scripted``: the i-th request it receives gets turn i (the last turn repeats).

    Unlike `ScriptedModel` it does not count assistant messages in the request, so
    it keeps its place when a context window hides older turns. A turn is a text,
    a list of ``(tool, arguments)`` calls, or an exception (raised, and the next
    request gets the next turn).
    """

    name = "counting"

    def __init__(self, turns: Sequence[Turn], *, model: str = "scripted") -> None:
        self.turns = list(turns)
        self.model = model
        self.requests: list[Request] = []
        self.position = 0

    @hookimpl
    def agent_register_models(self, models: ModelRegistrar) -> None:
        models.add(self.model, self)

    async def infer(self, request: Request, deltas: Deltas) -> Response:
        self.requests.append(request)
        index = min(self.position, len(self.turns) - 1)
        self.position += 1
        turn = self.turns[index]
        if isinstance(turn, Exception):
            raise turn
        if isinstance(turn, str):
            return Response(Message("assistant", turn), Usage(1, 1, 1))
        calls = tuple(ToolCall(f"c{index}_{i}", name, args) for i, (name, args) in enumerate(turn))
        return Response(Message("assistant", "", calls), Usage(1, 1, 1), "tool_use")


def fail(message: str = "boom") -> InferenceError:
    """A non-retryable inference failure for a `CountingModel` turn."""
    return InferenceError(message, retryable=False)


def echo(text: str) -> str:
    """A tool: returns its text."""
    return text


def add(a: int, b: int) -> int:
    """A tool: adds."""
    return a + b


def named_tool(name: str) -> Any:
    """A tool called `name` returning its name and arguments."""

    def tool(**arguments: Any) -> str:
        return f"{name}:{sorted(arguments.items())}"

    tool.__name__ = name
    return tool


class Gate:
    """Suspends every call of the tool ``gate`` (an approval request in the journal)."""

    name = "gate"

    @hookimpl
    def agent_before_tool_execute(self, call: ToolCall) -> list[patches.Patch] | None:
        return [patches.Suspend("needs a human")] if call.name == "gate" else None


def split_pairs(messages: Sequence[Message]) -> list[str]:
    """Problems with tool pairing in `messages`: a result without its call or a call without a result."""
    problems = []
    called = {c.id for m in messages for c in m.tool_calls}
    answered = {m.tool_call_id for m in messages if m.role == "tool"}
    problems += [f"result {i} without its call" for i in answered - called]
    problems += [f"call {i} without its result" for i in called - answered]
    return problems


_word = st.text(alphabet="abcdefgh xyz", min_size=0, max_size=40)


@st.composite
def conversations(draw: st.DrawFn, max_units: int = 12) -> list[Message]:
    """Well-formed conversations: system messages, then users, answers and tool calls with their results."""
    out = [Message("system", draw(_word)) for _ in range(draw(st.integers(0, 2)))]
    call = 0
    for _ in range(draw(st.integers(0, max_units))):
        kind = draw(st.sampled_from(["user", "text", "tools"]))
        if kind == "user":
            out.append(Message("user", draw(_word)))
        elif kind == "text":
            out.append(Message("assistant", draw(_word)))
        else:
            ids = [f"k{call + i}" for i in range(draw(st.integers(1, 3)))]
            call += len(ids)
            out.append(
                Message("assistant", draw(_word), tuple(ToolCall(i, "echo", {"text": draw(_word)}) for i in ids))
            )
            out += [Message("tool", draw(_word), tool_call_id=i) for i in ids]
    return out
