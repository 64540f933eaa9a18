"""`Handoff`: sub-agents as tools, and transfers of the conversation to another agent."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, final

from attrs import field, frozen
from attrs.validators import instance_of, matches_re, optional

from agent_kernel import (
    Agent,
    Context,
    Message,
    Outcome,
    RuntimeRegistrar,
    StateKey,
    ToolCall,
    ToolContext,
    ToolRegistrar,
    ToolResult,
    ToolSpec,
    hookimpl,
)
from agent_kernel.errors import ConfigurationError, JournalCorrupt, ToolInputError, ToolSuspended
from agent_kernel.journal import Codec, Committed, Entry, Journal, MemoryJournal
from agent_kernel.patches import InjectContext, OnlyTools, Patch, ReplaceMessage, SetData, SetModel

if TYPE_CHECKING:
    from cattrs import Converter

__all__ = [
    "ACTIVE",
    "DEPTH",
    "MAX_DEPTH",
    "PARENT",
    "TRANSFER_TOOL",
    "Handoff",
    "Peer",
    "SubAgent",
    "child_run_id",
]

TRANSFER_TOOL = "transfer_to_agent"

#: The parent run's id ("" in a root run).
PARENT = StateKey("handoff.parent", str, default="")
#: How deep the run is nested: 0 for a root run, 1 for its sub-agents' runs...
DEPTH = StateKey("handoff.depth", int, default=0)
#: The depth cap of the root run, handed down to every child run (0 in a root run).
MAX_DEPTH = StateKey("handoff.max_depth", int, default=0)
#: The `Peer` the conversation was transferred to ("" while the run's own agent has it).
ACTIVE = StateKey("handoff.active", str, default="", merge="last")
#: The peer whose instructions and tools are in place (internal bookkeeping).
APPLIED = StateKey("handoff.applied", str, default="")
_KEYS = (PARENT, DEPTH, MAX_DEPTH, ACTIVE, APPLIED)

_NAME = r"^[A-Za-z0-9_-]{1,64}$"
_INPUT_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "properties": {
        "input": {"type": "string", "description": "The task for the sub-agent, with all it needs to know."}
    },
    "required": ["input"],
    "additionalProperties": False,
}


def child_run_id(parent: str, step: int, call_id: str) -> str:
    """The run id of the sub-agent run started by tool call `call_id` of `step` in run `parent`.

    Deterministic, so a resumed parent finds (and resumes) the same child run.
    """
    return f"{parent}/{step}/{call_id}"


def _plugins(items: Iterable[object]) -> tuple[object, ...]:
    return tuple(items)


def _names(items: Iterable[str] | None) -> frozenset[str] | None:
    return None if items is None else frozenset(items)


@frozen
class SubAgent:
    """An agent the model can call as a tool: it runs to completion and its answer is the result.

    The child `Agent` is built once per `Handoff` from these arguments, like
    ``Agent(model, plugins, autoload=..., block=..., instructions=..., settings=...)``;
    its runs are journaled in the parent agent's journal.

    Args:
        name: the tool name (letters, digits, ``_`` and ``-``, at most 64).
        description: what the model is told the sub-agent does.
        model: the sub-agent's model string.
        instructions: the sub-agent's system message.
        plugins: the sub-agent's plugins (its model executor, tools, limits...). Give
            each `SubAgent` its own plugin objects; do not include a journal.
        autoload: load the installed entry-point plugins into the sub-agent too.
        block: entry-point plugin names to skip.
        settings: provider settings for the sub-agent's requests.

    .. versionadded:: 0.1
    """

    name: str = field(validator=[instance_of(str), matches_re(_NAME)])
    description: str = field(validator=instance_of(str))
    model: str = field(kw_only=True, validator=instance_of(str))
    instructions: str | None = field(default=None, kw_only=True, validator=optional(instance_of(str)))
    plugins: tuple[object, ...] = field(default=(), kw_only=True, converter=_plugins)
    autoload: bool = field(default=True, kw_only=True, validator=instance_of(bool))
    block: frozenset[str] = field(default=(), kw_only=True, converter=frozenset)
    settings: Mapping[str, Any] | None = field(default=None, kw_only=True)


@frozen
class Peer:
    """An agent the conversation can be transferred to with ``transfer_to_agent``.

    After a transfer the same run goes on with the peer's `model`, its
    `instructions` in place of the run's and only its `tools` visible.

    Args:
        name: the peer's name, as the model passes it to ``transfer_to_agent``.
        description: what the model is told the peer is for.
        model: the model string the run continues with (the agent must serve it).
        instructions: the peer's system message; None keeps the current instructions.
        tools: names of the agent's tools the peer may use (``transfer_to_agent``
            always stays visible); None shows every registered tool.

    .. versionadded:: 0.1
    """

    name: str = field(validator=[instance_of(str), matches_re(_NAME)])
    description: str = field(validator=instance_of(str))
    model: str = field(kw_only=True, validator=instance_of(str))
    instructions: str | None = field(default=None, kw_only=True, validator=optional(instance_of(str)))
    tools: frozenset[str] | None = field(default=None, kw_only=True, converter=_names)


@frozen
class _Link:
    """What a child run learns from its parent when it starts."""

    parent: str
    depth: int
    cap: int


_LINK: ContextVar[_Link | None] = ContextVar("agent_plugin_handoff.link", default=None)


@final
class Handoff:
    """A plugin offering sub-agents as tools and ``transfer_to_agent`` handoffs.

    **Sub-agents** (`agents`): each `SubAgent` is a tool taking ``{"input": str}``.
    A call runs the sub-agent as a child run to completion and returns its answer
    as the tool result. The child run's id is ``child_run_id(run, step, call_id)``;
    it is journaled in this agent's journal, its state links to the parent
    (`PARENT`, `DEPTH`, `MAX_DEPTH`), and the tool is declared idempotent, so a
    parent resumed after a crash resumes the child where it was (recorded child
    model turns are not requested again). Under a concurrent tool strategy, calls
    of one step run concurrently inside the parent's task group.

    **Depth**: a root run is at depth 0, its sub-agents' runs at 1, and so on. The
    root's `max_depth` is handed down to every descendant (a nested `Handoff`'s own
    `max_depth` applies only to runs it is the root of). A call that would start
    a run deeper than the cap is not made: the model gets the error result
    "depth limit N reached".

    **Outcomes**: a completed child's output is the result. A child that stopped,
    failed or was cancelled gives an error result saying so. A child suspended for
    approval suspends the parent (`ToolSuspended`): the child's requests are the
    parent's pending requests, with the child's ids; resuming the parent with
    decisions for them resumes the child with those decisions.

    **Transfers** (`transfers`): the tool ``transfer_to_agent(agent)`` hands the
    conversation to a `Peer`: in AfterToolExecute the run's model becomes the
    peer's (`patches.SetModel`) and `ACTIVE` names it; at the next StepStart the
    peer's instructions replace the run's leading system message (or, in a run
    without one, are injected into every request) and only the peer's tools stay
    visible. All of it is journaled, so a resumed run continues with the peer.

    Args:
        agents: the sub-agents offered as tools.
        transfers: the peers ``transfer_to_agent`` may hand the conversation to.
        max_depth: the deepest nesting of sub-agent runs, when this agent is the root.
        name: the plugin name.

    Raises:
        TypeError: an item of `agents` is not a `SubAgent` (or of `transfers` not a `Peer`).
        ValueError: a bad `max_depth`, a duplicate name, or nothing to offer.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        agents: Iterable[SubAgent] = (),
        *,
        transfers: Iterable[Peer] = (),
        max_depth: int = 3,
        name: str = "handoff",
    ) -> None:
        subs, peers = tuple(agents), tuple(transfers)
        for what, items, kind in (("agents", subs, SubAgent), ("transfers", peers, Peer)):
            for i, item in enumerate(items):
                if not isinstance(item, kind):
                    raise TypeError(f"Handoff {what}[{i}] must be a {kind.__name__}(...), got {item!r}")
        if isinstance(max_depth, bool) or not isinstance(max_depth, int) or max_depth < 1:
            raise ValueError(f"Handoff max_depth must be an int >= 1, got {max_depth!r}")
        if not subs and not peers:
            raise ValueError("Handoff needs at least one SubAgent (agents=...) or Peer (transfers=...)")
        seen: set[str] = {TRANSFER_TOOL} if peers else set()
        for named in [s.name for s in subs] + [p.name for p in peers]:
            if named in seen:
                raise ValueError(f"Handoff: the name {named!r} is used twice (or clashes with {TRANSFER_TOOL!r})")
            seen.add(named)
        self.name = name
        self.max_depth = max_depth
        self._subs = {sub.name: sub for sub in subs}
        self._peers = {peer.name: peer for peer in peers}
        self._children: dict[str, Agent] = {}
        self._journal: Journal | None = None

    def __repr__(self) -> str:
        return f"Handoff(agents={list(self._subs)!r}, transfers={list(self._peers)!r}, max_depth={self.max_depth})"

    @property
    def children(self) -> Mapping[str, Agent]:
        """The sub-agents' `Agent`s by name (built when this plugin's agent is built)."""
        return dict(self._children)

    async def child_runs(self, run_id: str) -> list[str]:
        """Ids of the sub-agent runs that run `run_id` started, oldest first."""
        if self._journal is None:
            return []
        prefix, depth = f"{run_id}/", run_id.count("/") + 2
        return [r for r in await self._journal.runs() if r.startswith(prefix) and r.count("/") == depth]

    # ------------------------------------------------------------------ registration

    @hookimpl
    def agent_register_tools(self, tools: ToolRegistrar) -> None:
        for sub in self._subs.values():
            tools.add(ToolSpec(sub.name, sub.description, _INPUT_SCHEMA, idempotent=True), self._tool_for(sub))
        if self._peers:
            listing = "\n".join(f"- {p.name}: {p.description}" for p in self._peers.values())
            parameters = {
                "type": "object",
                "properties": {
                    "agent": {"type": "string", "enum": list(self._peers), "description": "Who takes over."}
                },
                "required": ["agent"],
                "additionalProperties": False,
            }
            description = f"Hand the conversation over to another agent, which continues it from here.\n{listing}"
            tools.add(ToolSpec(TRANSFER_TOOL, description, parameters), self._transfer)

    @hookimpl(trylast=True)
    def agent_register_runtime(self, runtime: RuntimeRegistrar) -> None:
        for key in _KEYS:
            runtime.add_state_key(key)
        if not self._subs:
            return
        if runtime.journal is None:  # share the agent's journal with the children: make it explicit
            runtime.set_journal(MemoryJournal())
        assert runtime.journal is not None
        journal: Journal = runtime.journal.item
        if self._journal is not None:
            raise ConfigurationError(f"{self!r} is already part of another Agent; give each Agent its own Handoff")
        self._journal = journal
        for sub in self._subs.values():
            self._children[sub.name] = Agent(
                sub.model,
                [*sub.plugins, _ChildRuntime(journal)],
                autoload=sub.autoload,
                block=sub.block,
                instructions=sub.instructions,
                settings=sub.settings,
            )

    @hookimpl
    def agent_configure_converter(self, converter: Converter) -> None:
        """Let this agent's journal codec read the child runs' plugin data.

        Child runs share the parent's journal and therefore its codec; a `SetData`
        on a key only a sub-agent's plugins declare is (un)structured by that
        sub-agent's own converter.
        """
        if self._children:
            _delegate_child_keys(converter, list(self._children.values()))

    # ------------------------------------------------------------------ sub-agents

    def _tool_for(self, sub: SubAgent) -> Callable[[Mapping[str, Any], ToolContext], Any]:
        async def call(arguments: Mapping[str, Any], ctx: ToolContext) -> ToolResult:
            return await self._delegate(sub, arguments, ctx)

        return call

    async def _delegate(self, sub: SubAgent, arguments: Mapping[str, Any], ctx: ToolContext) -> ToolResult:
        task = arguments.get("input")
        unknown = sorted(set(arguments) - {"input"})
        if unknown:
            raise ToolInputError(f"{', '.join(unknown)}: unknown argument (the only one is 'input')")
        if not isinstance(task, str) or not task.strip():
            raise ToolInputError(f"input: expected a non-empty string with the task for {sub.name!r}, got {task!r}")
        depth = ctx.state.get(DEPTH)
        cap = ctx.state.get(MAX_DEPTH) or self.max_depth
        if depth >= cap:
            return ToolResult(
                f"Sub-agent {sub.name!r} was not started: depth limit {cap} reached (this agent runs at depth {depth}).",
                is_error=True,
            )
        assert self._journal is not None
        child, run_id = self._children[sub.name], child_run_id(ctx.run_id, ctx.step, ctx.call_id)
        token = _LINK.set(_Link(ctx.run_id, depth + 1, cap))
        try:
            if await self._journal.load(run_id):
                outcome = await child.resume(run_id, decisions=ctx.decisions)
            else:
                outcome = await child.run(task, run_id=run_id)
        finally:
            _LINK.reset(token)
        if outcome.reason == "suspended":
            raise ToolSuspended(outcome.pending)
        return _result(sub.name, outcome)

    # ------------------------------------------------------------------ transfers

    async def _transfer(self, arguments: Mapping[str, Any], ctx: ToolContext) -> ToolResult:
        target = arguments.get("agent")
        unknown = sorted(set(arguments) - {"agent"})
        if unknown:
            raise ToolInputError(f"{', '.join(unknown)}: unknown argument (the only one is 'agent')")
        if not isinstance(target, str) or target not in self._peers:
            raise ToolInputError(f"agent: expected one of {', '.join(self._peers)}, got {target!r}")
        return ToolResult(f"Transferred to {target}, who continues the conversation.")

    @hookimpl
    def agent_run_start(self, ctx: Context) -> None:
        for peer in self._peers.values():
            missing = sorted((peer.tools or frozenset()) - set(ctx.tools))
            if missing:
                known = ", ".join(sorted(ctx.tools)) or "none"
                raise ConfigurationError(f"Peer {peer.name!r} lists unknown tools {missing} (registered: {known})")

    @hookimpl
    def agent_after_tool_execute(self, call: ToolCall, result: ToolResult) -> list[Patch] | None:
        if call.name != TRANSFER_TOOL or result.is_error or not self._peers:
            return None
        peer = self._peers[call.arguments["agent"]]
        return [SetModel(peer.model), SetData(ACTIVE, peer.name)]

    @hookimpl
    def agent_step_start(self, ctx: Context) -> list[Patch] | None:
        active = ctx.state.get(ACTIVE)
        if not active or not self._peers:
            return None
        peer = self._peers.get(active)
        if peer is None:
            raise ConfigurationError(f"the run was transferred to {active!r}, which is not a Peer of {self!r}")
        messages = ctx.state.messages
        leading_system = bool(messages) and messages[0].role == "system"
        out: list[Patch] = []
        if ctx.state.get(APPLIED) != active:
            visible = set(ctx.tools) if peer.tools is None else {*peer.tools, TRANSFER_TOOL}
            out += [SetData(APPLIED, active), OnlyTools(visible)]
            if peer.instructions is not None and leading_system:
                out.append(ReplaceMessage(0, Message("system", peer.instructions)))
        if peer.instructions is not None and not leading_system:
            out.append(InjectContext(peer.instructions))
        return out


