"""Patches: the only way a plugin changes a run.

A phase hook returns a list of patches (or None). The kernel checks each patch
against the phase's legality table (`ALLOWED`), journals the list, and folds it into
the run's state in pluggy call order. Patches are small frozen values and serialise
through the kernel's converter.

Which patch types each phase accepts is `ALLOWED` (rendered as a table in
docs/hooks.md).

`AppendMessages` after inference is added after the assistant message (for
example, feedback for the model's next step). Tool-scoped patches (`Block`,
`Suspend`, `ProvideResult`, `RewriteArguments`, `Remind`) act on the phase's tool call;
when several plugins return them, the first in call order decides (`Block` and
`ProvideResult` win over `Suspend`, which wins over running the tool).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from attrs import field, frozen

from ._state import EMPTY, Message, StateKey, freeze_mapping

__all__ = [
    "ALLOWED",
    "AppendMessages",
    "Block",
    "ExcludeTools",
    "Finish",
    "IncrementData",
    "InjectContext",
    "OnlyTools",
    "Patch",
    "ProvideResult",
    "Remind",
    "ReplaceMessage",
    "RewriteArguments",
    "SetData",
    "SetModel",
    "SetWindow",
    "Stop",
    "Suspend",
    "ToolChoice",
]


@frozen
class Patch:
    """Base class of every patch."""


def _tuple_of_messages(messages: Iterable[Message]) -> tuple[Message, ...]:
    return tuple(messages)


def _frozenset(names: Iterable[str]) -> frozenset[str]:
    if isinstance(names, str):
        raise TypeError("expected a collection of tool names, got a single string")
    return frozenset(names)


@frozen
class AppendMessages(Patch):
    """Append messages to the conversation."""

    messages: tuple[Message, ...] = field(converter=_tuple_of_messages)


@frozen
class InjectContext(Patch):
    """Add `text` as a system message to the next inference request only."""

    text: str


@frozen
class SetData(Patch):
    """Store `value` under a plugin `StateKey`.

    The key must be declared (``runtime.add_state_key(key)`` in
    `agent_register_runtime`) and `value` must be an instance of its type (the outer
    type for containers): the kernel checks both when the hook returns the patch,
    and ends the run with outcome ``error`` naming the plugin, the hook and the key
    otherwise, rather than journaling a value that would not load on resume.
    """

    key: StateKey[Any]
    value: Any


@frozen
class IncrementData(Patch):
    """Add `by` to the number under a plugin `StateKey` (starting from its default).

    Checked like `SetData`: the key must be declared and `by` an instance of its
    type (an ``int`` key takes an ``int``, a ``float`` key either).
    """

    key: StateKey[Any]
    by: int | float = 1


@frozen
class ToolChoice(Patch):
    """Set the next inference's tool choice: "auto", "none", "required" or a tool name."""

    choice: str


@frozen
class SetModel(Patch):
    """Send the following inferences to `model` (a handoff to another agent, a cheaper model)."""

    model: str


@frozen
class ExcludeTools(Patch):
    """Hide these tools from the model from now on."""

    names: frozenset[str] = field(converter=_frozenset)


@frozen
class OnlyTools(Patch):
    """Show only these tools to the model from now on (an empty set shows none)."""

    names: frozenset[str] = field(converter=_frozenset)


@frozen
class Stop(Patch):
    """End the run with outcome `stopped`, a machine-readable `code` and a `detail`.

    The current step still reaches StepEnd; no further inference or tool call starts.
    The first `Stop` or `Finish` folded wins.
    """

    code: str
    detail: str = ""


@frozen
class Finish(Patch):
    """End the run with outcome `completed` (e.g. a final-answer tool was called).

    Like `Stop`, the current step still reaches StepEnd and nothing further starts.
    Ignored once the run is stopping (after an earlier `Stop` or `Finish`).
    """

    detail: str = ""


@frozen
class SetWindow(Patch):
    """Send only part of the conversation from now on (context-window strategies).

    Requests carry the leading system messages, then `summary` (if any) as a system
    message, then ``messages[start:]``. The journal and `RunState.messages` keep
    everything. `start` must not split a tool call from its result (the kernel
    refuses a window starting at a tool message).
    """

    start: int
    summary: str = ""


@frozen
class ReplaceMessage(Patch):
    """Replace the message at `index` (e.g. a guardrail rewriting the user's input)."""

    index: int
    message: Message


@frozen
class Block(Patch):
    """Do not run this tool call; the model receives `reason` as an error result.

    A `Block` outranks every other decision on the call (`ProvideResult`, `Suspend`),
    whatever the plugin order; among several, the first one's reason is used.
    """

    reason: str


@frozen
class Suspend(Patch):
    """Suspend this tool call until a decision (`Approve` / `Deny`) arrives."""

    reason: str = "approval required"


@frozen
class ProvideResult(Patch):
    """Answer this tool call with `content` without running the tool."""

    content: str
    is_error: bool = False


@frozen
class RewriteArguments(Patch):
    """Run this tool call with `arguments` instead of the model's."""

    arguments: Mapping[str, Any] = field(default=EMPTY, converter=freeze_mapping, hash=False)


@frozen
class Remind(Patch):
    """Add `text` after this call's result, inside the tool message the model sees."""

    text: str


_STATE = frozenset({SetData, IncrementData})
_SETUP = _STATE | {
    AppendMessages,
    ReplaceMessage,
    InjectContext,
    ToolChoice,
    SetModel,
    SetWindow,
    ExcludeTools,
    OnlyTools,
    Stop,
}

#: Which patch types each phase hook may return.
ALLOWED: Mapping[str, frozenset[type[Patch]]] = {
    "run_start": _SETUP,
    "step_start": _SETUP,
    "before_inference": _STATE | {InjectContext, ToolChoice, SetModel, SetWindow, ExcludeTools, OnlyTools, Stop},
    "after_inference": _STATE | {AppendMessages, Finish, Stop},
    "before_tool_execute": _STATE | {Block, Suspend, ProvideResult, RewriteArguments, Stop},
    "after_tool_execute": _STATE | {Remind, SetModel, Finish, Stop},
    "step_end": _STATE | {AppendMessages, InjectContext, SetModel, SetWindow, ExcludeTools, OnlyTools, Finish, Stop},
    "run_end": _STATE,
}
