"""Threads: conversations continue across runs, resume never reloads, forks continue independently."""

from __future__ import annotations

import pathlib
import tempfile
from typing import Any

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st
from memory_testkit import PROPERTY, CountingModel, Gate, echo, fail, named_tool

from agent_kernel import Agent, Message, RunState
from agent_kernel.testing import FakeTools, ScriptedModel, tool_call
from agent_plugin_memory import (
    INHERITED,
    SUMMARIES,
    ForkError,
    LastTurns,
    Memory,
    Summarize,
    ThreadBusy,
    Threads,
)
from agent_plugin_sqlite import SqliteJournal, ThreadExists, ThreadNotFound


def contents(messages: Any) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in messages]


def agent_for(journal: SqliteJournal, thread: str, model: Any, *extra: Any, instructions: str | None = "sys") -> Agent:
    plugins = [journal, model, FakeTools(echo), Memory(journal, thread=thread), *extra]
    return Agent("scripted", plugins, autoload=False, instructions=instructions)


def test_a_thread_continues_across_runs_and_agents(run: Any, db: pathlib.Path) -> None:
    async def main() -> None:
        journal = SqliteJournal(db)
        threads = Threads(journal)
        thread = await threads.create("support", thread_id="t", metadata={"user": "ada"})
        assert thread.run_ids == () and await threads.read("t") == ()
        model = CountingModel(["Hello Ada.", [("echo", {"text": "ada"})], "Your name is Ada."])
        agent = agent_for(journal, "t", model)
        first = await agent.run("My name is Ada.")
        second = await agent.run("What is my name?")
        assert (first.reason, second.reason, second.output) == ("completed", "completed", "Your name is Ada.")
        assert contents(model.requests[1].messages) == [
            ("system", "sys"),
            ("user", "My name is Ada."),
            ("assistant", "Hello Ada."),
            ("user", "What is my name?"),
        ]
        assert second.state.get(INHERITED) == 2 and first.state.get(INHERITED) == 0
        thread = await threads.get("t")
        assert thread.run_ids == (first.run_id, second.run_id)
        assert await threads.read("t") == tuple(second.state.messages)
        # another process, another agent without instructions: the thread goes on
        journal.close()
        journal2 = SqliteJournal(db)
        later = CountingModel(["Still Ada."])
        third = await agent_for(journal2, "t", later, instructions=None).run("And now?")
        assert contents(later.requests[0].messages)[0] == ("user", "My name is Ada.")
        assert contents(third.state.messages)[-2:] == [("user", "And now?"), ("assistant", "Still Ada.")]
        assert len(third.state.messages) == len(second.state.messages) - 1 + 2  # minus "sys", plus two
        journal2.close()

    run(main)


async def test_a_resumed_thread_run_does_not_load_the_thread_twice(db: pathlib.Path) -> None:
    journal = SqliteJournal(db)
    await Threads(journal).create(thread_id="t")
    agent = agent_for(journal, "t", CountingModel(["one", fail(), "two"]))
    first = await agent.run("a")
    failed = await agent.run("b")
    assert failed.reason == "error" and "boom" in failed.error.message
    # the thread's last run failed: a new run may not start until it is resumed
    blocked = await agent.run("c")
    assert blocked.reason == "error" and blocked.error.plugin == "memory"
    assert "is error; resume it" in blocked.error.message and blocked.error.type == "ThreadBusy"
    resumed = await agent.resume(failed.run_id)
    assert resumed.reason == "completed"
    assert contents(resumed.state.messages) == [
        ("system", "sys"),
        ("user", "a"),
        ("assistant", "one"),
        ("user", "b"),
        ("assistant", "two"),
    ]
    assert (await Threads(journal).get("t")).run_ids == (first.run_id, failed.run_id)  # not the refused run
    journal.close()


async def test_a_thread_whose_last_run_is_suspended_is_busy(db: pathlib.Path) -> None:
    journal = SqliteJournal(db)
    await Threads(journal).create(thread_id="t")
    plugins = [
        journal,
        ScriptedModel([tool_call("gate")]),
        FakeTools(named_tool("gate")),
        Memory(journal, thread="t"),
        Gate(),
    ]
    agent = Agent("scripted", plugins, autoload=False)
    assert (await agent.run("go")).reason == "suspended"
    busy = await agent.run("next")
    assert busy.reason == "error" and busy.error.type == ThreadBusy.__name__ and "suspended" in busy.error.message
    missing = await agent_for(journal, "ghost", CountingModel(["x"])).run("hi")
    assert missing.reason == "error" and missing.error.type == "ThreadNotFound" and "'ghost'" in missing.error.message
    journal.close()


