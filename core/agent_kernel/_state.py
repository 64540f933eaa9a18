"""The run's values: frozen attrs classes, folded from the journal, never mutated."""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Generic, Literal, TypeVar, final

import attrs
from attrs import field, frozen

from ._log import Log

T = TypeVar("T")

Role = Literal["system", "user", "assistant", "tool"]
Reason = Literal["completed", "stopped", "cancelled", "suspended", "error"]
EMPTY: Mapping[str, Any] = MappingProxyType({})


def freeze_mapping(value: Mapping[str, Any]) -> Mapping[str, Any]:
    """Return a read-only shallow copy of `value` (used as an attrs converter)."""
    if type(value) is MappingProxyType:
        return value
    return MappingProxyType(dict(value))


@frozen
class ToolCall:
    """One tool call the model asked for.

    `id` is the provider's call id, unique within a step; `arguments` is the decoded
    JSON object (read-only).
    """

    id: str
    name: str
    arguments: Mapping[str, Any] = field(default=EMPTY, converter=freeze_mapping, hash=False)


@frozen
class Message:
    """A chat message. `role` is system, user, assistant or tool.

    An assistant message may carry `tool_calls`; a tool message answers one of
    them through `tool_call_id` and says with `is_error` whether the call failed.
    """

    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    is_error: bool = False


def system(content: str) -> Message:
    """A system message."""
    return Message("system", content)


def user(content: str) -> Message:
    """A user message."""
    return Message("user", content)


@frozen
class Usage:
    """Tokens and requests spent; `+` adds two usages."""

    input_tokens: int = 0
    output_tokens: int = 0
    requests: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.requests + other.requests,
        )


@frozen
class ToolSpec:
    """What the model is told about a tool.

    `parameters` is a JSON schema object. `idempotent` tools may be re-run when a
    crash left their outcome unknown (DESIGN §5.4). `plugin` names the plugin that
    registered the tool.
    """

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(
        default=MappingProxyType({"type": "object", "properties": {}}),
        converter=freeze_mapping,
        hash=False,
    )
    idempotent: bool = False
    plugin: str = ""


@frozen
class ToolResult:
    """The outcome of one tool call, as the model will see it."""

    content: str
    is_error: bool = False


ToolChoice = str  # "auto", "none", "required" or the name of one tool


@frozen
class Request:
    """What an LLM executor is asked: the model, the messages and the tools.

    `messages` starts with any context injected for this inference (as system
    messages), then the conversation. `tool_choice` is "auto", "none", "required"
    or a tool name.
    """

    model: str
    messages: tuple[Message, ...] | Log[Message]
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: ToolChoice = "auto"
    settings: Mapping[str, Any] = field(default=EMPTY, converter=freeze_mapping, hash=False)


StopReason = Literal["end_turn", "tool_use", "max_tokens", "refusal", "error"]


@frozen
class Response:
    """An LLM executor's answer: one assistant message plus usage."""

    message: Message
    usage: Usage = Usage()
    stop_reason: StopReason = "end_turn"
    model: str = ""


MergeRule = Literal["error", "last", "sum"] | Callable[[Any, Any], Any]


@final
@frozen(eq=False)
class StateKey(Generic[T]):
    """A typed key for plugin-owned data in `RunState.data` (like pytest's `StashKey`).

    Define keys at module level and register them through
    `agent_register_runtime` so their values survive serialisation:

        COUNT = StateKey("myplugin.count", int, default=0)

    `merge` decides what happens when tool calls running concurrently in one step
    both `SetData` the key: "error" (the default) refuses, "last" keeps the later
    call's value (in call order), "sum" adds, or a function `(a, b) -> merged`.
    """

    name: str
    type: Any  # the value type, for structuring
    default: T
    merge: MergeRule = "error"

    def __repr__(self) -> str:
        return f"StateKey({self.name!r})"


@frozen
class ApprovalRequest:
    """A tool call waiting for a decision; `id` is what `resume(decisions=...)` keys on."""

    id: str
    call: ToolCall
    tool: str
    reason: str
    step: int
    plugin: str = ""


@frozen
class Approve:
    """Decision: run the suspended call, optionally with edited `arguments`."""

    arguments: Mapping[str, Any] | None = field(
        default=None, converter=attrs.converters.optional(freeze_mapping), hash=False
    )


@frozen
class Deny:
    """Decision: do not run the call; `reason` goes to the model as an error result."""

    reason: str = "denied"


Decision = Approve | Deny


@frozen
class StopInfo:
    """Why a run ends early: a machine-readable `code` and a human `detail`.

    `completed` is true when a plugin finished the run (`patches.Finish`) rather than
    stopped it (`patches.Stop`).
    """

    code: str
    detail: str = ""
    completed: bool = False


