"""Threads: conversations that continue across runs, stored in a `SqliteJournal` file."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, final

from agent_kernel import Context, Message, RunState, StateKey, hookimpl, patches
from agent_kernel.errors import AgentError
from agent_kernel.patches import Patch
from agent_plugin_sqlite import SqliteJournal, Thread, ThreadNotFound

from ._replay import fork_run, replay
from ._windows import leading_system

if TYPE_CHECKING:
    from agent_kernel import RuntimeRegistrar

__all__ = ["INHERITED", "WINDOW_CARRY", "Memory", "ThreadBusy", "Threads"]

#: How many messages a run took over from its thread (-1: not a thread run, or not started).
INHERITED: StateKey[int] = StateKey("memory.inherited", int, default=-1)
#: The thread's window (start, summary) waiting to be applied at the run's first step.
WINDOW_CARRY: StateKey[tuple[int, str] | None] = StateKey("memory.window_carry", tuple[int, str] | None, default=None)

STATE_KEYS = (INHERITED, WINDOW_CARRY)
_CONTINUABLE = ("completed", "stopped")


class ThreadBusy(AgentError, RuntimeError):
    """The thread's last run has not finished (suspended, running, failed): resume it first."""


@final
class Threads:
    """Threads on a `SqliteJournal`: create, list, read, name, archive, fork.

    A thread's conversation is the conversation of its last run: each run a
    `Memory` plugin adds to a thread starts with the messages of the run before.

    Args:
        journal: the journal file holding the threads and their runs. Reading a
            thread decodes runs with the codec of the agent the journal is bound to.

    .. versionadded:: 0.1
    """

    def __init__(self, journal: SqliteJournal) -> None:
        for method in ("create_thread", "get_thread", "list_threads", "add_run", "create_fork", "update_thread"):
            if not callable(getattr(journal, method, None)):
                raise TypeError(
                    f"Threads(journal): {journal!r} has no {method}() (use agent_plugin_sqlite.SqliteJournal)"
                )
        self.journal = journal

    async def create(
        self, name: str = "", *, thread_id: str | None = None, metadata: Mapping[str, Any] | None = None
    ) -> Thread:
        """Create an empty thread (`ThreadExists` if `thread_id` is taken)."""
        return await self.journal.create_thread(name, thread_id=thread_id, metadata=metadata)

    async def get(self, thread_id: str) -> Thread:
        """The thread `thread_id` (`ThreadNotFound` if there is none)."""
        thread = await self.journal.get_thread(thread_id)
        if thread is None:
            raise ThreadNotFound(f"no thread {thread_id!r} in journal file {self.journal.path}")
        return thread

    async def list(self, *, archived: bool | None = False) -> list[Thread]:
        """Active threads (default), archived ones (``archived=True``) or all (None), oldest first."""
        return await self.journal.list_threads(archived=archived)

    async def state(self, thread_id: str) -> RunState | None:
        """The final state of the thread's last run (None for a thread without runs)."""
        thread = await self.get(thread_id)
        return await replay(self.journal, thread.run_ids[-1]) if thread.run_ids else None

    async def read(self, thread_id: str) -> tuple[Message, ...]:
        """The thread's conversation: every message of its last run, oldest first."""
        state = await self.state(thread_id)
        return () if state is None else tuple(state.messages)

    async def name(self, thread_id: str, name: str) -> Thread:
        """Rename the thread."""
        return await self.journal.update_thread(thread_id, name=name)

    async def archive(self, thread_id: str, archived: bool = True) -> Thread:
        """Archive the thread (or bring it back with ``archived=False``)."""
        return await self.journal.update_thread(thread_id, archived=archived)

    async def fork(
        self,
        thread_id: str,
        *,
        at_run: str | None = None,
        at_step: int | None = None,
        name: str | None = None,
        new_id: str | None = None,
    ) -> Thread:
        """Fork the thread; the fork and the original continue independently.

        Without `at_step` the fork shares the runs up to and including `at_run`
        (default: the last). With `at_step`, run `at_run` (default: the last) is
        forked after that committed step (`fork_run`): the new thread holds the
        runs before it and the forked run, which ``agent.resume`` continues, or a
        new run in the fork continues after.

        Raises:
            ThreadNotFound: no such thread.
            ValueError: `at_run` is not one of the thread's runs, or the thread has none.
            ForkError: `at_step` was never committed in that run.
        """
        if at_step is None:
            return await self.journal.fork_thread(thread_id, at_run=at_run, name=name, new_id=new_id)
        thread = await self.get(thread_id)
        runs = thread.run_ids
        if not runs:
            raise ValueError(f"thread {thread_id!r} has no run to fork at step {at_step}")
        at_run = runs[-1] if at_run is None else at_run
        if at_run not in runs:
            raise ValueError(f"run {at_run!r} is not in thread {thread_id!r} (runs: {', '.join(runs)})")
        before = runs[: runs.index(at_run)]
        forked = await fork_run(self.journal, at_run, at_step=at_step, new_run_id=uuid.uuid4().hex)
        origin = {"run": at_run, "step": at_step, "copy": forked}
        return await self.journal.create_fork(
            thread_id,
            [*before, forked],
            fork_run_id=before[-1] if before else None,
            name=name,
            new_id=new_id,
            metadata={**thread.metadata, "forked_from": origin},
        )


