"""`Approval`: the plugin that applies a policy to every tool call."""

from __future__ import annotations

import hashlib
import inspect
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, final

import anyio
from attrs import field, frozen

from agent_kernel import (
    ApprovalRequest,
    Approve,
    Context,
    Deny,
    RunState,
    RuntimeRegistrar,
    StateKey,
    ToolCall,
    ToolResult,
    hookimpl,
)
from agent_kernel.patches import Block, Patch, SetData, Suspend

from ._decision import Decision, canonical_json

__all__ = ["Approval", "ApprovalMemory", "Asked", "Remember", "Remembered", "Watched", "fingerprint"]

Scope = Literal["arguments", "tool"]
InlineApprover = Callable[[ApprovalRequest], Awaitable["Approve | Deny | None"]]

#: What the kernel's `Deny(reason)` gives the model, and what this plugin's denials look like too.
DENIED = "Denied: "


def fingerprint(arguments: Mapping[str, Any]) -> str:
    """A short stable digest of a call's arguments (canonical JSON, SHA-256)."""
    return hashlib.sha256(canonical_json(dict(arguments)).encode()).hexdigest()[:32]


def _scope(_: Any, attribute: Any, value: Any) -> None:
    if value not in (None, "arguments", "tool"):
        raise ValueError(f"Remember.{attribute.name} must be 'arguments', 'tool' or None, got {value!r}")


@frozen
class Remember:
    """What an `Approval` remembers for the rest of the run, per kind of decision.

    Attributes:
        approved: after a call was approved, later calls are not asked about again:
            ``"arguments"`` (the same tool with the same arguments), ``"tool"`` (the
            same tool with any arguments) or None (ask every time). An approval
            that edited the arguments (``Approve(arguments=...)``) is remembered for
            the edited arguments only, whatever the scope: the edit shows that the
            arguments mattered.
        denied: after a call was denied, later calls are denied with the same
            reason without asking: ``"arguments"``, ``"tool"`` or None.

    .. versionadded:: 0.1
    """

    approved: Scope | None = field(default="arguments", validator=_scope)
    denied: Scope | None = field(default=None, validator=_scope)

    @property
    def active(self) -> bool:
        return self.approved is not None or self.denied is not None


def _remember(value: bool | Scope | Remember | None) -> Remember:
    if isinstance(value, Remember):
        return value
    if value is True:
        return Remember()
    if value is False or value is None:
        return Remember(None, None)
    if value in ("arguments", "tool"):
        return Remember(approved=value)
    raise ValueError(f"remember must be True, False, 'arguments', 'tool' or a Remember(...), got {value!r}")


# ----------------------------------------------------------------------------- the run's memory


@frozen
class Asked:
    """A call this plugin suspended in `step`, with the digest of the model's arguments."""

    step: int
    call_id: str
    arguments: str


@frozen
class Watched:
    """A call this plugin allowed with a `failure_key`, in `step`."""

    step: int
    call_id: str
    key: str


@frozen
class Remembered:
    """A remembered decision: `tool` with arguments digest `arguments` (None: any)."""

    tool: str
    arguments: str | None
    approved: bool
    reason: str = ""