class _ChildRuntime:
    """Added to every sub-agent: shares the parent's journal and records the link to the parent."""

    name = "handoff-child"

    def __init__(self, journal: Journal) -> None:
        self.journal = _SharedJournal(journal)

    @hookimpl
    def agent_register_runtime(self, runtime: RuntimeRegistrar) -> None:
        runtime.set_journal(self.journal)
        for key in _KEYS:
            runtime.add_state_key(key)

    @hookimpl
    def agent_run_start(self, ctx: Context) -> list[Patch] | None:
        link = _LINK.get()
        if link is None or ctx.state.get(DEPTH):  # linked already (a resume), or not started by a Handoff
            return None
        return [SetData(PARENT, link.parent), SetData(DEPTH, link.depth), SetData(MAX_DEPTH, link.cap)]


class _SharedJournal:
    """The parent's journal as seen by a sub-agent: the same runs, the parent's codec.

    `bind` is a no-op, so binding the sub-agent does not replace the codec the
    parent bound (the parent's codec reads child data through `_delegate_child_keys`).
    """

    def __init__(self, inner: Journal) -> None:
        self.inner = inner

    def bind(self, codec: Codec) -> None:
        """Keep the parent's codec."""

    async def claim(self, run_id: str) -> int:
        return await self.inner.claim(run_id)

    async def append(self, run_id: str, attempt: int, entries: Sequence[Entry], *, at: int) -> None:
        await self.inner.append(run_id, attempt, entries, at=at)

    async def load(self, run_id: str) -> list[Entry]:
        return await self.inner.load(run_id)

    async def runs(self) -> list[str]:
        return await self.inner.runs()


