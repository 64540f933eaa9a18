"""`Toolbox`: a plugin offering Python functions as tools."""

from __future__ import annotations

import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any, final

from agent_kernel import RuntimeRegistrar, ToolRegistrar, ToolSpec, hookimpl

from ._strategies import Parallel, Sequential
from ._tool import Tool, ToolDefinitionError, _check_timeout
from ._types import make_converter


def add_function(tools: ToolRegistrar, function: Callable[..., Any], *, timeout: float | None = None) -> Tool:
    """Register a type-hinted function as a tool, from a plugin's ``agent_register_tools`` hook.

    The same schema, validation, result encoding and timeouts as `Toolbox` (see it),
    for a plugin that offers its own tools among other work::

        class Weather:
            name = "weather"

            @hookimpl
            def agent_register_tools(self, tools):
                add_function(tools, self.forecast)  # a bound method: `self` is not a parameter

            def forecast(self, city: str, days: int = 1) -> str:
                \"\"\"The forecast for a city.

                Args:
                    city: the city.
                    days: how many days ahead.
                \"\"\"
                ...

    The tool records the plugin whose hook registered it. Its calls run with the
    agent's tool strategy (the ``tools`` entry point's `Sequential` unless a plugin
    sets another).

    Args:
        tools: the registrar the hook received.
        function: the function (sync or async; ``@tool(...)`` options apply).
        timeout: seconds per call, unless ``@tool(timeout=...)`` says otherwise.

    Returns:
        The compiled `Tool`.

    Raises:
        ToolDefinitionError: the function cannot be a tool.
        ConfigurationError: another plugin registered a tool of the same name.

    .. versionadded:: 0.1
    """
    _check_timeout(timeout, "add_function(timeout=...)")
    compiled = Tool(function, timeout=timeout)
    tools.add(compiled.spec, compiled)
    return compiled


@final
class Toolbox:
    """A plugin that offers type-hinted Python functions (sync or async) as tools.

    Each function's parameters become a JSON schema (from the type hints, and the
    Google-style docstring's ``Args:`` for descriptions; the docstring's description
    describes the tool). The model's arguments are checked against the hints before
    the call: wrong types, missing required parameters and unknown ones are refused
    with a message naming each parameter and what it expected, and the model sees it
    as an error result. Nothing is coerced: ``"5"`` is not an integer.

    A parameter annotated `agent_kernel.ToolContext` is not shown to the model; the
    tool receives the call's context there (``ctx.idempotency_key`` is stable across
    retries and resumes: ``run_id:step:call_id``).

    Sync functions run in a worker thread (the event loop is never blocked); async
    ones are awaited. A str return value is the result as is, a `ToolResult` is
    used as is, anything else is sent as JSON (attrs classes through cattrs).
    Exceptions go to the kernel (``agent_on_tool_error``; by default the model gets
    an error result naming the exception).

    A call that exceeds its timeout is cancelled and the model gets the error result
    "Tool 'name' timed out after N s." (a result, not an exception: it is not the
    model's input that was wrong, and retrying is the model's or a plugin's choice).
    A sync tool's thread cannot be interrupted: on timeout it is abandoned and may
    finish in the background. Without a timeout, cancelling the run waits for a
    running sync tool to return.

    Args:
        functions: the tool functions; set per-tool options with `tool`.
        parallel: run the calls of one step concurrently (`Parallel`) instead of one
            after another (`Sequential`).
        max_concurrency: with ``parallel=True``, the most calls in flight at once.
        name: the plugin name; give each Toolbox of one agent its own. With plugin
            autoload on, ``"tools"`` is taken by this distribution's entry point (the default, ``"toolbox"``, is free).
        timeout: default seconds per call (a tool's ``@tool(timeout=...)`` wins).

    Raises:
        ToolDefinitionError: a function cannot be a tool (the message names the
            function and parameter), or two functions share a tool name.
        ValueError: an invalid `max_concurrency` or `timeout`.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        functions: Iterable[Callable[..., Any]],
        parallel: bool = False,
        max_concurrency: int | None = None,
        *,
        name: str = "toolbox",
        timeout: float | None = None,
    ) -> None:
        if callable(functions) or isinstance(functions, (str, bytes)) or not isinstance(functions, Iterable):
            raise TypeError(f"Toolbox takes a list of functions, e.g. Toolbox([{getattr(functions, '__name__', 'f')}])")
        if not isinstance(name, str) or not name:
            raise ValueError(f"Toolbox name must be a non-empty string, got {name!r}")
        if max_concurrency is not None:
            if not parallel:
                raise ValueError("max_concurrency bounds parallel tool calls; pass parallel=True with it")
            if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1:
                raise ValueError(f"max_concurrency must be a positive int or None, got {max_concurrency!r}")
        _check_timeout(timeout, "Toolbox(timeout=...)")
        self.name = name
        self.strategy: Sequential | Parallel = Parallel(max_concurrency) if parallel else Sequential()
        converter = make_converter()
        self._tools: dict[str, Tool] = {}
        for function in functions:
            compiled = Tool(function, plugin=name, timeout=timeout, converter=converter)
            other = self._tools.get(compiled.name)
            if other is not None:
                raise ToolDefinitionError(
                    f"Toolbox {name!r}: {other.function!r} and {function!r} are both named {compiled.name!r}; "
                    "rename one with @tool(name=...)"
                )
            self._tools[compiled.name] = compiled

    @property
    def tools(self) -> Mapping[str, Tool]:
        """The compiled tools by name."""
        return types.MappingProxyType(self._tools)

    @property
    def specs(self) -> tuple[ToolSpec, ...]:
        """What the model is told about each tool."""
        return tuple(t.spec for t in self._tools.values())

    def validate(self, tool: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """Check `arguments` for `tool` as a model call would be checked.

        Returns:
            The structured keyword arguments (without the `ToolContext`).

        Raises:
            KeyError: no such tool.
            ToolInputError: the arguments are invalid.
        """
        return self._tools[tool].validate(arguments)

    def __repr__(self) -> str:
        return f"Toolbox({list(self._tools)!r}, strategy={self.strategy!r}, name={self.name!r})"

    @hookimpl
    def agent_register_tools(self, tools: ToolRegistrar) -> None:
        for compiled in self._tools.values():
            tools.add(compiled.spec, compiled)

    @hookimpl
    def agent_register_runtime(self, runtime: RuntimeRegistrar) -> None:
        runtime.set_tool_strategy(self.strategy)
