"""Exactly once under contention (DESIGN §4 "claim, then load, then append conditionally",
§5.5-5.6): resumes of one run delivered at once — from tasks, threads and processes, with
the same or conflicting decisions, or with a resumer paused between its load and its
append — apply each decision once and run an approved non-idempotent tool once."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest

from agent_kernel import Agent, Approve, Deny, Outcome, ToolCall, hookimpl, patches
from agent_kernel.errors import StaleAttempt
from agent_kernel.journal import Decided, Entry, Inferred, Journal, MemoryJournal
from agent_kernel.testing import ScriptedModel, text, tool_call
from agent_kernel.testing.crash import UseJournal
from agent_plugin_sqlite import SqliteJournal
from agent_plugin_tools import Toolbox

RUN_ID = "contended"


class Ledger:
    """Counts executions of the non-idempotent `wire` tool, from any thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.wires: list[int] = []

    def wire(self, amount: int) -> str:
        """Wire money (not idempotent; needs approval).

        Args:
            amount: euros.
        """
        with self.lock:
            self.wires.append(amount)
        return f"wired {amount}"


class WireNeedsApproval:
    name = "wire-approval"

    @hookimpl
    def agent_before_tool_execute(self, call: ToolCall) -> list[patches.Patch] | None:
        return [patches.Suspend("wires need a human")] if call.name == "wire" else None


def make_agent(journal: Journal, ledger: Ledger) -> tuple[Agent, ScriptedModel]:
    model = ScriptedModel([tool_call("wire", amount=100), text("done")])
    plugins = [model, Toolbox([ledger.wire]), WireNeedsApproval(), UseJournal(journal)]
    return Agent(model="scripted", plugins=plugins, autoload=False), model


async def suspended_run(journal: Journal, ledger: Ledger) -> str:
    """Start the run; it suspends on the wire. Return the pending request's id."""
    agent, _ = make_agent(journal, ledger)
    outcome = await agent.run("wire 100", run_id=RUN_ID)
    assert outcome.reason == "suspended" and len(outcome.pending) == 1
    return outcome.pending[0].id


async def resume_once(journal: Journal, ledger: Ledger, decisions: dict[str, Any]) -> Outcome | StaleAttempt:
    agent, _ = make_agent(journal, ledger)
    try:
        return await agent.resume(RUN_ID, decisions=decisions)
    except StaleAttempt as exc:
        return exc


async def settled(journal: Journal, ledger: Ledger) -> tuple[Outcome, list[Entry], int]:
    """Resume once more with nothing to decide: the run's outcome, entries, model calls."""
    agent, model = make_agent(journal, ledger)
    outcome = await agent.resume(RUN_ID)
    return outcome, await journal.load(RUN_ID), len(model.requests)


def decided(entries: Sequence[Entry]) -> list[Decided]:
    return [e for e in entries if isinstance(e, Decided)]


class YieldingMemoryJournal(MemoryJournal):
    """The in-memory journal, letting other tasks run inside each call as a real store does."""

    async def claim(self, run_id: str) -> int:
        await anyio.sleep(0)
        return await super().claim(run_id)

    async def load(self, run_id: str) -> list[Entry]:
        await anyio.sleep(0)
        return await super().load(run_id)

    async def append(self, run_id: str, attempt: int, entries: Sequence[Entry], *, at: int) -> None:
        await anyio.sleep(0)
        await super().append(run_id, attempt, entries, at=at)


@pytest.fixture(params=["memory", "sqlite"])
def new_journal(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Journal]:
    """Makes a fresh journal of the kind under test."""
    made = itertools.count()
    if request.param == "memory":
        return YieldingMemoryJournal
    return lambda: SqliteJournal(tmp_path / f"runs-{next(made)}.db")


@pytest.fixture
def journal(new_journal: Callable[[], Journal]) -> Journal:
    return new_journal()


async def deliver(
    results: list[Outcome | StaleAttempt], journal: Journal, ledger: Ledger, decisions: dict[str, Any]
) -> None:
    results.append(await resume_once(journal, ledger, decisions))


