"""SqliteJournal under the kernel: codec round trips, resume in a new Agent, fencing, backends."""

from __future__ import annotations

import asyncio
from functools import partial

import pytest
import trio
from sqlite_testkit import NOTES, STEPS, Tools, codec_agent, scenario_agent

from agent_kernel import Agent, ApprovalRequest, Approve, Deny, Message, Response, ToolCall, ToolResult, Usage, patches
from agent_kernel.errors import ConfigurationError, StaleAttempt
from agent_kernel.journal import (
    Committed,
    Decided,
    Ended,
    Entry,
    ErrorInfo,
    Inferred,
    Intended,
    MemoryJournal,
    Retried,
    Started,
    ToolDone,
    Waiting,
)
from agent_kernel.testing import ScriptedModel, text, tool_call
from agent_plugin_sqlite import SqliteJournal


def every_entry_kind() -> list[Entry]:
    """One or more entries of every kind, using every patch type and optional field."""
    call = ToolCall("call_1", "add", {"a": 1, "nested": {"b": [1, 2.5, None, True]}})
    return [
        Started(1, "scripted", "What is 1+2? ünïcødé ✓", "be brief", ("add", "ünïcødé_tool")),
        Started(2, "scripted"),
        Committed(
            "run_start",
            0,
            (
                patches.AppendMessages([Message("user", "more"), Message("system", "sys")]),
                patches.InjectContext("context"),
                patches.SetData(NOTES, {"add": [1, 2]}),
                patches.IncrementData(STEPS, 2),
                patches.IncrementData(STEPS, 0.5),
                patches.ToolChoice("none"),
                patches.ExcludeTools({"danger"}),
                patches.OnlyTools({"add", "danger"}),
                patches.OnlyTools(set()),
                patches.Stop("limit", "too many"),
            ),
            tuple(f"plugin-{i}" for i in range(10)),
        ),
        Committed("step_start", 1),
        Inferred(
            1,
            Response(
                Message("assistant", "thinking", (call, ToolCall("call_2", "danger"))),
                Usage(10, 5, 1),
                "tool_use",
                "scripted",
            ),
        ),
        Committed(
            "before_tool_execute",
            1,
            (
                patches.Block("no"),
                patches.Suspend("ask a human"),
                patches.ProvideResult("42", is_error=True),
                patches.RewriteArguments({"a": 2}),
            ),
            ("p",) * 4,
            "call_1",
        ),
        Intended(1, "call_1", {"a": 1, "nested": {"b": [1, 2.5, None, True]}}),
        Waiting(1, "call_1", (ApprovalRequest("run:1:call_1/1/c", ToolCall("c", "rm", {"p": "/x"}), "rm", "why", 1),)),
        ToolDone(1, "call_1", ToolResult("3")),
        ToolDone(1, "call_2", ToolResult("boom", is_error=True)),
        Committed("after_tool_execute", 1, (patches.Remind("check"),), ("p",), "call_1"),
        Decided("run/1/call_2", Approve({"x": 2})),
        Decided("run/1/call_3", Approve()),
        Decided("run/1/call_4", Deny("not today")),
        Retried("inference", 1, 0.25, "InferenceError: 503", "fallback-model"),
        Retried("tool:add", 2, 0.0, "ValueError: x"),
        Ended("completed"),
        Ended("error", ErrorInfo("it broke", "some-plugin", "agent_step_end", "RuntimeError")),
    ]


def test_sample_covers_every_entry_kind():
    def leaves(base: type) -> set[type]:
        found = set()
        for sub in base.__subclasses__():
            found.add(sub)
            found |= leaves(sub)
        return found

    sample = every_entry_kind()
    # by name: a class rebuilt by attrs (slots) leaves its original in __subclasses__ until collected
    assert {type(e).__name__ for e in sample} == {cls.__name__ for cls in leaves(Entry)}
    # Patches are opaque codec output to the journal; the kernel's `check_journal` (see
    # test_conformance.py) round-trips every patch kind the kernel has, new ones included.
    used = {type(p) for e in sample if isinstance(e, Committed) for p in e.patches}
    assert len(used) >= 13


@pytest.mark.parametrize("durability", ["commit", "batched"])
async def test_every_entry_kind_round_trips_through_the_agents_codec(db, durability):
    _, journal = codec_agent(db, durability=durability)
    sample = every_entry_kind()
    await journal.claim("run")
    await journal.append("run", 1, sample[:5], at=0)
    await journal.append("run", 1, sample[5:], at=5)
    assert await journal.load("run") == sample
    journal.close()
    # a new agent (so a new codec and converter) reads the same objects back
    _, fresh = codec_agent(db)
    loaded = await fresh.load("run")
    assert loaded == sample
    assert [type(e) for e in loaded] == [type(e) for e in sample]
    set_data = loaded[2].patches[2]
    assert set_data.key is NOTES and set_data.value == {"add": [1, 2]}


