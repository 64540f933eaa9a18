"""Patches: the only way a plugin changes a run.

A phase hook returns a list of patches (or None). The kernel checks each patch
against the phase's legality table (`ALLOWED`), journals the list, and folds it into
the run's state in pluggy call order. Patches are small frozen values and serialise
through the kernel's converter.

Each patch class owns its rules: the phases it is legal in (`phases`), what it is
checked against when a hook returns it (`check`) and how it folds into a state
(`fold`). The table of which patch types each phase accepts, `ALLOWED`, is derived
from them (rendered in docs/hooks.md).

`AppendMessages` after inference is added after the assistant message (for
example, feedback for the model's next step). Tool-scoped patches (`Block`,
`Suspend`, `ProvideResult`, `RewriteArguments`, `Remind`) act on the phase's tool call;
when several plugins return them, the first in call order decides (`Block` and
`ProvideResult` win over `Suspend`, which wins over running the tool).
"""

from __future__ import annotations

import reprlib
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

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
    instance_types,
    replace_state,
    type_name,
)
from .hookspecs import PHASES

if TYPE_CHECKING:
    from ._log import Log
    from ._serde import JsonCodec

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


class Checking:
    """What the patches a hook returned are checked against (see `Patch.check`).

    Args:
        messages: the conversation as the hook saw it.
        state_keys: the agent's declared state keys.
        codec: the agent's codec (types it cannot serialise are refused once it exists).
        types: a cache, per state key name, of what isinstance accepts for its values.
    """

    __slots__ = ("codec", "messages", "state_keys", "types")

    def __init__(
        self,
        messages: Log[Message],
        state_keys: Mapping[str, StateKey[Any]],
        codec: JsonCodec | None,
        types: dict[str, tuple[type, ...] | None],
    ) -> None:
        self.messages = messages
        self.state_keys = state_keys
        self.codec = codec
        self.types = types


@frozen
class Patch:
    """Base class of every patch.

    `phases` names the phase hooks that may return it; `check` says why it cannot
    apply to the run; `fold` applies it to a state.
    """

    phases: ClassVar[frozenset[str]] = frozenset()

    def check(self, checking: Checking) -> str | None:
        """Why this patch cannot apply to the run (the kernel ends the run with that
        error, naming the plugin and hook), or None (by default: nothing to check)."""
        return None

    def fold(self, folding: Folding) -> None:
        """Apply this patch to the state being folded (by default: no change, as for
        tool-scoped patches, which the kernel reads per call)."""


def _check_state_value(patch: SetData | IncrementData, value: Any, what: str, checking: Checking) -> str | None:
    """Refuse a state patch that would not survive the journal (DESIGN §4).

    The key must be declared (``runtime.add_state_key``), and the value (or the
    amount of an `IncrementData`) an instance of the declared type: its outer type
    for containers (``list[int]`` checks ``list``); ``float`` accepts ``int``;
    ``int`` refuses ``bool``; ``Any`` and types isinstance cannot check accept
    anything. Once the agent serialises (a persistent journal, or
    `agent_kernel.testing.CodecJournal`), the declared type must also be one its
    converter can structure. A dict lookup and an isinstance per patch: values
    are not round-tripped here.
    """
    key = patch.key
    declared = checking.state_keys.get(key.name)
    kind = type(patch).__name__
    if declared is None:
        return (
            f"returned {kind} on state key {key.name!r}, which is not declared: declare it in "
            "agent_register_runtime with runtime.add_state_key(KEY), so that its values are journaled "
            "with their type and the run can be resumed"
        )
    accepted = checking.types.get(key.name, _UNSET)
    if accepted is _UNSET:
        accepted = checking.types[key.name] = instance_types(declared.type)
    if isinstance(patch, IncrementData) and (isinstance(value, bool) or not isinstance(value, (int, float))):
        accepted = (int, float)  # whatever the key's type, `by` is a number
    if accepted is not None and (not isinstance(value, accepted) or (type(value) is bool and bool not in accepted)):
        return (
            f"returned {kind} on state key {key.name!r} with {what} of type {type(value).__name__} "
            f"({reprlib.repr(value)}), but the key is declared with type {type_name(declared.type)}"
        )
    problem = checking.codec.type_problem(declared) if checking.codec is not None else None
    if problem is not None:
        return (
            f"returned {kind} on state key {key.name!r}, declared with type {type_name(declared.type)}, "
            f"which this agent's converter cannot serialise ({problem}); register (un)structure hooks "
            "for it in agent_configure_converter, or declare the key with a serialisable type"
        )
    return None


_UNSET: Any = object()


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

    def check(self, checking: Checking) -> str | None:
        return _check_state_value(self, self.value, "a value", checking)

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

    def check(self, checking: Checking) -> str | None:
        return _check_state_value(self, self.by, "an amount", checking)

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

    def check(self, checking: Checking) -> str | None:
        messages = checking.messages
        if not 0 <= self.start <= len(messages):
            return f"SetWindow start {self.start} is outside 0..{len(messages)}"
        if self.start < len(messages) and messages[self.start].role == "tool":
            return f"SetWindow start {self.start} would split a tool result from its call"
        return None

    def fold(self, folding: Folding) -> None:
        folding.changes["window_start"], folding.changes["summary"] = self.start, self.summary


@frozen
class ReplaceMessage(Patch):
    """Replace the message at `index` (e.g. a guardrail rewriting the user's input)."""

    phases: ClassVar[frozenset[str]] = _SETUP
    index: int
    message: Message

    def check(self, checking: Checking) -> str | None:
        if not 0 <= self.index < len(checking.messages):
            return f"ReplaceMessage index {self.index} is outside 0..{len(checking.messages) - 1}"
        return None

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