@final
@frozen
class RunState:
    """The frozen state of a run: the fold of its journal.

    Attributes:
        run_id: the run's id.
        model: the model string the run uses.
        messages: the conversation, oldest first (an O(1)-append `Log`).
        step: the current step number, starting at 1.
        usage: tokens and requests spent so far.
        status: running, completed, stopped, cancelled, suspended or error.
        data: plugin-owned values by `StateKey.name`; read them with `get`.
        context: text injected for the next inference only.
        tool_choice: the next inference's tool choice, when a plugin set one.
        excluded_tools: tools hidden from the model.
        only_tools: when not None, the only tools shown to the model.
        pending: approval requests the run is suspended on.
        stop: set once a plugin asked the run to stop or finish.
        window_start: requests carry the leading system messages, then `summary`,
            then ``messages[window_start:]`` (see `patches.SetWindow`).
        summary: text standing in for the messages before `window_start`.
    """

    run_id: str
    model: str
    messages: Log[Message]
    step: int = 0
    usage: Usage = Usage()
    status: str = "running"
    data: Mapping[str, Any] = field(default=EMPTY, hash=False)  # read-only: `fold` passes a MappingProxyType
    context: tuple[str, ...] = ()
    tool_choice: str | None = None
    excluded_tools: frozenset[str] = frozenset()
    only_tools: frozenset[str] | None = None
    pending: tuple[ApprovalRequest, ...] = ()
    stop: StopInfo | None = None
    window_start: int = 0
    summary: str = ""

    def get(self, key: StateKey[T]) -> T:
        """The value stored under `key`, or its default."""
        return self.data.get(key.name, key.default)  # type: ignore[no-any-return]

    def output(self) -> str:
        """Text of the last assistant message, or "" if there is none."""
        messages = self.messages
        for i in range(len(messages) - 1, -1, -1):
            if messages[i].role == "assistant":
                return messages[i].content
        return ""


_MISSING: Any = object()


def _make_replace(cls: type[T]) -> Callable[..., T]:
    """Generate `replace(obj, **changes)` calling `cls.__init__` positionally.

    Same effect as `attrs.evolve` (converters run again) at a fraction of its cost,
    which matters: the kernel replaces the state a few times per step.
    """
    names = [a.name for a in attrs.fields(cls)]  # type: ignore[arg-type]
    params = ", ".join(f"{n}=_M" for n in names)
    args = ", ".join(f"self.{n} if {n} is _M else {n}" for n in names)
    namespace: dict[str, Any] = {"_M": _MISSING, "_cls": cls}
    exec(f"def replace(self, *, {params}):\n    return _cls({args})\n", namespace)
    replace: Callable[..., T] = namespace["replace"]
    replace.__doc__ = f"Return a copy of a `{cls.__name__}` with the given fields changed."
    return replace


replace_state = _make_replace(RunState)


# ------------------------------------------------------------------ types of state keys


def type_name(t: Any) -> str:
    """``int``, ``list[str]``, ``mypkg.Budget | None``: a type as a plugin author wrote it."""
    if isinstance(t, type) and not typing.get_args(t):
        return t.__name__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"
    return repr(t).replace("typing.", "")


def instance_types(t: Any) -> tuple[type, ...] | None:
    """What ``isinstance`` should accept for a value of the type `t`, or None to accept anything.

    Containers check their outer type (``list[int]`` -> ``list``), unions each member,
    ``Literal`` the types of its values; ``float`` also accepts ``int``. Types
    isinstance cannot check (``Any``, type variables, forward references,
    non-runtime protocols) give None.
    """
    if t is None or t is type(None):
        return (type(None),)
    origin = typing.get_origin(t)
    if origin is typing.Annotated:
        return instance_types(typing.get_args(t)[0])
    if origin is typing.Union or origin is types.UnionType:
        found: list[type] = []
        for member in typing.get_args(t):
            inner = instance_types(member)
            if inner is None:
                return None
            found.extend(inner)
        return tuple(found)
    if origin is typing.Literal:
        return tuple({type(v) for v in typing.get_args(t)})
    if origin is not None:
        t = origin
    supertype = getattr(t, "__supertype__", None)  # typing.NewType
    if supertype is not None:
        return instance_types(supertype)
    if typing.is_typeddict(t):
        return (dict,)
    if not isinstance(t, type) or t is object:
        return None
    try:
        isinstance(None, t)
    except TypeError:  # a protocol that is not runtime_checkable, and the like
        return None
    return (int, float) if t is float else (t,)
