"""THE contract between the kernel and its plugins: every hook, in phase order.

Run protocol
============

A run (each `Agent.run` or `Agent.resume` call) goes through these phases::

    RunStart
      ( StepStart → BeforeInference → [LLM] → AfterInference
          → BeforeToolExecute* → ( [TOOL] → AfterToolExecute )*
        → StepEnd )*
    RunEnd                       # exactly once, also on error, cancel and suspend

1. ``agent_run_start(ctx)``: the run begins or resumes (``ctx.resumed``).
2. ``agent_step_start(ctx)``: a step begins; ``ctx.step`` is its number.
3. ``agent_before_inference(ctx, request)``: the request about to be sent.
4. [LLM]: the model's executor answers; the response is journaled.
5. ``agent_after_inference(ctx, response)``: the response, already journaled.
6. ``agent_before_tool_execute(ctx, call)``: once per tool call of the response, in
   call order, before any of them runs; may block, suspend, answer or rewrite it.
7. [TOOL]: the tool strategy runs the calls (one after another, or concurrently).
8. ``agent_after_tool_execute(ctx, call, result)``: once per call that has a result,
   in call order.
9. ``agent_step_end(ctx)``: the step is over. Without tool calls, or after a ``Stop``,
   the run then ends; otherwise the next step starts.
10. ``agent_run_end(ctx, outcome)``: always last, exactly once per invocation.

A run that errors, is cancelled or suspends goes from the phase it was in straight to
RunEnd; a ``resume`` continues at the first phase that was not committed.

Rules for every phase hook
==========================

* Arguments: a read-only ``ctx`` (`Context`: the frozen `RunState` snapshot, run id,
  step, whether this is a resumed invocation) plus the phase's own object. An
  implementation may take any subset of the arguments.
* Returns: a list of patches (`agent_kernel.patches`), or None. Which patch types
  each phase accepts is the table in `agent_kernel.patches`; anything else ends the
  run with an error naming the plugin and hook.
* All implementations of one phase see the same snapshot. ``async def``
  implementations of one phase run concurrently; patches are folded in pluggy call
  order regardless (tryfirst, then LIFO registration order, then trylast).
* Raising ends the run with outcome ``error`` naming the plugin and the hook; the
  journal stays consistent and the run can be resumed.
* A committed phase is never re-run on resume; its patches are in the journal.

Observer hooks (``agent_on_event``) must not raise: a failing observer is disabled
and logged, and the run goes on.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, NamedTuple

import pluggy
from attrs import frozen

from ._state import Request, Response, RunState, ToolCall, ToolResult, ToolSpec

if TYPE_CHECKING:
    from cattrs import Converter

    from ._outcome import Outcome
    from ._registry import CommandRegistrar, ModelRegistrar, RuntimeRegistrar, ToolRegistrar
    from .events import Event
    from .patches import Patch

PROJECT = "agent_kernel"
_spec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class Context(NamedTuple):
    """The read-only view every phase hook receives (an immutable named tuple).

    Attributes:
        run_id: the run's id.
        state: the frozen `RunState` as of the start of this phase.
        step: the current step number (0 before the first StepStart).
        resumed: true when this invocation is a `resume`.
        attempt: the invocation number (1 for the first `run`).
        phase: the phase name without the ``agent_`` prefix.
        tools: every registered tool's `ToolSpec` by name (also hidden ones).
    """

    run_id: str
    state: RunState
    step: int
    resumed: bool
    attempt: int
    phase: str
    tools: Mapping[str, ToolSpec]


# Decisions returned by the decision hooks -------------------------------------------


@frozen
class Retry:
    """Decision: try again after `delay` seconds."""

    delay: float = 0.0


@frozen
class Fallback:
    """Decision: send the same request to `model` instead."""

    model: str


@frozen
class Fail:
    """Decision: give up (the default)."""


# ---------------------------------------------------------------------------------
# Registration: called once when an Agent is built, in pluggy order.
# ---------------------------------------------------------------------------------


@_spec
def agent_register_models(models: ModelRegistrar) -> None:
    """Register LLM executors by model name or prefix.

    Fires once when the `Agent` is built. Call ``models.add("name", executor)`` for an
    exact model string or ``models.add_prefix("openai:", factory)`` for a family;
    ``factory(rest)`` is called lazily with the text after the prefix.

    Args:
        models: the `ModelRegistrar`.

    Returns:
        None. Registering a name another plugin registered raises
        `ConfigurationError` naming both.

    Raising aborts building the Agent.

    .. versionadded:: 0.1
    """


@_spec
def agent_register_tools(tools: ToolRegistrar) -> None:
    """Register tools the model may call.

    Fires once when the `Agent` is built. Call ``tools.add(spec, function)``.

    Args:
        tools: the `ToolRegistrar`.

    Returns:
        None. Two plugins registering one tool name raise `ConfigurationError`.

    Raising aborts building the Agent.

    .. versionadded:: 0.1
    """


@_spec
def agent_register_runtime(runtime: RuntimeRegistrar) -> None:
    """Register the run's machinery: tool strategy, journal, state keys, approvers.

    Fires once when the `Agent` is built. Declare here every `StateKey` your
    patches use (``runtime.add_state_key(KEY)``): a `SetData` or `IncrementData` on
    an undeclared key, or with a value that is not of the key's type, ends the run
    with outcome ``error`` when the hook returns it. A key whose type the agent's
    converter cannot handle needs hooks in `agent_configure_converter`.

    Args:
        runtime: the `RuntimeRegistrar`.

    Returns:
        None. A second, different strategy or journal raises `ConfigurationError`.

    Raising aborts building the Agent.

    .. versionadded:: 0.1
    """


@_spec
def agent_register_commands(commands: CommandRegistrar) -> None:
    """Add subcommands to the ``agent-kernel`` CLI.

    Fires when the CLI starts. Call ``commands.add(name, configure, run, help)``.

    Args:
        commands: the `CommandRegistrar`.

    Returns:
        None.

    Raising aborts the CLI with the error.

    .. versionadded:: 0.1
    """


@_spec
def agent_configure_converter(converter: Converter) -> None:
    """Register cattrs (un)structure hooks for the plugin's own types.

    Fires once per `Agent`, when it first needs its converter (before the first journal
    entry is encoded or decoded), so values a plugin keeps under its `StateKey`s
    round-trip through persistent journals.

    Args:
        converter: the agent's private cattrs converter.

    Returns:
        None.

    Raising propagates from the first (de)serialisation.

    .. versionadded:: 0.1
    """


# ---------------------------------------------------------------------------------
# Run
# ---------------------------------------------------------------------------------


@_spec
def agent_run_start(ctx: Context) -> list[Patch] | None:
    """The run begins (``ctx.resumed`` is false) or resumes (true).

    Fires first in every invocation, after the journal has been folded, so
    ``ctx.state`` already holds everything committed before.

    Args:
        ctx: the phase context.

    Returns:
        A list of patches legal in ``run_start``, or None; folded in call order.

    Raising ends the run with outcome ``error``.

    .. versionadded:: 0.1
    """


@_spec
def agent_wrap_run(ctx: Context) -> AbstractAsyncContextManager[Any] | None:
    """Return an async context manager holding a resource for this invocation.

    Entered right after RunStart committed, inside the run's cancel scope, and exited
    before RunEnd, in reverse order (the first returned is outermost). Use it for
    resources whose lifetime is the run: a server process, a connection pool, a span,
    a task group running a background service (no task outlives its run).

    Args:
        ctx: the phase context of RunStart.

    Returns:
        An async context manager or None.

    An exception from entering or exiting a manager ends the run with outcome
    ``error`` naming the plugin (when raised by the hook) or the manager's error.

    .. versionadded:: 0.1
    """


# ---------------------------------------------------------------------------------
# Step
# ---------------------------------------------------------------------------------


@_spec
def agent_step_start(ctx: Context) -> list[Patch] | None:
    """A step begins; ``ctx.step`` is its number (1 for the first).

    Args:
        ctx: the phase context.

    Returns:
        A list of patches legal in ``step_start``, or None; folded in call order.

    Raising ends the run with outcome ``error``.

    .. versionadded:: 0.1
    """


# ---------------------------------------------------------------------------------
# Inference
# ---------------------------------------------------------------------------------


@_spec
def agent_before_inference(ctx: Context, request: Request) -> list[Patch] | None:
    """The request is built and about to be sent.

    Patches that change the request (``InjectContext``, ``ExcludeTools``,
    ``OnlyTools``) apply to this very request: the kernel rebuilds it after folding.

    Args:
        ctx: the phase context.
        request: the request as it stands before this phase's patches.

    Returns:
        A list of patches legal in ``before_inference``, or None; folded in call order.
        A ``Stop`` means no request is sent.

    Raising ends the run with outcome ``error``.

    .. versionadded:: 0.1
    """


@_spec(firstresult=True)
def agent_on_inference_error(
    ctx: Context, request: Request, error: Exception, attempt: int
) -> Retry | Fallback | Fail | None:
    """Decide what to do when an inference failed.

    Fires after the executor raised; ``attempt`` is 1 on the first failure. The kernel
    carries out the first non-None decision: `Retry` after a delay, `Fallback` to
    another model, or `Fail`. With no decision the run ends with outcome ``error``.

    Args:
        ctx: the phase context.
        request: the request that failed.
        error: the exception (an `InferenceError` carries ``retryable`` and ``retry_after``).
        attempt: how many times this request has failed so far.

    Returns:
        `Retry`, `Fallback`, `Fail` or None (firstresult).

    Raising ends the run with outcome ``error``.

    .. versionadded:: 0.1
    """


@_spec
def agent_wrap_inference(ctx: Context, request: Request) -> AbstractAsyncContextManager[Any] | None:
    """Return an async context manager to wrap around the inference call.

    Fires before each attempt. Managers nest in call order: the first returned is
    outermost. Use it for spans, timeouts and rate limits around awaited work.

    Args:
        ctx: the phase context.
        request: the request about to be sent.

    Returns:
        An async context manager or None.

    An exception from the manager counts as a failed inference.

    .. versionadded:: 0.1
    """


@_spec
def agent_after_inference(ctx: Context, response: Response) -> list[Patch] | None:
    """The model answered; ``response`` is already journaled and will not be re-requested.

    The assistant message is appended before this phase's patches.

    Args:
        ctx: the phase context (``ctx.state`` does not yet contain the message).
        response: the executor's response.

    Returns:
        A list of patches legal in ``after_inference``, or None; folded in call order.

    Raising ends the run with outcome ``error``.

    .. versionadded:: 0.1
    """


# ---------------------------------------------------------------------------------
# Tool
# ---------------------------------------------------------------------------------


@_spec
def agent_before_tool_execute(ctx: Context, call: ToolCall) -> list[Patch] | None:
    """A tool call is about to be decided on.

    Fires once per call of the response, in call order, before any call runs. With a
    concurrent tool strategy all calls' hooks see the same snapshot.

    Args:
        ctx: the phase context.
        call: the tool call as the model made it.

    Returns:
        A list of patches legal in ``before_tool_execute``, or None. ``Block`` and
        ``ProvideResult`` answer the call without running it, ``Suspend`` pauses the
        run for a decision, ``RewriteArguments`` changes what the tool receives.

    Raising ends the run with outcome ``error``.

    .. versionadded:: 0.1
    """


@_spec(firstresult=True)
def agent_on_tool_error(ctx: Context, call: ToolCall, error: Exception, attempt: int) -> Retry | Fail | None:
    """Decide what to do when a tool raised.

    ``ToolInputError`` never reaches this hook (it goes to the model at once). The
    default, with no decision, is `Fail`: the model receives an error result.

    Args:
        ctx: the phase context.
        call: the failed call.
        error: the exception.
        attempt: how many times this call has failed so far.

    Returns:
        `Retry` or `Fail` or None (firstresult).

    Raising ends the run with outcome ``error``.

    .. versionadded:: 0.1
    """


@_spec
def agent_wrap_tool_call(ctx: Context, call: ToolCall) -> AbstractAsyncContextManager[Any] | None:
    """Return an async context manager to wrap around one tool call.

    Managers nest in call order (first returned is outermost).

    Args:
        ctx: the phase context.
        call: the call about to run.

    Returns:
        An async context manager or None.

    An exception from the manager counts as the tool's failure.

    .. versionadded:: 0.1
    """


@_spec
def agent_after_tool_execute(ctx: Context, call: ToolCall, result: ToolResult) -> list[Patch] | None:
    """A tool call has its result (run, blocked, provided, denied or unknown).

    Fires in call order. The tool message is appended after this phase's patches,
    with any ``Remind`` text added to it.

    Args:
        ctx: the phase context.
        call: the call (with the arguments it ran with).
        result: what the model will see.

    Returns:
        A list of patches legal in ``after_tool_execute``, or None.

    Raising ends the run with outcome ``error``.

    .. versionadded:: 0.1
    """


@_spec
def agent_step_end(ctx: Context) -> list[Patch] | None:
    """The step is over: its inference and tool calls are all committed.

    Args:
        ctx: the phase context.

    Returns:
        A list of patches legal in ``step_end``, or None; folded in call order.

    Raising ends the run with outcome ``error``.

    .. versionadded:: 0.1
    """


# ---------------------------------------------------------------------------------
# End
# ---------------------------------------------------------------------------------


@_spec
def agent_run_end(ctx: Context, outcome: Outcome) -> list[Patch] | None:
    """The invocation ends; fires exactly once, whatever happened.

    Args:
        ctx: the phase context.
        outcome: the outcome so far (its ``state`` is ``ctx.state``).

    Returns:
        A list of ``SetData`` / ``IncrementData`` patches, or None. They are folded
        into the final state.

    Raising turns the outcome into ``error`` (unless it already is one; a cancelled run
    stays ``cancelled`` with the failure recorded as its error).

    .. versionadded:: 0.1
    """


# ---------------------------------------------------------------------------------
# Observers
# ---------------------------------------------------------------------------------


@_spec
def agent_on_event(event: Event) -> None:
    """Observe every event of every run of the agent, in ``seq`` order.

    Observers must be quick and must not raise: one that raises is disabled for
    the rest of the run and logged, and the run goes on.

    Args:
        event: the event (see `agent_kernel.events`).

    Returns:
        None.

    .. versionadded:: 0.1
    """


#: Phase hooks in phase order, without the ``agent_`` prefix.
PHASES = (
    "run_start",
    "step_start",
    "before_inference",
    "after_inference",
    "before_tool_execute",
    "after_tool_execute",
    "step_end",
    "run_end",
)

__all__ = ["PHASES", "Context", "Fail", "Fallback", "Retry", "hookimpl"]
