"""Replay a journaled run into its `RunState`, and fork a run at a committed step.

Both work on the kernel's `Journal` protocol (`load`, `claim`, `append`), so on the
in-memory journal, `SqliteJournal` and any conforming journal alike.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import attrs

from agent_kernel import Agent, Context, RunState, RuntimeRegistrar, hookimpl, patches
from agent_kernel.errors import AgentError, UnknownRun
from agent_kernel.journal import Codec, Committed, Decided, Ended, Entry, Journal, Started, expand

__all__ = ["ForkError", "fork_run", "replay", "replay_entries"]


class ForkError(AgentError, ValueError):
    """A run cannot be forked where asked: the step was never committed, or the new id is taken."""


class _Replayer:
    """Serves one run's entries to a bare agent and keeps the state its RunStart sees.

    The kernel folds a resumed run's journal before RunStart, through the same code
    as the live run; the `Stop` then ends the invocation before anything is called.
    Appends (the replay's own Started / Ended) are dropped. A finished run fires no
    hook at all: its resume returns the recorded outcome and state.
    """

    name = "memory.replay"

    def __init__(self, run_id: str, entries: Sequence[Entry]) -> None:
        self.run_id = run_id
        self.entries = list(entries)
        self.state: RunState | None = None

    @hookimpl
    def agent_register_runtime(self, runtime: RuntimeRegistrar) -> None:
        runtime.set_journal(self)

    @hookimpl
    def agent_run_start(self, ctx: Context) -> list[patches.Patch]:
        self.state = ctx.state
        return [patches.Stop("memory.replay", "replayed without calling anything")]

    # -- the Journal protocol, read-only
    def bind(self, codec: Codec) -> None:
        """Entries are objects already."""

    async def claim(self, run_id: str) -> int:
        return 2

    async def append(self, run_id: str, attempt: int, entries: Sequence[Entry], *, at: int) -> None:
        """The replay's own entries are not kept."""

    async def load(self, run_id: str) -> list[Entry]:
        return list(self.entries) if run_id == self.run_id else []

    async def runs(self) -> list[str]:
        return [self.run_id]


async def replay_entries(run_id: str, entries: Sequence[Entry]) -> RunState:
    """The `RunState` that `entries` (a run's journal) fold to, without calling anything.

    The kernel's own fold is used (a resume that stops at RunStart, on a throwaway
    agent with no model and no tools), so this is exactly the state a resume starts
    from. `status` is the reason the last invocation ended with, or ``running``.

    Raises:
        UnknownRun: `entries` is empty.
    """
    if not entries:
        raise UnknownRun(f"run {run_id!r} has no journal entries")
    replayer = _Replayer(run_id, entries)
    outcome = await Agent(None, [replayer], autoload=False).resume(run_id)
    if replayer.state is None:  # a finished run: the kernel returned its recorded outcome, running nothing
        return outcome.state
    status = "running"
    for entry in reversed(entries):
        if isinstance(entry, Ended):
            status = entry.reason
            break
        if isinstance(entry, Started):
            break
    return attrs.evolve(replayer.state, status=status)


async def replay(journal: Journal, run_id: str) -> RunState:
    """Load `run_id` from `journal` and return its final `RunState` (see `replay_entries`).

    Raises:
        UnknownRun: the journal has no such run.
    """
    entries = await journal.load(run_id)
    if not entries:
        raise UnknownRun(f"no run {run_id!r} in the journal ({type(journal).__name__})")
    return await replay_entries(run_id, entries)


def committed_steps(entries: Sequence[Entry]) -> list[int]:
    """The steps whose StepEnd is committed in `entries` (written out by `expand`), in order."""
    return [e.step for e in entries if isinstance(e, Committed) and e.phase == "step_end"]


def fork_prefix(entries: Sequence[Entry], at_step: int, source: str, new_run_id: str) -> list[Entry]:
    """The entries of a fork of run `source` after step `at_step`, renamed to `new_run_id`.

    Step 0 is the run's start (its input and RunStart); step N ends with the commit
    of StepEnd N. Approval decisions are renamed to the new run's request ids.

    Raises:
        ForkError: that step was never committed.
    """
    if isinstance(at_step, bool) or not isinstance(at_step, int) or at_step < 0:
        raise ForkError(f"at_step must be an int >= 0, got {at_step!r}")
    # every phase written out, none quiet: the prefix may end at a phase the run did not journal
    entries = [attrs.evolve(e, quiet=()) if isinstance(e, Started) else e for e in expand(source, entries)]
    end = None
    for i, entry in enumerate(entries):
        if isinstance(entry, Committed) and (
            (at_step == 0 and entry.phase == "run_start") or (entry.phase == "step_end" and entry.step == at_step)
        ):
            end = i + 1
            break
    if end is None:
        steps = ", ".join(map(str, committed_steps(entries))) or "none"
        raise ForkError(f"run {source!r} has no committed step {at_step} (committed steps: {steps}; 0 is the start)")
    old, new = f"{source}/", f"{new_run_id}/"
    return [
        attrs.evolve(e, request_id=new + e.request_id[len(old) :])
        if isinstance(e, Decided) and e.request_id.startswith(old)
        else e
        for e in entries[:end]
    ]


async def fork_run(journal: Journal, run_id: str, *, at_step: int, new_run_id: str | None = None) -> str:
    """Copy `run_id`'s journal up to the commit of step `at_step` into a new run; return its id.

    ``agent.resume(new_id)`` then continues the fork from step ``at_step + 1``
    independently of the original: nothing recorded before the fork point is
    requested or run again. Step 0 forks right after the run's start.

    Args:
        journal: the journal holding the run (any `Journal`).
        run_id: the run to fork.
        at_step: the last committed step the fork shares (0 for none).
        new_run_id: the fork's id (random when omitted).

    Raises:
        UnknownRun: no such run.
        ForkError: the step was never committed, or `new_run_id` is taken.
    """
    entries = await journal.load(run_id)
    if not entries:
        raise UnknownRun(f"no run {run_id!r} in the journal ({type(journal).__name__})")
    new_run_id = new_run_id or uuid.uuid4().hex
    prefix = fork_prefix(entries, at_step, run_id, new_run_id)
    attempt = await journal.claim(new_run_id)
    if attempt != 1 or await journal.load(new_run_id):
        raise ForkError(f"run id {new_run_id!r} is already taken in the journal; choose another new_run_id")
    await journal.append(new_run_id, attempt, prefix, at=0)
    return new_run_id