def _union(*parts: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(dict.fromkeys(item for part in parts for item in part))


@frozen
class ApprovalMemory:
    """What an `Approval` keeps in the run's state (under its `StateKey`).

    Attributes:
        asked: calls suspended in the current step (for the inline approver and for
            learning their outcome).
        watched: calls of the current step allowed with a failure key.
        remembered: remembered approvals and denials.
        failed: failure keys of calls that failed.

    Every field only grows within a step (``asked`` and ``watched`` are pruned to the
    current step when the next step writes), so concurrent tool calls' versions
    merge by union.
    """

    asked: tuple[Asked, ...] = ()
    watched: tuple[Watched, ...] = ()
    remembered: tuple[Remembered, ...] = ()
    failed: tuple[str, ...] = ()

    def asked_for(self, step: int, call_id: str) -> Asked | None:
        for item in self.asked:
            if item.step == step and item.call_id == call_id:
                return item
        return None

    def watched_for(self, step: int, call_id: str) -> Watched | None:
        for item in self.watched:
            if item.step == step and item.call_id == call_id:
                return item
        return None

    def recall(self, tool: str, arguments: str) -> Remembered | None:
        """The remembered decision for this call; a denial wins over an approval."""
        found: Remembered | None = None
        for item in self.remembered:
            if item.tool == tool and (item.arguments is None or item.arguments == arguments):
                if not item.approved:
                    return item
                found = item
        return found

    def for_step(self, step: int) -> ApprovalMemory:
        """This memory with `asked` / `watched` of earlier steps dropped."""
        asked = tuple(a for a in self.asked if a.step == step)
        watched = tuple(w for w in self.watched if w.step == step)
        if len(asked) == len(self.asked) and len(watched) == len(self.watched):
            return self
        return ApprovalMemory(asked, watched, self.remembered, self.failed)

    def merge(self, other: ApprovalMemory) -> ApprovalMemory:
        """The union of two versions written concurrently from one snapshot."""
        return ApprovalMemory(
            _union(self.asked, other.asked),
            _union(self.watched, other.watched),
            _union(self.remembered, other.remembered),
            _union(self.failed, other.failed),
        )


def _merge(earlier: ApprovalMemory, later: ApprovalMemory) -> ApprovalMemory:
    return earlier.merge(later)


EMPTY_MEMORY = ApprovalMemory()


# ----------------------------------------------------------------------------- the plugin


def _timeout(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or value < 0:
        raise ValueError(f"approver_timeout must be a number of seconds >= 0 or None, got {value!r}")
    return float(value)


@final
class Approval:
    """A plugin that asks a policy about every tool call before it runs.

    For each call (in ``agent_before_tool_execute``) the policy decides:

    * allow (or no opinion): the call runs;
    * deny: the call does not run; the model gets ``"Denied: <reason>"`` as an error
      result (a ``Block`` patch);
    * ask: the call is suspended (a ``Suspend`` patch). If an inline `approver` is
      set, it is awaited first; otherwise, or when it gives no decision, the run ends
      with outcome ``suspended`` and ``outcome.pending`` holds the requests. Resume
      it with ``agent.resume(run_id, decisions={request.id: Approve() or Deny(reason)})``.
      The suspension is durable: nothing waits in memory, and any process that opens
      the same journal can resume.

    Args:
        policy: the `agent_plugin_approval.policies` policy (anything with
            ``decide(call, state)``).
        approver: an async callback ``approver(request) -> Approve | Deny | None``
            asked before the run suspends, for this plugin's requests only. None
            means "no decision": the run suspends. It is asked again for requests
            still pending when the run is resumed.
        approver_timeout: seconds to wait for the approver (None: no limit).
        on_timeout: when the approver times out: ``"suspend"`` (the run suspends and
            waits for a decision) or ``"deny"`` (the call is denied, the run goes on).
        remember: `Remember` what was decided for the rest of the run (across
            resumes): True remembers approvals of the same tool with the same
            arguments, ``"tool"`` approvals of the tool with any arguments, or give a
            `Remember(approved=..., denied=...)`. False (the default) asks every time.
        name: the plugin name, also naming its state key (``approval.<name>``); give
            each Approval of one agent its own.

    Raises:
        TypeError: `policy` has no ``decide`` method or `approver` is not callable.
        ValueError: an invalid `approver_timeout`, `on_timeout`, `remember` or `name`.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        policy: Any,
        *,
        approver: InlineApprover | None = None,
        approver_timeout: float | None = None,
        on_timeout: Literal["suspend", "deny"] = "suspend",
        remember: bool | Scope | Remember = False,
        name: str = "approval",
    ) -> None:
        if not callable(getattr(policy, "decide", None)):
            raise TypeError(f"Approval needs a policy with decide(call, state), got {policy!r}")
        if approver is not None and not callable(approver):
            raise TypeError(f"approver must be an async callable approver(request), got {approver!r}")
        if on_timeout not in ("suspend", "deny"):
            raise ValueError(f"on_timeout must be 'suspend' or 'deny', got {on_timeout!r}")
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        self.policy = policy
        self.approver = approver
        self.approver_timeout = _timeout(approver_timeout)
        self.on_timeout = on_timeout
        self.remember = _remember(remember)
        self.name = name
        #: The plugin's state key; values are `ApprovalMemory`, merged by union.
        self.key: StateKey[ApprovalMemory] = StateKey(f"approval.{name}", ApprovalMemory, EMPTY_MEMORY, _merge)
        # (run_id, step, call_id) of suspended calls whose tool started in this process.
        self._started: dict[str, set[tuple[int, str]]] = {}

    def __repr__(self) -> str:
        return (
            f"Approval({self.policy!r}, approver={self.approver!r}, approver_timeout={self.approver_timeout!r}, "
            f"on_timeout={self.on_timeout!r}, remember={self.remember!r}, name={self.name!r})"
        )

    @property
    def _tracks(self) -> bool:
        """Whether suspended calls are recorded in the state (needed by the approver and memory)."""
        return self.approver is not None or self.remember.active

    # -------------------------------------------------------------- registration

    @hookimpl
    def agent_register_runtime(self, runtime: RuntimeRegistrar) -> None:
        runtime.add_state_key(self.key)
        if self.approver is not None:
            runtime.add_approver(self._ask_approver)

    # -------------------------------------------------------------- the decision

    def decide(self, call: ToolCall, state: RunState) -> Decision:
        """The policy's decision for `call`, after what this run remembers (allow for None)."""
        decision = self.policy.decide(call, state)
        if decision is None:
            return Decision("allow")
        if not isinstance(decision, Decision):
            raise TypeError(f"policy {self.policy!r} returned {decision!r}; expected a Decision or None")
        memory = state.get(self.key)
        if decision.action == "allow" and decision.failure_key is not None and decision.failure_key in memory.failed:
            why = decision.reason or call.name
            decision = Decision("ask", f"{why}; it failed earlier in this run: approve to run it again")
        if decision.action == "ask" and memory.remembered:
            recalled = memory.recall(call.name, fingerprint(call.arguments))
            if recalled is not None:
                return Decision("allow") if recalled.approved else Decision("deny", recalled.reason)
        return decision

    @hookimpl
    def agent_before_tool_execute(self, ctx: Context, call: ToolCall) -> list[Patch] | None:
        decision = self.decide(call, ctx.state)
        if decision.action == "deny":
            return [Block(DENIED + (decision.reason or f"{call.name} is not allowed"))]
        if decision.action == "ask":
            patches: list[Patch] = [Suspend(decision.reason or f"{call.name} requires approval")]
            if self._tracks:
                memory = ctx.state.get(self.key).for_step(ctx.step)
                asked = Asked(ctx.step, call.id, fingerprint(call.arguments))
                patches.append(SetData(self.key, _with(memory, asked=(*memory.asked, asked))))
            return patches
        if decision.failure_key is not None:
            memory = ctx.state.get(self.key).for_step(ctx.step)
            watched = Watched(ctx.step, call.id, decision.failure_key)
            return [SetData(self.key, _with(memory, watched=(*memory.watched, watched)))]
        return None

    # -------------------------------------------------------------- the inline approver

    async def _ask_approver(self, request: ApprovalRequest, state: RunState) -> Approve | Deny | None:
        """The kernel's approver: ask the user's callback about this plugin's requests."""
        assert self.approver is not None
        if state.get(self.key).asked_for(request.step, request.call.id) is None:
            return None  # another plugin's request
        with anyio.move_on_after(self.approver_timeout) as scope:
            pending = self.approver(request)
            if not inspect.isawaitable(pending):
                raise TypeError(f"the approver must be async (return an awaitable), got {pending!r}")
            decision = await pending
        if scope.cancelled_caught:
            if self.on_timeout == "deny":
                return Deny(f"no approval decision within {self.approver_timeout:g} s")
            return None
        if decision is not None and not isinstance(decision, (Approve, Deny)):
            raise TypeError(f"the approver returned {decision!r}; expected Approve(...), Deny(...) or None")
        return decision

    # -------------------------------------------------------------- learning the outcome

    @hookimpl
    def agent_wrap_tool_call(self, ctx: Context, call: ToolCall) -> Any:
        """Note that a suspended call of ours really started: it was approved."""
        if not self._tracks or ctx.state.get(self.key).asked_for(ctx.step, call.id) is None:
            return None
        return _Started(self._started.setdefault(ctx.run_id, set()), (ctx.step, call.id))

    @hookimpl
    def agent_after_tool_execute(self, ctx: Context, call: ToolCall, result: ToolResult) -> list[Patch] | None:
        memory = ctx.state.get(self.key)
        if not memory.asked and not memory.watched:
            return None
        failed = memory.failed
        watched = memory.watched_for(ctx.step, call.id)
        if watched is not None and result.is_error and watched.key not in failed:
            failed = (*failed, watched.key)
        remembered = memory.remembered
        asked = memory.asked_for(ctx.step, call.id)
        if asked is not None:
            started = self._started.get(ctx.run_id, set())
            ran = (ctx.step, call.id) in started
            started.discard((ctx.step, call.id))
            item = self._learn(asked, call, result, ran)
            if item is not None and item not in remembered:
                remembered = (*remembered, item)
        if failed is memory.failed and remembered is memory.remembered:
            return None
        return [SetData(self.key, _with(memory, remembered=remembered, failed=failed))]

    def _learn(self, asked: Asked, call: ToolCall, result: ToolResult, ran: bool) -> Remembered | None:
        """What to remember about a suspended call that now has its result."""
        scope = self.remember
        if ran:  # the tool started, so the call was approved
            if scope.approved is None:
                return None
            ran_with = fingerprint(call.arguments)  # the arguments it ran with
            edited = ran_with != asked.arguments
            return Remembered(call.name, ran_with if edited or scope.approved == "arguments" else None, True)
        if scope.denied is not None and result.is_error and result.content.startswith(DENIED):
            asked_with = asked.arguments if scope.denied == "arguments" else None
            return Remembered(call.name, asked_with, False, result.content[len(DENIED) :])
        return None  # blocked or answered by another plugin, or its start was not seen here: learn nothing

    @hookimpl
    def agent_run_end(self, ctx: Context) -> None:
        self._started.pop(ctx.run_id, None)


def _with(memory: ApprovalMemory, **changes: Any) -> ApprovalMemory:
    return ApprovalMemory(
        changes.get("asked", memory.asked),
        changes.get("watched", memory.watched),
        changes.get("remembered", memory.remembered),
        changes.get("failed", memory.failed),
    )


class _Started:
    """Async context manager recording that a call's tool was entered."""

    __slots__ = ("item", "started")

    def __init__(self, started: set[tuple[int, str]], item: tuple[int, str]) -> None:
        self.started = started
        self.item = item

    async def __aenter__(self) -> None:
        self.started.add(self.item)

    async def __aexit__(self, *exc: object) -> None:
        return None
