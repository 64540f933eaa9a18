"""`Agent`: the public face of the kernel."""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, final

import anyio
import pluggy

from . import events as ev
from ._cursor import Cursor
from ._outcome import Outcome
from ._plugins import PluginInfo, load_plugins
from ._runner import _Run
from ._serde import JsonCodec
from ._state import Decision, RunState, ToolSpec, freeze_mapping
from ._wiring import wire
from .errors import AgentError, RunExists, StaleAttempt, UnknownRun
from .journal import Entry, Journal, Started

if TYPE_CHECKING:
    from cattrs import Converter

#: The most steps a run takes unless ``Agent(max_steps=...)`` says otherwise (None: no limit).
#: A small model that calls tools in a loop otherwise runs until it is killed.
DEFAULT_MAX_STEPS = 50


@final
class Agent:
    """An agent: a model string plus a set of plugins, ready to run.

    Args:
        model: the model string, e.g. "openai:gpt-4o-mini" or "scripted".
        plugins: plugin objects or modules, registered after the entry-point plugins
            (so their hooks run first).
        autoload: load the ``agent_kernel.plugins`` entry points.
        block: plugin names to skip.
        instructions: a system message put at the start of every new run.
        settings: provider settings sent with every request (temperature, max_tokens...).
        max_steps: the most steps a run takes (default `DEFAULT_MAX_STEPS`, 50); at the
            end of that step, if the run would go on, it stops with outcome ``stopped``
            and stop code ``limit.steps``. None (or 0) removes the limit.

    Raises:
        PluginLoadError: a plugin could not be loaded (see the message).
        ConfigurationError: two plugins registered the same model, tool, strategy or journal.
        ValueError: `max_steps` is not a positive int, 0 or None.
    """

    def __init__(
        self,
        model: str | None = None,
        plugins: Iterable[object] = (),
        *,
        autoload: bool = True,
        block: Iterable[str] = (),
        instructions: str | None = None,
        settings: Mapping[str, Any] | None = None,
        max_steps: int | None = DEFAULT_MAX_STEPS,
    ) -> None:
        if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 0):
            raise ValueError(f"max_steps must be a positive int, or None (or 0) for no limit; got {max_steps!r}")
        self._pm, self._plugin_infos = load_plugins(plugins, autoload=autoload, block=block)
        self._wiring = wire(
            self._pm,
            model=model,
            instructions=instructions,
            settings=freeze_mapping(settings or {}),
            max_steps=max_steps or None,
        )

    # ------------------------------------------------------------------ public API

    @property
    def model(self) -> str | None:
        """The model string runs start with."""
        return self._wiring.model

    @property
    def instructions(self) -> str | None:
        """The system message put at the start of every new run."""
        return self._wiring.instructions

    @property
    def settings(self) -> Mapping[str, Any]:
        """Provider settings sent with every request."""
        return self._wiring.settings

    @property
    def max_steps(self) -> int | None:
        """The most steps a run takes (None: no limit)."""
        return self._wiring.max_steps

    @property
    def codec(self) -> JsonCodec:
        """The journal codec bound to this agent's journal."""
        return self._wiring.codec

    @property
    def plugin_manager(self) -> pluggy.PluginManager:
        """This agent's own pluggy `PluginManager` (never shared between agents)."""
        return self._pm

    @property
    def plugins(self) -> Mapping[str, PluginInfo]:
        """Loaded plugins by name, with distribution, version and implemented hooks."""
        return dict(self._plugin_infos)

    @property
    def converter(self) -> Converter:
        """This agent's private cattrs converter (journal entries, events, patches)."""
        return self._wiring.codec.converter

    @property
    def journal(self) -> Journal:
        """The journal runs are recorded in."""
        return self._wiring.journal

    @property
    def redactors(self) -> tuple[Callable[[Any], Any], ...]:
        """The registered redactors, in order: every journal entry, event and outcome error
        passes through them (tools such as an inspector apply them to what they show)."""
        return self._wiring.redactors

    @property
    def tools(self) -> tuple[ToolSpec, ...]:
        """Every registered tool."""
        return self._wiring.tool_specs

    def fold(self, run_id: str, entries: Sequence[Entry]) -> RunState:
        """The state a run's journal `entries` fold to with this agent's plugins; nothing is called.

        What `resume` would load, checked without resuming (``agent-kernel sqlite --check``
        folds every run this way).

        Raises:
            JournalCorrupt: an entry does not fold onto the ones before it (naming run and entry).
        """
        cursor = Cursor(run_id, self._wiring.model or "")
        cursor.replay(entries)
        return cursor.state

    async def run(self, input: str, *, run_id: str | None = None, timeout: float | None = None) -> Outcome:
        """Run the agent on `input` until it completes, stops, suspends, fails or is cancelled.

        Args:
            input: the user's message.
            run_id: the run's id (generated when omitted); the handle for `resume`.
            timeout: seconds after which the run is cancelled (outcome ``cancelled``).

        Returns:
            The `Outcome`. Plugin failures become outcome ``error``, never exceptions.

        Raises:
            RunExists: the run id is already taken (an `AgentError`).
            AgentError: no model was given.
        """
        return await self._invoke(input, run_id, {}, timeout)

    async def resume(
        self, run_id: str, *, decisions: Mapping[str, Decision] | None = None, timeout: float | None = None
    ) -> Outcome:
        """Continue `run_id` from its first uncommitted phase.

        Recorded LLM responses are not requested again and recorded tool results are
        not re-run. A finished run (completed or stopped) is not run again: its
        recorded outcome is returned, no hook fires and nothing is journaled.

        Args:
            run_id: the run to continue.
            decisions: `Approve` / `Deny` by approval request id; a decision already
                applied is ignored.
            timeout: seconds after which this invocation is cancelled.

        Raises:
            UnknownRun: the journal has no such run.
        """
        return await self._invoke(None, run_id, decisions or {}, timeout)

    @asynccontextmanager
    async def stream(
        self,
        input: str | None = None,
        *,
        run_id: str | None = None,
        resume: bool = False,
        decisions: Mapping[str, Decision] | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[EventStream]:
        """Run (or, with ``resume=True``, resume `run_id`) and stream its events.

        Usage::

            async with agent.stream("hi") as events:
                async for event in events:
                    ...
            events.outcome  # once the stream is exhausted

        Leaving the block early cancels the run (it stays resumable).
        """
        if resume and run_id is None:
            raise AgentError("stream(resume=True) needs the run_id to resume")
        if not resume and input is None:
            raise AgentError("stream() needs an input, or resume=True and a run_id")
        send, receive = anyio.create_memory_object_stream[ev.Event](math.inf)
        stream = EventStream(receive)
        decisions = decisions or {}
        run, start = await self._prepare(None if resume else input, run_id, send.send_nowait, decisions)

        fenced: list[StaleAttempt] = []

        async def drive() -> None:
            with send:
                try:
                    stream.outcome = await run.invoke(start, decisions, timeout)
                except StaleAttempt as exc:  # raised as itself below, as run/resume raise it
                    fenced.append(exc)

        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(drive)
                try:
                    yield stream
                finally:
                    if stream.outcome is None:
                        tg.cancel_scope.cancel()
                    receive.close()
        except BaseExceptionGroup as group:
            # One error (the caller's, from the block, or the run's): raised as itself, as
            # `run` would; the task group is an implementation detail.
            if len(group.exceptions) != 1:
                raise
            (only,) = group.exceptions
            raise only from only.__cause__
        if fenced:
            raise fenced[0]

    # ------------------------------------------------------------------ internals

    async def _invoke(
        self, input: str | None, run_id: str | None, decisions: Mapping[str, Decision], timeout: float | None
    ) -> Outcome:
        run, start = await self._prepare(input, run_id, None, decisions)
        return await run.invoke(start, decisions, timeout)

    async def _prepare(
        self, input: str | None, run_id: str | None, sink: Any, decisions: Mapping[str, Decision]
    ) -> tuple[_Run, Started]:
        """Check everything that can be refused, then claim the run and load it (resume when `input` is None).

        Claim, then load, then append conditionally (DESIGN §4): the run is folded from
        what is committed *after* the claim, and every append of this attempt names the
        position it saw, so a resumer that raced another can never commit on a stale view.
        A read-only look first refuses what can be refused (an unknown run or request)
        and returns a finished run's outcome without claiming anything, so a refused or
        redundant resume never fences out the attempt that holds the run.
        """
        wiring = self._wiring
        journal = wiring.journal
        if input is None:
            if run_id is None:
                raise AgentError("resume needs a run_id")
            look = await journal.load(run_id)
            if not look:
                raise UnknownRun(f"no run {run_id!r} in the journal ({type(journal).__name__})")
            run = _Run(self._wiring, run_id, sink)
            run.load(look, decisions)
            if not run.finished:
                attempt = await journal.claim(run_id)
                run = _Run(self._wiring, run_id, sink)
                run.load(await journal.load(run_id), decisions)
            else:  # read-only: claiming would fence out nobody's work for nothing
                attempt = 0
            model = next((e.model for e in look if isinstance(e, Started)), wiring.model or "")
            return run, Started(attempt, model, tools=wiring.tool_names, quiet=wiring.quiet)
        if wiring.model is None:
            raise AgentError("no model: pass Agent(model=...)")
        taken = RunExists(f"run id {run_id!r} is already taken; use resume() to continue it")
        if run_id is None:
            run_id = uuid.uuid4().hex
        elif await journal.load(run_id):
            raise taken
        attempt = await journal.claim(run_id)
        # attempt > 1 with no entries: an earlier attempt died before its first commit
        if attempt != 1 and await journal.load(run_id):
            raise taken
        return _Run(self._wiring, run_id, sink), Started(
            attempt, wiring.model, input, wiring.instructions, wiring.tool_names, wiring.quiet
        )

    def unknown_model(self, model: str) -> str | None:
        """Why no loaded plugin serves `model`, with the fix; None when one does.

        Only the model string is checked: nothing is created or contacted.

        .. versionadded:: 0.1
        """
        return self._wiring.unknown_model(model)


class EventStream:
    """The async iterator `Agent.stream` yields; `outcome` is set when the run ends."""

    def __init__(self, receive: Any) -> None:
        self._receive = receive
        self.outcome: Outcome | None = None

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> ev.Event:
        try:
            return await self._receive.receive()  # type: ignore[no-any-return]
        except anyio.EndOfStream:
            raise StopAsyncIteration from None