@final
class Memory:
    """Continue a thread: each run starts with the conversation of the thread's last run.

    At RunStart of a new run (not on resume), the run is added to the thread and
    the thread's messages (without their leading system messages: the agent's
    ``instructions`` come first) are put before the user's input. The thread's
    context window (start and summary) carries over at the first step, so a
    summarised thread is not summarised again. Both are patches, so journaled:
    a resume never loads the thread twice.

    Args:
        journal: the `SqliteJournal` holding the thread (also the agent's journal);
            None: the agent's journal, whatever plugin set it (``[plugins.sqlite]``).
        thread: the thread's id; with ``create=True`` its id or its name.
        carry: plugin state keys whose values carry over from the thread's last run,
            e.g. ``Approval(...).key`` so approvals remembered in one run of the
            thread hold in the next ones.
        create: a thread that does not exist yet is created (id and name `thread`)
            by the first run: what ``agent-kernel run --thread NAME`` and
            ``[agent] thread`` use.

    Raises (as the run's error, from RunStart):
        ThreadNotFound: no such thread (and ``create=False``).
        ThreadBusy: the thread's last run has not finished.
        TypeError: the agent's journal keeps no threads (not a `SqliteJournal`).

    .. versionadded:: 0.1
    """

    name = "memory"

    def __init__(
        self,
        journal: SqliteJournal | None = None,
        *,
        thread: str,
        carry: Iterable[StateKey[Any]] = (),
        create: bool = False,
    ) -> None:
        if not isinstance(thread, str) or not thread:
            raise ValueError(f"Memory(thread=...): expected a thread id, got {thread!r}")
        self.carry = tuple(carry)
        for i, key in enumerate(self.carry):
            if not isinstance(key, StateKey):
                raise TypeError(f"Memory(carry=...)[{i}]: expected a StateKey, got {key!r}")
        self._threads = Threads(journal) if journal is not None else None
        self._runtime: RuntimeRegistrar | None = None
        self.thread = thread
        self.create = create

    def __repr__(self) -> str:
        return f"Memory(thread={self.thread!r})"

    @property
    def threads(self) -> Threads:
        """The threads of the journal given, else of the agent's journal (known once the agent is built)."""
        if self._threads is None:
            registered = self._runtime.journal if self._runtime is not None else None
            if registered is None:
                raise TypeError(
                    f"thread {self.thread!r}: the agent keeps its runs in memory; threads need a journal file "
                    "(--journal runs.db, or [plugins.sqlite] path = 'runs.db' in agent.toml)"
                )
            self._threads = Threads(registered.item)
        return self._threads

    @hookimpl
    def agent_register_runtime(self, runtime: RuntimeRegistrar) -> None:
        self._runtime = runtime  # its journal is read at the first run, once every plugin registered
        for key in STATE_KEYS:
            runtime.add_state_key(key)

    async def _thread(self) -> Thread:
        threads = self.threads
        if not self.create:
            return await threads.get(self.thread)
        found = await threads.journal.get_thread(self.thread)
        if found is None:
            named = [t for t in await threads.list(archived=None) if t.name == self.thread]
            found = named[-1] if named else await threads.create(self.thread, thread_id=self.thread)
        return found

    @hookimpl
    async def agent_run_start(self, ctx: Context) -> list[Patch] | None:
        if ctx.state.get(INHERITED) >= 0:
            return None  # a resume: the thread is loaded already
        thread = await self._thread()
        self.thread = thread.id
        earlier = [r for r in thread.run_ids if r != ctx.run_id]
        prior = await replay(self.threads.journal, earlier[-1]) if earlier else None
        if prior is not None and prior.status not in _CONTINUABLE:
            raise ThreadBusy(
                f"thread {self.thread!r}: its last run {earlier[-1]!r} is {prior.status}; "
                f"resume it (agent.resume({earlier[-1]!r})) before continuing the thread"
            )
        await self.threads.journal.add_run(self.thread, ctx.run_id)
        if prior is None:
            return [patches.SetData(INHERITED, 0)]
        carried = [patches.SetData(key, prior.data[key.name]) for key in self.carry if key.name in prior.data]
        return [*inherit(ctx.state.messages, prior), *carried]

    @hookimpl
    def agent_step_start(self, ctx: Context) -> list[Patch] | None:
        carry = ctx.state.get(WINDOW_CARRY)
        if carry is None:
            return None
        return [patches.SetWindow(*carry), patches.SetData(WINDOW_CARRY, None)]


def inherit(messages: Sequence[Message], prior: RunState) -> list[Patch]:
    """Patches putting `prior`'s conversation before the new run's input (the last message)."""
    old_lead = leading_system(prior.messages)
    history = list(prior.messages)[old_lead:]
    out: list[Patch] = [patches.SetData(INHERITED, len(history))]
    if not history:
        return out
    lead = len(messages) - 1  # the new run's instructions, then its input
    out += [patches.ReplaceMessage(lead, history[0]), patches.AppendMessages([*history[1:], messages[lead]])]
    if prior.window_start > old_lead:
        out.append(patches.SetData(WINDOW_CARRY, (prior.window_start - old_lead + lead, prior.summary)))
    return out