async def test_concurrent_resumes_with_the_same_approval_run_the_tool_once(new_journal: Callable[[], Journal]) -> None:
    for round_ in range(10 if new_journal is YieldingMemoryJournal else 3):
        ledger = Ledger()
        run_journal = new_journal()
        request_id = await suspended_run(run_journal, ledger)
        results: list[Outcome | StaleAttempt] = []

        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(deliver, results, run_journal, ledger, {request_id: Approve()})
        outcome, entries, calls = await settled(run_journal, ledger)
        assert ledger.wires == [100], f"round {round_}: the approved wire ran {len(ledger.wires)} times"
        assert len(decided(entries)) == 1, f"round {round_}: {decided(entries)}"
        assert outcome.reason == "completed" and outcome.output == "done" and calls == 0
        assert any(isinstance(r, Outcome) and r.reason == "completed" for r in results), results
        assert all(isinstance(r, (Outcome, StaleAttempt)) for r in results)


async def test_approve_and_deny_racing_apply_exactly_one_decision(journal: Journal) -> None:
    ledger = Ledger()
    request_id = await suspended_run(journal, ledger)
    async with anyio.create_task_group() as tg:
        tg.start_soon(resume_once, journal, ledger, {request_id: Approve()})
        tg.start_soon(resume_once, journal, ledger, {request_id: Deny("no")})
    outcome, entries, _ = await settled(journal, ledger)
    (only,) = decided(entries)
    assert outcome.reason == "completed"
    if isinstance(only.decision, Approve):
        assert ledger.wires == [100]
    else:
        assert ledger.wires == []
        (result,) = [m for m in outcome.state.messages if m.role == "tool"]
        assert result.is_error and "Denied: no" in result.content


async def test_the_same_decision_delivered_again_later_changes_nothing(journal: Journal) -> None:
    ledger = Ledger()
    request_id = await suspended_run(journal, ledger)
    first = await resume_once(journal, ledger, {request_id: Approve()})
    again = await resume_once(journal, ledger, {request_id: Approve()})
    assert isinstance(first, Outcome) and isinstance(again, Outcome)
    assert (first.reason, again.reason, again.output) == ("completed", "completed", "done")
    assert ledger.wires == [100] and len(decided(await journal.load(RUN_ID))) == 1


class PausingJournal:
    """Wraps a journal; the first `load` after `armed` is set waits for `release`
    (a resumer paused between its claim-and-load and its first append)."""

    def __init__(self, inner: Journal) -> None:
        self.inner = inner
        self.armed = False
        self.paused = anyio.Event()
        self.release = anyio.Event()

    def bind(self, codec: Any) -> None:
        self.inner.bind(codec)

    async def claim(self, run_id: str) -> int:
        return await self.inner.claim(run_id)

    async def load(self, run_id: str) -> list[Entry]:
        entries = await self.inner.load(run_id)
        if self.armed:
            self.armed = False
            self.paused.set()
            await self.release.wait()
        return entries

    async def append(self, run_id: str, attempt: int, entries: Sequence[Entry], *, at: int) -> None:
        await self.inner.append(run_id, attempt, entries, at=at)

    async def runs(self) -> list[str]:
        return await self.inner.runs()


async def test_a_resumer_paused_between_load_and_append_is_fenced(journal: Journal) -> None:
    ledger = Ledger()
    request_id = await suspended_run(journal, ledger)
    paused = PausingJournal(journal)
    results: dict[str, Outcome | StaleAttempt] = {}

    async def slow() -> None:
        results["slow"] = await resume_once(paused, ledger, {request_id: Approve()})

    async with anyio.create_task_group() as tg:
        paused.armed = True
        tg.start_soon(slow)
        await paused.paused.wait()  # the slow resumer paused in its read-only first look
        results["fast"] = await resume_once(journal, ledger, {request_id: Approve()})
        paused.release.set()
    outcome, entries, calls = await settled(journal, ledger)
    assert ledger.wires == [100] and len(decided(entries)) == 1
    assert outcome.reason == "completed" and calls == 0
    assert sum(isinstance(e, Inferred) for e in entries) == 2


