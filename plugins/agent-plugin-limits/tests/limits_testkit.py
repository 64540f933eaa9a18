"""Helpers for the Limits tests: a metered model, tools that count, a runner, checks."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any

import trio
from attrs import frozen

from agent_kernel import Agent, Message, ModelRegistrar, Outcome, Request, Response, ToolCall, Usage, hookimpl
from agent_kernel.errors import InferenceError
from agent_kernel.testing import RunRecorder, check_phase_grammar
from agent_plugin_tools import Toolbox


@frozen
class Answer:
    """A turn with text and tool calls in one message."""

    content: str
    calls: tuple[Any, ...] = ()


def answer(content: str, *calls: Any) -> Answer:
    return Answer(content, calls)


class Metered:
    """Registers model `model`, answering `turns` with a fixed usage per response.

    The turn for a request is the number of assistant messages in it (as in
    `ScriptedModel`, so resumes continue at the right turn). A turn is ``text(...)``,
    ``tool_call(...)`` or a list of tool calls. Each response reports `usage`
    (``(input, output)``, or a function of the turn index returning one) and takes
    `latency` seconds; ``usage="measure"`` reports ``ceil(characters / 4)`` input tokens
    of what the request carries, and 10 output tokens. Past the end of the script the
    model repeats its last turn.
    """

    def __init__(
        self,
        turns: Sequence[Any],
        usage: tuple[int, int] | Callable[[int], tuple[int, int]] | str = (100, 10),
        *,
        model: str = "metered",
        latency: float = 0.0,
        reported_model: str | None = None,
    ) -> None:
        self.name = f"metered-{model}"
        self.model = model
        self.turns = list(turns)
        self.usage = usage
        self.latency = latency
        self.reported_model = reported_model if reported_model is not None else model
        self.requests: list[Request] = []

    @hookimpl
    def agent_register_models(self, models: ModelRegistrar) -> None:
        models.add(self.model, self)

    async def infer(self, request: Request, deltas: Any) -> Response:
        self.requests.append(request)
        if len(self.requests) > 200:  # a broken limit must fail a test, not hang it
            raise InferenceError("runaway: more than 200 requests")
        if self.latency:
            await trio.sleep(self.latency)
        index = sum(1 for m in request.messages if m.role == "assistant")
        turn = self.turns[min(index, len(self.turns) - 1)]
        if self.usage == "measure":
            usage = (math.ceil(sum(len(m.content) for m in request.messages) / 4), 10)
        else:
            usage = self.usage(index) if callable(self.usage) else self.usage  # type: ignore[assignment]
        if isinstance(turn, Answer):
            content, calls = turn.content, list(turn.calls)
        elif hasattr(turn, "content"):
            content, calls = turn.content, []
        else:
            content, calls = "", [turn] if hasattr(turn, "name") else list(turn)
        message = Message(
            "assistant",
            content,
            tuple(ToolCall(f"call_{index + 1}_{i + 1}", c.name, dict(c.arguments)) for i, c in enumerate(calls)),
        )
        return Response(
            message, Usage(usage[0], usage[1], 1), "tool_use" if message.tool_calls else "end_turn", self.reported_model
        )


class Counter:
    """Tool bodies that count their calls and fail when told to."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def count(self, name: str | None = None) -> int:
        return sum(1 for n, _ in self.calls if name is None or n == name)


def toolbox(counter: Counter, *, parallel: bool = False, sleep: float = 0.0) -> Toolbox:
    """Tools ``search(q)``, ``add(a, b)``, ``fail()``, ``submit(ok=True)``, ``echo(word)``."""

    async def search(q: str = "") -> str:
        """Search."""
        counter.calls.append(("search", {"q": q}))
        await trio.sleep(sleep)
        return f"results for {q}"

    async def add(a: int = 0, b: int = 0) -> int:
        """Add."""
        counter.calls.append(("add", {"a": a, "b": b}))
        await trio.sleep(sleep)
        return a + b

    async def fail() -> str:
        """Always fails."""
        counter.calls.append(("fail", {}))
        await trio.sleep(sleep)
        raise RuntimeError("tool failure")

    async def submit(ok: bool = True) -> str:
        """Submit the answer; fails when ok is false."""
        counter.calls.append(("submit", {"ok": ok}))
        if not ok:
            raise RuntimeError("rejected")
        return "submitted"

    async def echo(word: str = "") -> str:
        """Echo."""
        counter.calls.append(("echo", {"word": word}))
        await trio.sleep(sleep)
        return word

    return Toolbox([search, add, fail, submit, echo], parallel=parallel)


async def run(
    turns: Sequence[Any] | Metered,
    *plugins: object,
    model: str | None = None,
    parallel: bool = False,
    sleep: float = 0.0,
) -> tuple[Outcome, Metered, Counter, RunRecorder]:
    """Run a fresh agent (metered model, counting tools, a recorder, no autoload)."""
    metered = turns if isinstance(turns, Metered) else Metered(turns)
    counter, recorder = Counter(), RunRecorder()
    agent = Agent(
        model=model or metered.model,
        plugins=[metered, toolbox(counter, parallel=parallel, sleep=sleep), *plugins, recorder],
        autoload=False,
        max_steps=None,  # the kernel's default step limit is not what these tests measure
    )
    outcome = await agent.run("go")
    check_phase_grammar(recorder.calls)
    assert recorder.phases.count("run_end") == 1 and recorder.phases[-1] == "run_end"
    return outcome, metered, counter, recorder


def tool_results(outcome: Outcome) -> list[Message]:
    return [m for m in outcome.state.messages if m.role == "tool"]


def signature(name: str, arguments: dict[str, Any]) -> str:
    return name + json.dumps(arguments, sort_keys=True)