async def test_threads_name_archive_list_and_refuse_bad_input(db: pathlib.Path) -> None:
    journal = SqliteJournal(db)
    threads = Threads(journal)
    for name in ["a", "b"]:
        await threads.create(name, thread_id=name)
    assert (await threads.name("a", "alpha")).name == "alpha"
    assert (await threads.archive("b")).archived
    assert [t.id for t in await threads.list()] == ["a"]
    assert [t.id for t in await threads.list(archived=True)] == ["b"]
    assert [t.id for t in await threads.list(archived=None)] == ["a", "b"]
    assert not (await threads.archive("b", False)).archived
    with pytest.raises(ThreadExists):
        await threads.create(thread_id="a")
    with pytest.raises(ThreadNotFound, match="'ghost'"):
        await threads.get("ghost")
    with pytest.raises(ValueError, match="no run to fork"):
        await threads.fork("a", at_step=0)
    with pytest.raises(TypeError, match="SqliteJournal"):
        Threads(object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="thread id"):
        Memory(journal, thread="")
    journal.close()


def test_a_thread_forked_at_a_step_continues_independently(run: Any, db: pathlib.Path) -> None:
    async def main() -> None:
        journal = SqliteJournal(db)
        threads = Threads(journal)
        await threads.create("main", thread_id="t")
        model = CountingModel(["A1", [("echo", {"text": "x"})], "A2"])
        agent = agent_for(journal, "t", model)
        first = await agent.run("q1")
        second = await agent.run("q2")  # step 1: echo; step 2: "A2"
        fork = await threads.fork("t", at_run=second.run_id, at_step=1, name="what if", new_id="f")
        assert (fork.parent_id, fork.fork_run_id, fork.name) == ("t", first.run_id, "what if")
        assert fork.run_ids[0] == first.run_id and fork.run_ids[1] not in (first.run_id, second.run_id)
        assert fork.metadata["forked_from"] == {"run": second.run_id, "step": 1, "copy": fork.run_ids[1]}
        # the fork's copy of run 2 resumes after its step 1 with another answer
        fork_model = CountingModel(["B2", "B3"])
        fork_agent = agent_for(journal, "f", fork_model)
        resumed = await fork_agent.resume(fork.run_ids[1])
        assert resumed.output == "B2" and len(fork_model.requests) == 1
        # both threads continue on their own
        more = await fork_agent.run("q3")
        assert more.output == "B3"
        assert contents(await threads.read("f"))[-4:] == [
            ("tool", "x"),
            ("assistant", "B2"),
            ("user", "q3"),
            ("assistant", "B3"),
        ]
        main_model = CountingModel(["A3"])
        assert (await agent_for(journal, "t", main_model).run("q3")).output == "A3"
        assert contents(await threads.read("t"))[-3:] == [("assistant", "A2"), ("user", "q3"), ("assistant", "A3")]
        assert (await threads.get("t")).run_ids[:2] == (first.run_id, second.run_id)
        # forking at a run boundary shares the runs
        whole = await threads.fork("t", at_run=first.run_id)
        assert whole.run_ids == (first.run_id,) and await threads.read(whole.id) == tuple(first.state.messages)
        with pytest.raises(ForkError, match="no committed step 9"):
            await threads.fork("t", at_step=9)
        with pytest.raises(ValueError, match="'nope' is not in thread 't'"):
            await threads.fork("t", at_run="nope", at_step=0)
        journal.close()

    run(main)


async def test_a_summarised_thread_is_not_summarised_again_in_the_next_run(db: pathlib.Path) -> None:
    calls: list[str] = []

    async def summarize(messages: Any, previous: str) -> str:
        calls.append(previous)
        return f"summary {len(calls)}"

    long = "z" * 80
    journal = SqliteJournal(db)
    await Threads(journal).create(thread_id="t")
    strategy = Summarize(100, summarize, keep_tokens=40)
    model = CountingModel([[("echo", {"text": long})], [("echo", {"text": long})], "done", "next"])
    agent = agent_for(journal, "t", model, strategy)
    first = await agent.run("start " + long)
    assert first.reason == "completed" and first.state.summary.startswith("summary")
    summarised = len(calls)
    second = await agent.run("short")
    assert second.reason == "completed", second.error
    last = model.requests[-1].messages
    assert last[1] == Message("system", first.state.summary)  # carried over, not redone
    assert len(calls) == summarised and second.state.get(SUMMARIES) == 0
    assert second.state.summary == first.state.summary
    assert second.state.messages[second.state.window_start] == first.state.messages[first.state.window_start]
    journal.close()


