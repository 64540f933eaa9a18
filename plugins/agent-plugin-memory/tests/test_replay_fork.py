"""Replay (a recorded run folds to its final state with zero calls) and fork at a committed step."""

from __future__ import annotations

import pathlib
import tempfile
from typing import Any

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st
from memory_testkit import PROPERTY, CountingModel, Gate, add, named_tool

from agent_kernel import Agent, Approve, hookimpl
from agent_kernel.errors import UnknownRun
from agent_kernel.journal import Committed, MemoryJournal
from agent_kernel.testing import FakeTools, ScriptedModel, strategies, text, tool_call
from agent_plugin_memory import ForkError, fork_run, replay
from agent_plugin_sqlite import SqliteJournal

TOOLS = strategies.TOOL_NAMES


def _tools() -> FakeTools:
    return FakeTools(*(named_tool(name) for name in TOOLS))


class Journal:
    """Registers a given journal object as the agent's journal."""

    name = "test-journal"

    def __init__(self, journal: Any) -> None:
        self.journal = journal

    @hookimpl
    def agent_register_runtime(self, runtime: Any) -> None:
        runtime.set_journal(self.journal)


# ----------------------------------------------------------------------------- replay


@PROPERTY
@given(strategies.scripts(), st.booleans())
def test_a_recorded_run_replays_to_the_identical_state_with_zero_calls(script: list[Any], sqlite: bool) -> None:
    """Random scripts (tool calls, unknown tools, parallel calls): resume and `replay` call nothing."""

    async def main(directory: pathlib.Path) -> None:
        journal: Any = SqliteJournal(directory / "r.db", durability="batched") if sqlite else MemoryJournal()
        model, tools = ScriptedModel(script), _tools()
        agent = Agent("scripted", [Journal(journal), model, tools], autoload=False)
        outcome = await agent.run("go")
        assert outcome.reason == "completed", outcome.error
        requests, invocations = len(model.requests), len(tools.invocations)
        entries = await journal.load(outcome.run_id)
        # a fresh agent (another process, for SQLite) with a model and tools that would notice any call
        fresh_model, fresh_tools = ScriptedModel([]), _tools()
        fresh = Agent("scripted", [Journal(journal), fresh_model, fresh_tools], autoload=False)
        again = await fresh.resume(outcome.run_id)
        assert (again.reason, again.output, again.state) == (outcome.reason, outcome.output, outcome.state)
        assert await replay(journal, outcome.run_id) == outcome.state
        assert fresh_model.requests == [] and fresh_tools.invocations == []
        assert (len(model.requests), len(tools.invocations)) == (requests, invocations)
        assert await journal.load(outcome.run_id) == entries  # replaying journals nothing
        if sqlite:
            journal.close()

    with tempfile.TemporaryDirectory() as directory:  # per example: function-scoped fixtures are shared
        trio.run(main, pathlib.Path(directory))


def test_replay_of_a_suspended_run_keeps_its_pending_request(run: Any) -> None:
    async def main() -> None:
        journal = MemoryJournal()
        model = ScriptedModel([tool_call("gate", a=1), text("done")])
        agent = Agent("scripted", [Journal(journal), model, FakeTools(named_tool("gate")), Gate()], autoload=False)
        outcome = await agent.run("go")
        assert outcome.reason == "suspended"
        state = await replay(journal, outcome.run_id)
        assert state.status == "suspended" and state.pending == outcome.state.pending
        assert state.messages == outcome.state.messages and len(model.requests) == 1
        with pytest.raises(UnknownRun, match="'ghost'"):
            await replay(journal, "ghost")

    run(main)


# ----------------------------------------------------------------------------- fork


@PROPERTY
@given(st.lists(st.integers(0, 2), min_size=1, max_size=5), st.data())
def test_fork_at_any_committed_step_resumes_without_repeating_the_prefix(steps: list[int], data: st.DataObject) -> None:
    """Fork a finished run after a random step; the fork asks only for the steps after it."""
    turns: list[Any] = [[("add", {"a": i, "b": j}) for j in range(n)] for i, n in enumerate(steps) if n]
    turns.append("original end")
    at = data.draw(st.integers(0, len(turns)), label="at_step")

    async def main() -> None:
        journal = MemoryJournal()
        model, tools = CountingModel(turns), FakeTools(add)
        agent = Agent("scripted", [Journal(journal), model, tools], autoload=False)
        original = await agent.run("go", run_id="orig")
        assert original.reason == "completed" and original.stats.steps == len(turns)
        before = await journal.load("orig")
        fork_id = await fork_run(journal, "orig", at_step=at, new_run_id="fork")
        forked_model, forked_tools = CountingModel(["forked end"]), FakeTools(add)
        fresh = Agent("scripted", [Journal(journal), forked_model, forked_tools], autoload=False)
        outcome = await fresh.resume(fork_id)
        assert outcome.reason == "completed" and outcome.run_id == "fork"
        if at == len(turns):  # forked after the last step: already finished, nothing to do
            assert forked_model.requests == [] and outcome.state.messages == original.state.messages
        else:
            assert len(forked_model.requests) == 1 and forked_tools.invocations == []
            assert outcome.output == "forked end" and outcome.stats.steps == at + 1
            shared = len(forked_model.requests[0].messages)
            assert list(outcome.state.messages[:shared]) == list(original.state.messages[:shared])
        assert await journal.load("orig") == before  # the original is untouched
        assert (await replay(journal, "orig")) == original.state

    trio.run(main)