async def test_a_resumer_paused_after_its_claim_is_fenced(journal: Journal) -> None:
    """The paused resumer claimed and loaded; another resumer claims after it, finishes the
    run; the paused one wakes on its stale view and may not commit anything."""
    ledger = Ledger()
    request_id = await suspended_run(journal, ledger)
    paused = PausingJournal(journal)
    results: dict[str, Outcome | StaleAttempt] = {}
    loads = 0
    original = paused.load

    async def second_load_pauses(run_id: str) -> list[Entry]:
        nonlocal loads
        loads += 1
        paused.armed = loads == 2  # the load made under the claim
        return await original(run_id)

    paused.load = second_load_pauses  # type: ignore[method-assign]

    async def slow() -> None:
        results["slow"] = await resume_once(paused, ledger, {request_id: Approve()})

    async with anyio.create_task_group() as tg:
        tg.start_soon(slow)
        await paused.paused.wait()
        results["fast"] = await resume_once(journal, ledger, {request_id: Approve()})
        paused.release.set()
    assert isinstance(results["slow"], StaleAttempt), results["slow"]
    outcome, entries, calls = await settled(journal, ledger)
    assert ledger.wires == [100] and len(decided(entries)) == 1
    assert outcome.reason == "completed" and calls == 0


def test_resumes_from_threads_with_their_own_journal_objects_run_the_tool_once(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    ledger = Ledger()
    request_id = anyio.run(suspended_run, SqliteJournal(db), ledger)
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def deliver(backend: str) -> None:
        try:
            start.wait(30)
            anyio.run(resume_once, SqliteJournal(db), ledger, {request_id: Approve()}, backend=backend)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=deliver, args=(b,)) for b in ("trio", "asyncio", "trio", "asyncio")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    outcome, entries, calls = anyio.run(settled, SqliteJournal(db), ledger)
    assert ledger.wires == [100] and len(decided(entries)) == 1
    assert outcome.reason == "completed" and calls == 0


class CancelAtAppend(MemoryJournal):
    """Cancels `scope` when append number `at_append` starts, before anything is written."""

    def __init__(self, at_append: int) -> None:
        super().__init__()
        self.at_append, self.appends = at_append, 0
        self.scope: anyio.CancelScope | None = None

    async def append(self, run_id: str, attempt: int, entries: Sequence[Entry], *, at: int) -> None:
        self.appends += 1
        if self.appends == self.at_append and self.scope is not None:
            self.scope.cancel()
        await anyio.sleep(0)  # a checkpoint before the write, as a journal in a worker thread has
        await super().append(run_id, attempt, entries, at=at)


async def test_entries_of_an_append_cancelled_before_it_wrote_are_written_by_the_final_flush() -> None:
    """The run is cancelled while the model's response is being flushed: the response is
    still journaled (with the run's end), so the resume does not ask for that turn again."""
    for at_append in (1, 2):  # before the model request, and while its response is flushed
        journal = CancelAtAppend(at_append)
        ledger = Ledger()
        agent, model = make_agent(journal, ledger)
        with anyio.CancelScope() as scope:
            journal.scope = scope
            await agent.run("wire 100", run_id=RUN_ID)
        journal.scope = None
        entries = await journal.load(RUN_ID)
        assert entries[-1].reason == "cancelled", entries[-1]  # type: ignore[attr-defined]
        recorded = sum(isinstance(e, Inferred) for e in entries)
        assert recorded == len(model.requests), (at_append, recorded, len(model.requests))
        again, model_again = make_agent(journal, ledger)
        outcome = await again.resume(RUN_ID)
        assert outcome.reason == "suspended"
        assert len(model_again.requests) == 1 - recorded  # only a turn never answered is asked