async def run_scenario(journal) -> tuple[list[Entry], object, object]:
    agent, _, _ = scenario_agent(journal)
    first = await agent.run("compute", run_id="scenario")
    assert first.reason == "suspended", first.error
    (request,) = first.pending
    second = await agent.resume("scenario", decisions={request.id: Approve()})
    assert second.reason == "completed", second.error
    return await agent.journal.load("scenario"), first, second


async def test_kernel_entries_are_identical_to_the_memory_journal(db):
    """The same scenario journaled in memory and in SQLite gives equal entries."""
    in_memory, mem_first, mem_second = await run_scenario(MemoryJournal_plugin())
    on_disk, first, second = await run_scenario(SqliteJournal(db))
    assert first.pending == mem_first.pending
    assert on_disk == in_memory
    kinds = {type(e) for e in on_disk}
    assert kinds == {Started, Committed, Inferred, Intended, ToolDone, Decided, Retried, Ended}
    assert second.output == mem_second.output == "all done"
    assert second.state.get(STEPS) == mem_second.state.get(STEPS) == 3
    assert second.state.get(NOTES) == {"add": [1], "danger": [5]}


class MemoryJournal_plugin:
    """Registers a fresh MemoryJournal, for comparisons."""

    name = "memory-journal"

    def __init__(self) -> None:
        self.journal = MemoryJournal()

    def agent_register_runtime(self, runtime):
        runtime.set_journal(self.journal)


async def test_resume_in_a_new_agent_does_not_rerequest_recorded_turns(db):
    agent, model, tools = scenario_agent(SqliteJournal(db))
    first = await agent.run("compute", run_id="r")
    assert first.reason == "suspended"
    assert len(model.requests) == 3  # the flaky one, the retry, the danger turn
    assert tools.calls == [("add", {"a": 2, "b": 3})]
    agent.journal.close()

    again, model2, tools2 = scenario_agent(SqliteJournal(db))
    (request,) = first.pending
    second = await again.resume("r", decisions={request.id: Approve()})
    assert second.reason == "completed", second.error
    assert second.output == "all done"
    assert len(model2.requests) == 1  # only the final turn
    assert tools2.calls == [("danger", {"x": 1})]  # add is not re-run
    roles = [m.role for m in model2.requests[0].messages]
    assert roles.count("assistant") == 2 and roles.count("tool") == 2
    tool_messages = [m.content for m in model2.requests[0].messages if m.role == "tool"]
    assert tool_messages[0].startswith("5") and tool_messages[1].startswith("did 1")
    assert second.state.get(STEPS) == 3

    # a finished run resumed again (in yet another agent) makes no call and returns the same outcome
    third_agent, model3, tools3 = scenario_agent(SqliteJournal(db))
    third = await third_agent.resume("r")
    assert (third.reason, third.output) == ("completed", "all done")
    assert model3.requests == [] and tools3.calls == []
    assert third.state.messages == second.state.messages


async def test_a_denied_approval_round_trips(db):
    agent, _, tools = scenario_agent(SqliteJournal(db))
    first = await agent.run("compute", run_id="r")
    assert tools.calls == [("add", {"a": 2, "b": 3})]
    (request,) = first.pending
    agent2, model2, tools2 = scenario_agent(SqliteJournal(db))
    second = await agent2.resume("r", decisions={request.id: Deny("not today")})
    assert second.reason == "completed"
    assert tools2.calls == []
    assert any("not today" in m.content for m in model2.requests[0].messages if m.role == "tool")


