"""Plain data and plugins behind the hypothesis strategies (no hypothesis import here).

`strategies` draws these; `grammar.exercise` runs them. Kept apart so that
`agent_kernel.testing` imports without hypothesis installed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import anyio
from attrs import field, frozen

from .._registry import RuntimeRegistrar
from .._state import StateKey
from ..hookspecs import hookimpl
from ._scripted import fault

#: Tool names the strategies call by default (`grammar.exercise` provides them).
TOOL_NAMES: tuple[str, ...] = ("echo", "add")
#: A tool name nobody registers: the model calling it must get an error result.
UNKNOWN_TOOL = "no_such_tool"

#: State keys the generated patches use. `KEY_LAST` merges concurrent writes by
#: keeping the later call's value; `KEY_COUNT` refuses them (PatchConflict).
KEY_LAST: StateKey[int] = StateKey("agent_kernel.testing.last", int, 0, merge="last")
KEY_COUNT: StateKey[int] = StateKey("agent_kernel.testing.count", int, 0)
STATE_KEYS: tuple[StateKey[int], ...] = (KEY_LAST, KEY_COUNT)


class BehaviourError(Exception):
    """What a generated plugin raises when its behaviour says so."""


@frozen
class PhaseBehaviour:
    """What one generated hook does.

    Attributes:
        phase: the phase (without ``agent_``).
        action: "patches" (return `result`), "illegal" / "bad_shape" (return `result`,
            which the kernel must refuse), "raise" (raise `BehaviourError`) or "none".
        result: what the hook returns for the returning actions.
        is_async: the hook is an ``async def`` (it awaits a checkpoint first).
        when: act only on this call of the hook (0-based, counted per plugin) and
            return None otherwise; None acts on every call.
    """

    phase: str
    action: str
    result: Any = None
    is_async: bool = False
    when: int | None = None


class BehaviourPlugin:
    """A plugin whose phase hooks follow `behaviours`; build it with `BehaviourPlugin.make`.

    `seen` counts the calls of each of its hooks.
    """

    name: str
    behaviours: Mapping[str, PhaseBehaviour]

    def __init__(self, name: str, behaviours: Mapping[str, PhaseBehaviour]) -> None:
        self.name = name
        self.behaviours = dict(behaviours)
        self.seen: dict[str, int] = dict.fromkeys(self.behaviours, 0)

    def __repr__(self) -> str:
        return f"BehaviourPlugin({self.name!r}, {list(self.behaviours.values())!r})"

    @classmethod
    def make(cls, name: str, behaviours: Iterable[PhaseBehaviour]) -> BehaviourPlugin:
        """A plugin implementing exactly the phases in `behaviours` (sync or async as each says)."""
        table = {b.phase: b for b in behaviours}
        methods: dict[str, Any] = {f"agent_{phase}": _hook(phase, b.is_async) for phase, b in table.items()}
        subclass = type(f"BehaviourPlugin_{name.replace('-', '_')}", (cls,), methods)
        plugin: BehaviourPlugin = subclass(name, table)
        return plugin

    @hookimpl
    def agent_register_runtime(self, runtime: RuntimeRegistrar) -> None:
        for key in STATE_KEYS:
            runtime.add_state_key(key)

    def act(self, phase: str) -> Any:
        """Carry out the behaviour for one call of `phase`'s hook."""
        behaviour = self.behaviours[phase]
        n = self.seen[phase]
        self.seen[phase] = n + 1
        if behaviour.when is not None and n != behaviour.when:
            return None
        if behaviour.action == "raise":
            raise BehaviourError(f"{self.name} raises in {phase} (call {n})")
        if behaviour.action == "none":
            return None
        result = behaviour.result
        return list(result) if isinstance(result, list) else result


def _hook(phase: str, is_async: bool) -> Callable[..., Any]:
    """A hook implementation for `phase` that defers to `BehaviourPlugin.act`."""
    if is_async:

        async def async_hook(self: BehaviourPlugin, ctx: Any) -> Any:
            await anyio.sleep(0)
            return self.act(phase)

        function: Callable[..., Any] = async_hook
    else:

        def sync_hook(self: BehaviourPlugin, ctx: Any) -> Any:
            return self.act(phase)

        function = sync_hook
    function.__name__ = f"agent_{phase}"
    function.__qualname__ = f"BehaviourPlugin.agent_{phase}"
    return hookimpl(function)


class ToolFault(Exception):
    """What a tool raises when `Faults.tool_errors` says so."""


@frozen
class Faults:
    """What goes wrong in one run; `Faults()` is a run where nothing does.

    Attributes:
        inference: ``(turn, times, retryable)``: requesting that turn raises an
            `InferenceError` `times` times first (see `agent_kernel.testing.fault`).
        retry_inference: a decision plugin answers inference errors with `Retry`
            (up to two attempts per request) instead of letting the run fail.
        tool_errors: ordinals (0-based, over all tool starts of the run) whose tool
            raises `ToolFault`.
        retry_tools: a decision plugin answers tool errors with `Retry` (once).
        tool_suspends: ordinals (0-based, over all tool starts of the run) whose tool,
            called without decisions, suspends the run (`ToolSuspended`) with one
            request; called again with the decision, it finishes.
        tool_delays: seconds successive tool starts sleep (cycled); () sleeps 0.
        timeout: the first invocation's ``timeout=``.
        cancel_at: the first invocation is cancelled from outside (by the caller's
            cancel scope) during the phase hook call with this ordinal.
    """

    inference: tuple[tuple[int, int, bool], ...] = ()
    retry_inference: bool = False
    tool_errors: frozenset[int] = field(default=frozenset(), converter=frozenset)
    retry_tools: bool = False
    tool_suspends: frozenset[int] = field(default=frozenset(), converter=frozenset)
    tool_delays: tuple[float, ...] = ()
    timeout: float | None = None
    cancel_at: int | None = None

    def apply(self, script: Sequence[Any]) -> list[Any]:
        """`script` with the inference faults put before their turns."""
        out: list[Any] = []
        for index, turn in enumerate(script):
            for at, times, retryable in self.inference:
                if at == index:
                    out.append(fault(f"scripted failure before turn {index + 1}", times=times, retryable=retryable))
            out.append(turn)
        return out

    def tool_delay(self, ordinal: int) -> float:
        """How long the tool start with this ordinal sleeps."""
        return self.tool_delays[ordinal % len(self.tool_delays)] if self.tool_delays else 0.0