async def test_a_window_strategy_sees_the_thread_history(db: pathlib.Path) -> None:
    journal = SqliteJournal(db)
    await Threads(journal).create(thread_id="t")
    model = CountingModel(["r1", "r2", "r3"])
    agent = agent_for(journal, "t", model, LastTurns(2))
    for question in ["q1", "q2", "q3"]:
        await agent.run(question)
    assert contents(model.requests[-1].messages) == [
        ("system", "sys"),
        ("user", "q2"),
        ("assistant", "r2"),
        ("user", "q3"),
    ]
    state: RunState | None = await Threads(journal).state("t")
    assert state is not None and len(state.messages) == 7
    journal.close()


@PROPERTY
@given(st.lists(st.tuples(st.integers(0, 2), st.booleans()), min_size=1, max_size=4))
def test_a_thread_holds_every_turn_once_whatever_crashes_and_resumes(plan: list[tuple[int, bool]]) -> None:
    """Runs of random tool steps, some failing mid-run and resumed: the thread's conversation is each turn once."""

    async def main(db: pathlib.Path) -> None:
        journal = SqliteJournal(db, durability="batched")
        await Threads(journal).create(thread_id="t")
        expected: list[tuple[str, str]] = [("system", "sys")]
        turns: list[Any] = []
        for n, (tools, crash) in enumerate(plan):
            calls: list[Any] = [[("echo", {"text": f"r{n}-{i}"})] for i in range(tools)]
            turns += [*calls[:1], fail(), *calls[1:]] if crash else calls
            turns.append(f"answer {n}")
            expected.append(("user", f"question {n}"))
            for i in range(tools):
                expected += [("assistant", ""), ("tool", f"r{n}-{i}")]
            expected.append(("assistant", f"answer {n}"))
        agent = agent_for(journal, "t", CountingModel(turns))  # one agent: its codec is built once
        for n, (_, crash) in enumerate(plan):
            outcome = await agent.run(f"question {n}")
            if crash:
                assert outcome.reason == "error"
                outcome = await agent.resume(outcome.run_id)
            assert outcome.reason == "completed", outcome.error
        assert contents(await Threads(journal).read("t")) == expected
        assert len((await Threads(journal).get("t")).run_ids) == len(plan)
        journal.close()

    with tempfile.TemporaryDirectory() as directory:
        trio.run(main, pathlib.Path(directory) / "t.db")


def test_carried_state_keys_make_remembered_approvals_last_for_the_thread(run: Any, db: pathlib.Path) -> None:
    from agent_kernel import Approve
    from agent_plugin_approval import Approval
    from agent_plugin_approval.policies import require_approval

    async def main() -> None:
        journal = SqliteJournal(db)
        await Threads(journal).create("ops", thread_id="ops")
        turns = [[("echo", {"text": "deploy"})], "Deployed.", [("echo", {"text": "deploy"})], "Deployed again."]
        model = CountingModel(turns)

        def agent(carry: bool) -> Agent:
            approval = Approval(require_approval("echo"), remember=True)
            memory = Memory(journal, thread="ops", carry=[approval.key] if carry else [])
            return Agent("scripted", [journal, model, FakeTools(echo), memory, approval], autoload=False)

        first = await agent(carry=True).run("Deploy.")
        assert first.reason == "suspended"
        done = await agent(carry=True).resume(first.run_id, decisions={first.pending[0].id: Approve()})
        assert done.reason == "completed"
        again = await agent(carry=True).run("Deploy again.")
        assert (again.reason, again.output) == ("completed", "Deployed again."), "the approval held for the thread"
        model.position = 2
        forgetful = await agent(carry=False).run("Deploy once more.")
        assert forgetful.reason == "suspended", "without carry, the next run asks again"

    run(main)


def test_carry_takes_state_keys_only(db: pathlib.Path) -> None:
    with pytest.raises(TypeError, match=r"Memory\(carry=...\)\[0\]: expected a StateKey, got 'approval.x'"):
        Memory(SqliteJournal(db), thread="t", carry=["approval.x"])  # type: ignore[list-item]
