"""Patches: the only way a plugin changes a run.

A phase hook returns a list of patches (or None). The kernel checks each patch
against the phase's legality table (`ALLOWED`), journals the list, and folds it into
the run's state in pluggy call order. Patches are small frozen values and serialise
through the kernel's converter.

Each patch class owns its rules: the phases it is legal in (`phases`) and how it
folds into a state (`fold`). The table of which patch types each phase accepts,
`ALLOWED`, is derived from them (rendered in docs/hooks.md).

`AppendMessages` after inference is added after the assistant message (for
example, feedback for the model's next step). Tool-scoped patches (`Block`,
`Suspend`, `ProvideResult`, `RewriteArguments`, `Remind`) act on the phase's tool call;
when several plugins return them, the first in call order decides (`Block` and
`ProvideResult` win over `Suspend`, which wins over running the tool).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar

from attrs import field, frozen

from ._state import (
    EMPTY,
    ApprovalRequest,
    Message,
    RunState,
    StateKey,
    StopInfo,
    ToolCall,
    freeze_mapping,
    replace_state,
)
from .hookspecs import PHASES

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


_ALL_PHASES = frozenset(PHASES)
_SETUP = frozenset({"run_start", "step_start"})  # before the first request of the run or step
_REQUEST = _SETUP | {"before_inference", "step_end"}  # phases that shape the next request


class Folding:
    """The changes a list of patches makes to one state, gathered patch by patch (see `fold`)."""

    __slots__ = ("call", "changes", "data", "source", "state")

    def __init__(self, state: RunState, call: ToolCall | None) -> None:
        self.state = state
        self.call = call  # the phase's tool call (tool phases), for tool-scoped patches
        self.source = ""  # the plugin that returned the patch being folded
        self.changes: dict[str, Any] = {}
        self.data: dict[str, Any] | None = None  # a copy of the state's data, once a patch writes it

    def get(self, name: str) -> Any:
        """A state field as the patches folded so far left it."""
        return self.changes.get(name, getattr(self.state, name))

    def write_data(self) -> dict[str, Any]:
        if self.data is None:
            self.data = dict(self.state.data)
        return self.data

    def stop(self, info: StopInfo) -> None:
        """The first `Stop` or `Finish` folded wins."""
        if self.get("stop") is None:
            self.changes["stop"] = info

    def result(self) -> RunState:
        if self.data is not None:
            self.changes["data"] = MappingProxyType(self.data)
        return replace_state(self.state, **self.changes) if self.changes else self.state


@frozen
class Patch:
    """Base class of every patch.

    `phases` names the phase hooks that may return it; `fold` applies it to a state.
    """

    phases: ClassVar[frozenset[str]] = frozenset()

    def fold(self, folding: Folding) -> None:
        """Apply this patch to the state being folded (by default: no change, as for
        tool-scoped patches, which the kernel reads per call)."""


def _tuple_of_messages(messages: Iterable[Message]) -> tuple[Message, ...]:
    return tuple(messages)


def _frozenset(names: Iterable[str]) -> frozenset[str]:
    if isinstance(names, str):
        raise TypeError("expected a collection of tool names, got a single string")
    return frozenset(names)


@frozen
class AppendMessages(Patch):
    """Append messages to the conversation."""

    phases: ClassVar[frozenset[str]] = _SETUP | {"after_inference", "step_end"}
    messages: tuple[Message, ...] = field(converter=_tuple_of_messages)

    def fold(self, folding: Folding) -> None:
        folding.changes["messages"] = folding.get("messages").extend(self.messages)


@frozen
class InjectContext(Patch):
    """Add `text` as a system message to the next inference request only."""

    phases: ClassVar[frozenset[str]] = _REQUEST
    text: str

    def fold(self, folding: Folding) -> None:
        folding.changes["context"] = (*folding.get("context"), self.text)


@frozen
class SetData(Patch):
    """Store `value` under a plugin `StateKey`.

    The key must be declared (``runtime.add_state_key(key)`` in
    `agent_register_runtime`) and `value` must be an instance of its type (the outer
    type for containers): the kernel checks both when the hook returns the patch,
    and ends the run with outcome ``error`` naming the plugin, the hook and the key
    otherwise, rather than journaling a value that would not load on resume.
    """

    phases: ClassVar[frozenset[str]] = _ALL_PHASES
    key: StateKey[Any]
    value: Any

    def fold(self, folding: Folding) -> None:
        folding.write_data()[self.key.name] = self.value


@frozen
class IncrementData(Patch):
    """Add `by` to the number under a plugin `StateKey` (starting from its default).

    Checked like `SetData`: the key must be declared and `by` an instance of its
    type (an ``int`` key takes an ``int``, a ``float`` key either).
    """

    phases: ClassVar[frozenset[str]] = _ALL_PHASES
    key: StateKey[Any]
    by: int | float = 1

    def fold(self, folding: Folding) -> None:
        data = folding.write_data()
        data[self.key.name] = data.get(self.key.name, self.key.default) + self.by


@frozen
class ToolChoice(Patch):
    """Set the next inference's tool choice: "auto", "none", "required" or a tool name."""

    phases: ClassVar[frozenset[str]] = _SETUP | {"before_inference"}
    choice: str

    def fold(self, folding: Folding) -> None:
        folding.changes["tool_choice"] = self.choice