def _result(name: str, outcome: Outcome) -> ToolResult:
    """The tool result a parent's model sees for a sub-agent's outcome."""
    if outcome.reason == "completed":
        return ToolResult(outcome.output or f"(sub-agent {name!r} finished without an answer)")
    if outcome.reason == "stopped":
        stop = outcome.stop
        why = f"{stop.code}: {stop.detail}" if stop is not None else "stopped"
        last = f" Its last answer: {outcome.output}" if outcome.output else ""
        return ToolResult(f"Sub-agent {name!r} stopped ({why}).{last}", is_error=True)
    detail = f": {outcome.error.message}" if outcome.error is not None else ""
    verb = "was cancelled" if outcome.reason == "cancelled" else "failed"
    return ToolResult(f"Sub-agent {name!r} {verb}{detail}", is_error=True)


def _delegate_child_keys(converter: Converter, children: Sequence[Agent]) -> None:
    """Make `converter` (de)serialise child-run entries with the child agents' converters.

    An entry of a child run may carry `SetData` / `IncrementData` on keys that only
    the sub-agent's plugins declare (with their own cattrs hooks). Such an entry is
    encoded, and one the parent's converter cannot decode is decoded, by the
    converter of the sub-agent that knows it.
    """
    base_structure = converter.get_structure_hook(Entry)
    base_unstructure = converter.get_unstructure_hook(Entry)
    key_hook = converter.get_structure_hook(StateKey)

    def known(name: str) -> bool:
        try:
            key_hook(name, StateKey)
        except JournalCorrupt:
            return False
        return True

    def owner(entry: Entry) -> Converter | None:
        if type(entry) is not Committed:
            return None
        for patch in entry.patches:
            key = getattr(patch, "key", None)
            if isinstance(key, StateKey) and not known(key.name):
                for child in children:
                    try:
                        child.converter.structure(key.name, StateKey)
                    except JournalCorrupt:
                        continue
                    return child.converter
        return None

    def unstructure(entry: Entry) -> Any:
        found = owner(entry)
        return base_unstructure(entry) if found is None else found.unstructure(entry, Entry)

    def structure(raw: Mapping[str, Any], t: Any) -> Entry:
        try:
            return base_structure(raw, t)  # type: ignore[no-any-return]
        except Exception:
            for child in children:
                try:
                    return child.converter.structure(raw, Entry)
                except Exception:
                    continue
            raise

    converter.register_structure_hook(Entry, structure)
    converter.register_unstructure_hook(Entry, unstructure)
