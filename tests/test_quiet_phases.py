"""Quiet phases (journal format 3): the phases no plugin implements are journaled only
when they carry a patch, and the next entry implies them (`Cursor.catch_up`).

The properties run each random scenario twice: once with hooks on a random set of
phases (the others quiet) and once with a plugin implementing every phase (nothing
quiet, every phase journaled, as format 2 did). Both runs must end alike, and the
quiet journal, written out by `journal.expand`, must be the loud one entry for entry;
a fresh cursor must fold it to the state the run ended with.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from agent_kernel import Agent, ApprovalRequest, Approve, Deny, ToolCall, hookimpl, patches
from agent_kernel._cursor import Cursor
from agent_kernel.errors import ToolSuspended
from agent_kernel.hookspecs import PHASES
from agent_kernel.journal import Committed, Entry, Intended, Started, ToolDone, Waiting, expand
from agent_kernel.testing import FakeTools, ScriptedModel, fault, text, tool_call
from agent_kernel.testing import strategies as aks
from agent_kernel.testing.grammar import run_sync


def _listener(phases: frozenset[str]) -> object:
    """A plugin implementing the hooks of `phases`, each returning nothing."""

    def nothing(self: Any, **kwargs: Any) -> None:
        return None

    namespace = {f"agent_{phase}": hookimpl(nothing) for phase in phases}
    return type("Listener", (), namespace)()


class Gate:
    """BeforeToolExecute: blocks ``add`` calls with an even ``a``, suspends ``echo`` calls."""

    @hookimpl
    def agent_before_tool_execute(self, ctx: Any, call: Any) -> list[patches.Patch] | None:
        if call.name == "add" and call.arguments.get("a", 1) % 2 == 0:
            return [patches.Block("even")]
        if call.name == "echo":
            return [patches.Suspend("echo needs approval")]
        return None


async def _echo(**kwargs: Any) -> str:
    return "echo"


async def _add(tool_context: Any, **kwargs: Any) -> str:
    if kwargs.get("a") == 7 and not tool_context.decisions:  # a tool of its own that asks first
        call = ToolCall(tool_context.call_id, "add", kwargs)
        raise ToolSuspended([ApprovalRequest(f"{tool_context.call_id}-7", call, "add", "confirm 7", tool_context.step)])
    return str(sum(v for v in kwargs.values() if isinstance(v, int)))


_echo.__name__, _add.__name__ = "echo", "add"


async def _play(
    script: list[Any], plugins: list[object], concurrent: bool, max_steps: int | None
) -> tuple[Any, list[Entry]]:
    """Run `script` to its end, answering approvals (approve, deny, approve, ...)."""
    tools = FakeTools(_echo, _add, strategy="concurrent" if concurrent else "sequential", idempotent=["echo"])
    agent = Agent(
        model="scripted", plugins=[ScriptedModel(script), tools, *plugins], autoload=False, max_steps=max_steps
    )
    outcome = await agent.run("go", run_id="r")
    for n in range(6):
        if outcome.reason not in ("suspended", "error"):
            break
        decisions = {r.id: Approve() if (n + i) % 2 == 0 else Deny("no") for i, r in enumerate(outcome.pending)}
        outcome = await agent.resume("r", decisions=decisions)
    return outcome, await agent.journal.load("r")


def _comparable(entries: list[Entry]) -> list[Any]:
    """`entries` without `Started.quiet`, each stretch of intents and results in call
    order: concurrent calls journal theirs in completion order, which differs run to run."""
    out: list[Any] = []
    stretch: list[Entry] = []
    for entry in [*entries, None]:
        if type(entry) in (Intended, ToolDone, Waiting):
            stretch.append(entry)  # type: ignore[arg-type]
            continue
        out.extend(sorted(stretch, key=lambda e: (e.call_id, type(e).__name__)))  # type: ignore[attr-defined]
        stretch = []
        if type(entry) is Started:
            entry = Started(entry.attempt, entry.model, entry.input, entry.instructions, entry.tools)
        out.append(entry)
    return out[:-1]


@given(
    script=aks.scripts(max_turns=4, max_calls=3),
    hooked=st.frozensets(st.sampled_from(PHASES)),
    gate=st.booleans(),
    concurrent=st.booleans(),
    max_steps=st.sampled_from([None, 2]),
    failing=st.booleans(),
    sevens=st.booleans(),
)
def test_a_quiet_journal_written_out_is_the_journal_of_every_phase(
    script: list[Any],
    hooked: frozenset[str],
    gate: bool,
    concurrent: bool,
    max_steps: int | None,
    failing: bool,
    sevens: bool,
) -> None:
    if failing:  # the first request fails for good: the run ends in error and is resumed
        script = [fault("down", retryable=False), *script]
    if sevens:
        script = [tool_call("add", a=7, b=1), *script]
    gates = [Gate()] if gate else []

    async def scenario() -> None:
        quiet, entries = await _play(script, [_listener(hooked), *gates], concurrent, max_steps)
        loud, every = await _play(script, [_listener(frozenset(PHASES)), *gates], concurrent, max_steps)
        assert (quiet.reason, quiet.output, quiet.state) == (loud.reason, loud.output, loud.state)
        assert all(not e.quiet for e in every if type(e) is Started)
        assert _comparable(expand("r", entries)) == _comparable(every)
        assert len(entries) <= len(every)
        cursor = Cursor("r", "scripted")
        cursor.replay(entries)
        assert cursor.state == quiet.state

    run_sync(scenario)


def test_a_step_without_hooks_journals_its_response_intent_and_result_only() -> None:
    """The workload of bench/peers.py: 3 entries per tool step (Inferred, Intended,
    ToolDone), and the phases they imply written out by `expand`."""

    async def scenario() -> None:
        tools = FakeTools(_add)
        script = [tool_call("add", a=1, b=2), text("3")]
        agent = Agent(model="scripted", plugins=[ScriptedModel(script), tools], autoload=False)
        outcome = await agent.run("go")
        entries = await agent.journal.load(outcome.run_id)
        assert [type(e).__name__ for e in entries] == [
            "Started",
            "Inferred",
            "Intended",
            "ToolDone",
            "Inferred",
            "Ended",
        ]
        assert entries[0].quiet == PHASES  # type: ignore[attr-defined]
        phases = [e.phase for e in expand("r", entries) if type(e) is Committed]
        one_step = ["step_start", "before_inference", "after_inference"]
        assert phases == [
            "run_start",
            *one_step,
            "before_tool_execute",
            "after_tool_execute",
            "step_end",
            *one_step,
            "step_end",
            "run_end",
        ]

    run_sync(scenario)


def test_a_resume_with_hooks_never_runs_a_phase_the_quiet_invocation_passed() -> None:
    """The first invocation has no phase hooks and fails at its second model call; it
    journals the quiet phases it passed last (StepEnd 1, StepStart 2, BeforeInference 2).
    A resume by an agent implementing every phase starts at the model call: its hooks
    see only the phases still to come."""
    seen: list[tuple[str, int]] = []

    class Recorder:
        def _note(self, ctx: Any) -> None:
            seen.append((ctx.phase, ctx.step))

    for phase in PHASES:
        setattr(Recorder, f"agent_{phase}", hookimpl(lambda self, ctx, **kwargs: self._note(ctx)))

    async def scenario() -> None:
        script = [tool_call("add", a=1, b=2), fault("down", retryable=False), text("3")]
        model = ScriptedModel(script)
        quiet = Agent(model="scripted", plugins=[model, FakeTools(_add)], autoload=False)
        first = await quiet.run("go", run_id="r")
        assert first.reason == "error", first
        entries = await quiet.journal.load("r")
        tail = [(e.phase, e.step) for e in entries if type(e) is Committed]
        assert tail == [("step_end", 1), ("step_start", 2), ("before_inference", 2)], tail
        hooked = Agent(model="scripted", plugins=[model, FakeTools(_add), Recorder()], autoload=False)
        await hooked.journal.claim("r")
        await hooked.journal.append("r", 1, entries, at=0)
        done = await hooked.resume("r")
        assert (done.reason, done.output, done.stats.steps) == ("completed", "3", 2)
        assert seen == [("run_start", 2), ("after_inference", 2), ("step_end", 2), ("run_end", 2)], seen
        assert done.state == hooked.fold("r", await hooked.journal.load("r"))

    run_sync(scenario)