@frozen
class SetModel(Patch):
    """Send the following inferences to `model` (a handoff to another agent, a cheaper model)."""

    phases: ClassVar[frozenset[str]] = _REQUEST | {"after_tool_execute"}
    model: str

    def fold(self, folding: Folding) -> None:
        folding.changes["model"] = self.model


@frozen
class ExcludeTools(Patch):
    """Hide these tools from the model from now on."""

    phases: ClassVar[frozenset[str]] = _REQUEST
    names: frozenset[str] = field(converter=_frozenset)

    def fold(self, folding: Folding) -> None:
        folding.changes["excluded_tools"] = folding.get("excluded_tools") | self.names


@frozen
class OnlyTools(Patch):
    """Show only these tools to the model from now on (an empty set shows none)."""

    phases: ClassVar[frozenset[str]] = _REQUEST
    names: frozenset[str] = field(converter=_frozenset)

    def fold(self, folding: Folding) -> None:
        folding.changes["only_tools"] = self.names


@frozen
class Stop(Patch):
    """End the run with outcome `stopped`, a machine-readable `code` and a `detail`.

    The current step still reaches StepEnd; no further inference or tool call starts.
    The first `Stop` or `Finish` folded wins.
    """

    phases: ClassVar[frozenset[str]] = _ALL_PHASES - {"run_end"}
    code: str
    detail: str = ""

    def fold(self, folding: Folding) -> None:
        folding.stop(StopInfo(self.code, self.detail))


@frozen
class Finish(Patch):
    """End the run with outcome `completed` (e.g. a final-answer tool was called).

    Like `Stop`, the current step still reaches StepEnd and nothing further starts.
    Ignored once the run is stopping (after an earlier `Stop` or `Finish`).
    """

    phases: ClassVar[frozenset[str]] = frozenset({"after_inference", "after_tool_execute", "step_end"})
    detail: str = ""

    def fold(self, folding: Folding) -> None:
        folding.stop(StopInfo("finished", self.detail, completed=True))


@frozen
class SetWindow(Patch):
    """Send only part of the conversation from now on (context-window strategies).

    Requests carry the leading system messages, then `summary` (if any) as a system
    message, then ``messages[start:]``. The journal and `RunState.messages` keep
    everything. `start` must not split a tool call from its result (the kernel
    refuses a window starting at a tool message).
    """

    phases: ClassVar[frozenset[str]] = _REQUEST
    start: int
    summary: str = ""

    def fold(self, folding: Folding) -> None:
        folding.changes["window_start"], folding.changes["summary"] = self.start, self.summary


@frozen
class ReplaceMessage(Patch):
    """Replace the message at `index` (e.g. a guardrail rewriting the user's input)."""

    phases: ClassVar[frozenset[str]] = _SETUP
    index: int
    message: Message

    def fold(self, folding: Folding) -> None:
        folding.changes["messages"] = folding.get("messages").replace(self.index, self.message)


@frozen
class Block(Patch):
    """Do not run this tool call; the model receives `reason` as an error result.

    A `Block` outranks every other decision on the call (`ProvideResult`, `Suspend`),
    whatever the plugin order; among several, the first one's reason is used.
    """

    phases: ClassVar[frozenset[str]] = frozenset({"before_tool_execute"})
    reason: str


@frozen
class Suspend(Patch):
    """Suspend this tool call until a decision (`Approve` / `Deny`) arrives."""

    phases: ClassVar[frozenset[str]] = frozenset({"before_tool_execute"})
    reason: str = "approval required"

    def fold(self, folding: Folding) -> None:
        call, state = folding.call, folding.state
        if call is None:
            raise ValueError("Suspend needs the tool call it suspends")
        pending = folding.get("pending")
        request_id = f"{state.run_id}/{state.step}/{call.id}"
        if all(r.id != request_id for r in pending):
            request = ApprovalRequest(request_id, call, call.name, self.reason, state.step, folding.source)
            folding.changes["pending"] = (*pending, request)


@frozen
class ProvideResult(Patch):
    """Answer this tool call with `content` without running the tool."""

    phases: ClassVar[frozenset[str]] = frozenset({"before_tool_execute"})
    content: str
    is_error: bool = False


@frozen
class RewriteArguments(Patch):
    """Run this tool call with `arguments` instead of the model's."""

    phases: ClassVar[frozenset[str]] = frozenset({"before_tool_execute"})
    arguments: Mapping[str, Any] = field(default=EMPTY, converter=freeze_mapping, hash=False)


@frozen
class Remind(Patch):
    """Add `text` after this call's result, inside the tool message the model sees."""

    phases: ClassVar[frozenset[str]] = frozenset({"after_tool_execute"})
    text: str


_PATCHES = (
    AppendMessages,
    InjectContext,
    SetData,
    IncrementData,
    ToolChoice,
    SetModel,
    ExcludeTools,
    OnlyTools,
    Stop,
    Finish,
    SetWindow,
    ReplaceMessage,
    Block,
    Suspend,
    ProvideResult,
    RewriteArguments,
    Remind,
)

#: Which patch types each phase hook may return (from each class's `phases`).
ALLOWED: Mapping[str, frozenset[type[Patch]]] = MappingProxyType(
    {phase: frozenset(c for c in _PATCHES if phase in c.phases) for phase in PHASES}
)
