"""Fake tools and trivial tool strategies for tests (no dependency on agent-plugin-tools)."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import anyio
from attrs import frozen

from .._registry import RuntimeRegistrar, ToolContext, ToolRegistrar, ToolStrategy
from .._state import ToolCall, ToolResult, ToolSpec
from ..hookspecs import hookimpl

__all__ = ["ConcurrentStrategy", "FakeTools", "SequentialStrategy", "ToolInvocation"]

Execute = Callable[[ToolCall], Awaitable[None]]


class SequentialStrategy:
    """Runs the calls of a step one after another, in call order."""

    concurrent = False

    async def run(self, calls: Sequence[ToolCall], execute: Execute) -> None:
        for call in calls:
            await execute(call)


class ConcurrentStrategy:
    """Runs the calls of a step concurrently, at most `max_concurrency` at a time.

    Args:
        max_concurrency: the bound, or None for no bound.
    """

    concurrent = True

    def __init__(self, max_concurrency: int | None = None) -> None:
        self.max_concurrency = max_concurrency

    async def run(self, calls: Sequence[ToolCall], execute: Execute) -> None:
        limiter = anyio.CapacityLimiter(self.max_concurrency) if self.max_concurrency else None

        async def one(call: ToolCall) -> None:
            if limiter is None:
                await execute(call)
            else:
                async with limiter:
                    await execute(call)

        async with anyio.create_task_group() as tg:
            for call in calls:
                tg.start_soon(one, call)


@frozen
class ToolInvocation:
    """One start of a fake tool: its name, arguments, idempotency key and attempt."""

    name: str
    arguments: Mapping[str, Any]
    idempotency_key: str
    attempt: int


class FakeTools:
    """A plugin offering plain Python functions as tools, plus a tool strategy.

    Each function (sync or ``async def``) is called with the model's arguments as
    keyword arguments; a parameter named ``tool_context`` receives the `ToolContext`.
    Its return value becomes the result's content (``str(value)``) unless it already
    is a `ToolResult`. Every start is recorded in `invocations`, every normal return
    in `finished`.

    Args:
        functions: the tools; the function's ``__name__`` is the tool's name.
        strategy: "sequential" (default), "concurrent", a `ToolStrategy` object, or
            None to register no strategy (another plugin provides one).
        idempotent: names of the tools declared idempotent.
        name: the plugin's name.
    """

    def __init__(
        self,
        *functions: Callable[..., Any],
        strategy: str | ToolStrategy | None = "sequential",
        idempotent: Iterable[str] = (),
        name: str = "fake-tools",
    ) -> None:
        self.name = name
        self.functions = {function.__name__: function for function in functions}
        if strategy == "sequential":
            strategy = SequentialStrategy()
        elif strategy == "concurrent":
            strategy = ConcurrentStrategy()
        elif isinstance(strategy, str):
            raise ValueError(f"unknown strategy {strategy!r}: use 'sequential', 'concurrent' or an object")
        self.strategy: ToolStrategy | None = strategy
        self.idempotent = frozenset(idempotent)
        self.invocations: list[ToolInvocation] = []
        self.finished: list[ToolInvocation] = []

    def count(self, name: str | None = None) -> int:
        """How many times a tool (or any tool) was started."""
        return sum(1 for i in self.invocations if name is None or i.name == name)

    @hookimpl
    def agent_register_tools(self, tools: ToolRegistrar) -> None:
        for tool_name, function in self.functions.items():
            parameters = [
                p
                for p in inspect.signature(function).parameters.values()
                if p.name != "tool_context" and p.kind is not p.VAR_KEYWORD
            ]
            schema = {"type": "object", "properties": {p.name: {} for p in parameters}}
            description = (inspect.getdoc(function) or tool_name).splitlines()[0]
            spec = ToolSpec(tool_name, description, schema, idempotent=tool_name in self.idempotent)
            tools.add(spec, self._wrap(tool_name, function))

    @hookimpl
    def agent_register_runtime(self, runtime: RuntimeRegistrar) -> None:
        if self.strategy is not None:
            runtime.set_tool_strategy(self.strategy)

    def _wrap(
        self, tool_name: str, function: Callable[..., Any]
    ) -> Callable[[Mapping[str, Any], ToolContext], Awaitable[ToolResult]]:
        wants_context = "tool_context" in inspect.signature(function).parameters

        async def run(arguments: Mapping[str, Any], context: ToolContext) -> ToolResult:
            invocation = ToolInvocation(tool_name, dict(arguments), context.idempotency_key, context.attempt)
            self.invocations.append(invocation)
            kwargs = dict(arguments)
            if wants_context:
                kwargs["tool_context"] = context
            value = function(**kwargs)
            if inspect.isawaitable(value):
                value = await value
            self.finished.append(invocation)
            return value if isinstance(value, ToolResult) else ToolResult(str(value))

        return run