async def test_a_stale_worker_cannot_commit_through_the_kernel(db):
    """Agent A is inside a tool when agent B (another journal object) resumes the run."""
    entered, release = trio.Event(), trio.Event()
    ran: list[str] = []

    async def slow(arguments):
        ran.append("slow")
        if len(ran) == 1:  # only A's call blocks; B's returns at once
            entered.set()
            await release.wait()
        return "slow result"

    class SlowTools(Tools):
        name = "slow-tools"

        def agent_register_tools(self, tools):
            from agent_kernel import ToolSpec

            async def run(arguments, ctx):
                return ToolResult(await slow(arguments))

            tools.add(ToolSpec("slow", "slow", idempotent=True), run)

    turns = [tool_call("slow"), text("finished")]
    a_model = ScriptedModel(turns)
    a = Agent(model="scripted", plugins=[a_model, SlowTools(), SqliteJournal(db)], autoload=False)
    b_model = ScriptedModel(turns)
    b = Agent(model="scripted", plugins=[b_model, SlowTools(), SqliteJournal(db)], autoload=False)
    outcome_a: list[BaseException] = []

    async def run_a():
        try:
            await a.run("go", run_id="contested")
        except StaleAttempt as exc:
            outcome_a.append(exc)

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_a)
            await entered.wait()
            # B takes over while A is inside the tool: the intent is recorded, the result is not,
            # and the tool is idempotent, so B runs it again and finishes the run.
            outcome_b = await b.resume("contested")
            release.set()  # A wakes up, and its next commit must be refused
    assert len(outcome_a) == 1, "the stale worker committed"
    assert ran == ["slow", "slow"]
    assert len(a_model.requests) == 1 and len(b_model.requests) == 1
    assert outcome_b.reason == "completed" and outcome_b.output == "finished"
    assert "attempt 1" in str(outcome_a[0]) and "attempt 2" in str(outcome_a[0])
    loaded = await b.journal.load("contested")
    assert loaded[-1] == Ended("completed")
    starts = [i for i, e in enumerate(loaded) if isinstance(e, Started)]
    assert len(starts) == 2
    # nothing from attempt 1 after attempt 2 started
    import sqlite3

    with sqlite3.connect(db) as conn:
        attempts = [row[0] for row in conn.execute("SELECT attempt FROM entries WHERE run_id='contested' ORDER BY seq")]
    assert attempts == sorted(attempts) and attempts[starts[1] :] == [2] * (len(attempts) - starts[1])


async def test_it_registers_as_the_agents_journal(db):
    journal = SqliteJournal(db)
    agent = Agent(model="scripted", plugins=[ScriptedModel([text("hi")]), journal], autoload=False)
    assert agent.journal is journal
    assert "sqlite" in agent.plugins
    assert agent.plugins["sqlite"].hooks == ("agent_register_runtime",)
    outcome = await agent.run("hello")
    assert outcome.reason == "completed"
    assert await journal.runs() == [outcome.run_id]


def test_two_journals_in_one_agent_conflict(db, tmp_path):
    class Other:
        name = "other-journal"

        def agent_register_runtime(self, runtime):
            runtime.set_journal(MemoryJournal())

    with pytest.raises(ConfigurationError, match="journal"):
        Agent(model="scripted", plugins=[Other(), SqliteJournal(db)], autoload=False)


def test_works_under_asyncio(db):
    async def main():
        agent, model, _ = scenario_agent(SqliteJournal(db))
        first = await agent.run("compute", run_id="aio")
        (request,) = first.pending
        second = await agent.resume("aio", decisions={request.id: Approve()})
        return first.reason, second.reason, second.output, len(model.requests)

    assert asyncio.run(main()) == ("suspended", "completed", "all done", 4)

    async def resume_under_trio():
        agent, model, _ = scenario_agent(SqliteJournal(db))
        outcome = await agent.resume("aio")
        return outcome.output, len(model.requests)

    assert trio.run(resume_under_trio) == ("all done", 0)


async def test_a_cancelled_run_is_journaled_and_resumable(db):
    """The run is cancelled from outside while its (non-idempotent) tool hangs."""
    started: list[str] = []

    class Hang(Tools):
        name = "hang-tools"

        def agent_register_tools(self, tools):
            from agent_kernel import ToolSpec

            async def run(arguments, ctx):
                started.append(ctx.run_id)
                await trio.sleep_forever()

            tools.add(ToolSpec("hang", "hang", idempotent=False), run)

    agent = Agent(
        model="scripted",
        plugins=[ScriptedModel([tool_call("hang"), text("ok")]), Hang(), SqliteJournal(db)],
        autoload=False,
    )
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(agent.run, "go", run_id="c"))
            while not started:
                await trio.sleep(0.001)
            nursery.cancel_scope.cancel()
    assert (await agent.journal.run_info("c")).status == "cancelled"
    loaded = await agent.journal.load("c")
    assert any(isinstance(e, Intended) for e in loaded) and loaded[-1] == Ended("cancelled")
    model = ScriptedModel([tool_call("hang"), text("ok")])
    again = Agent(model="scripted", plugins=[model, Hang(), SqliteJournal(db)], autoload=False)
    with trio.fail_after(30):  # the tool must not run again: it would hang
        second = await again.resume("c")
    assert second.reason == "completed" and second.output == "ok"
    assert len(model.requests) == 1 and started == ["c"]
    tool_message = next(m for m in second.state.messages if m.role == "tool")
    assert tool_message.is_error and "unknown" in tool_message.content