def test_forked_and_original_runs_diverge_and_both_finish(run: Any, db: pathlib.Path) -> None:
    async def main() -> None:
        journal = SqliteJournal(db)
        model, tools = (
            ScriptedModel([tool_call("add", a=1, b=2), tool_call("add", a=3, b=4), text("7")]),
            FakeTools(add),
        )
        agent = Agent("scripted", [journal, model, tools], autoload=False)
        original = await agent.run("sum things", run_id="orig")
        assert (original.reason, original.output, original.stats.steps) == ("completed", "7", 3)
        fork_id = await fork_run(journal, "orig", at_step=1)
        # the fork continues in "another process" with another model: it diverges after step 1
        journal.close()
        journal2 = SqliteJournal(db)
        other = ScriptedModel([tool_call("add", a=1, b=2), tool_call("add", a=10, b=20), text("30")])
        fork_tools = FakeTools(add)
        forked = await Agent("scripted", [journal2, other, fork_tools], autoload=False).resume(fork_id)
        assert (forked.reason, forked.output, forked.stats.steps) == ("completed", "30", 3)
        assert len(other.requests) == 2  # steps 2 and 3 only: step 1 was recorded
        assert [i.arguments for i in fork_tools.invocations] == [{"a": 10, "b": 20}]
        assert forked.state.messages[:3] == original.state.messages[:3]  # input, step 1 call, result
        assert forked.state.messages[3:] != original.state.messages[3:]
        assert (await replay(journal2, "orig")) == original.state
        journal2.close()

    run(main)


def test_a_fork_keeps_approvals_decided_before_the_fork_point(run: Any) -> None:
    async def main() -> None:
        journal = MemoryJournal()
        script = [tool_call("gate", a=1), tool_call("gate", a=2), text("done")]
        tools = FakeTools(named_tool("gate"))
        agent = Agent("scripted", [Journal(journal), ScriptedModel(script), tools, Gate()], autoload=False)
        outcome = await agent.run("go", run_id="r")
        outcome = await agent.resume("r", decisions={outcome.pending[0].id: Approve()})
        assert outcome.reason == "suspended" and outcome.pending[0].id == "r/2/call_2_1"
        fork_id = await fork_run(journal, "r", at_step=1, new_run_id="f")
        fork_model = ScriptedModel(script)
        forked_agent = Agent(
            "scripted", [Journal(journal), fork_model, FakeTools(named_tool("gate")), Gate()], autoload=False
        )
        forked = await forked_agent.resume(fork_id)
        assert forked.reason == "suspended" and [r.id for r in forked.pending] == ["f/2/call_2_1"]
        finished = await forked_agent.resume("f", decisions={"f/2/call_2_1": Approve()})
        assert finished.reason == "completed" and finished.output == "done"
        assert len(fork_model.requests) == 2  # steps 2 and 3; the approval of step 1 was not asked again

    run(main)


async def test_fork_refuses_what_it_cannot_do() -> None:
    journal = MemoryJournal()
    agent = Agent("scripted", [Journal(journal), ScriptedModel([text("hi")])], autoload=False)
    await agent.run("go", run_id="r")
    with pytest.raises(UnknownRun, match="'ghost'"):
        await fork_run(journal, "ghost", at_step=0)
    with pytest.raises(ForkError, match=r"no committed step 2 \(committed steps: 1; 0 is the start\)"):
        await fork_run(journal, "r", at_step=2)
    with pytest.raises(ForkError, match="at_step must be an int >= 0"):
        await fork_run(journal, "r", at_step=-1)
    with pytest.raises(ForkError, match="'r' is already taken"):
        await fork_run(journal, "r", at_step=0, new_run_id="r")
    start = await fork_run(journal, "r", at_step=0)
    assert [type(e).__name__ for e in await journal.load(start)] == ["Started", "Committed"]
    assert isinstance((await journal.load(start))[-1], Committed)
