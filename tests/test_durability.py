"""When entries become durable (docs/design.md "Durability"): a model response is
durable before any plugin code runs after it, and rides in its first tool call's
intent write when none does."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from agent_kernel import Agent, hookimpl
from agent_kernel.journal import Entry, Inferred, Intended, MemoryJournal
from agent_kernel.testing import FakeTools, ScriptedModel, UseJournal, text, tool_call

pytestmark = pytest.mark.anyio

STEPS = 4


class Writes(MemoryJournal):
    """The in-memory journal, remembering the entry kinds of every append."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[list[str]] = []

    async def append(self, run_id: str, attempt: int, entries: Sequence[Entry], *, at: int) -> None:
        await super().append(run_id, attempt, entries, at=at)
        self.writes.append([type(e).__name__ for e in entries])


class SeesInferredDurable:
    """A plugin whose `hook` checks that the step's response is already in the journal."""

    name = "sees-inferred"

    def __init__(self, journal: Writes) -> None:
        self.journal = journal
        self.checked = 0

    async def check(self, ctx: Any) -> None:
        entries = await self.journal.load(ctx.run_id)
        assert any(isinstance(e, Inferred) and e.step == ctx.step for e in entries), "response not durable yet"
        self.checked += 1


class AfterInference(SeesInferredDurable):
    @hookimpl
    async def agent_after_inference(self, ctx: Any, response: Any) -> None:
        await self.check(ctx)


class BeforeTool(SeesInferredDurable):
    @hookimpl
    async def agent_before_tool_execute(self, ctx: Any, call: Any) -> None:
        await self.check(ctx)


def add(a: int, b: int) -> int:
    return a + b


def agent(journal: Writes, *plugins: Any, strategy: str = "sequential") -> Agent:
    turns = [tool_call("add", a=i, b=1) for i in range(STEPS)] + [text("done")]
    return Agent(
        model="scripted",
        plugins=[ScriptedModel(turns), FakeTools(add, strategy=strategy), UseJournal(journal), *plugins],
        autoload=False,
    )


async def test_with_no_plugin_code_in_between_the_response_rides_in_the_intent_write() -> None:
    journal = Writes()
    outcome = await agent(journal).run("go")
    assert outcome.reason == "completed", outcome.error
    tool_steps = [w for w in journal.writes if "Intended" in w]
    assert len(tool_steps) == STEPS
    for write in tool_steps:  # one write: the response, its phases, the call's intent
        assert write.index("Inferred") < write.index("Intended") == len(write) - 1
    # the start; per tool step that write and the one before the next request (the result
    # and the next step's first phases); the answer (written at once: hooks may follow); the end
    assert len(journal.writes) == 1 + 2 * STEPS + 1 + 1, journal.writes


@pytest.mark.parametrize("make", [AfterInference, BeforeTool])
async def test_a_response_is_durable_before_a_hook_after_it_runs(make: type[SeesInferredDurable]) -> None:
    journal = Writes()
    plugin = make(journal)
    outcome = await agent(journal, plugin).run("go")
    assert outcome.reason == "completed", outcome.error
    assert plugin.checked >= STEPS
    assert all(write[-1] == "Inferred" for write in journal.writes if "Inferred" in write)


async def test_a_response_is_durable_before_an_observer_or_a_concurrent_strategy_sees_it() -> None:
    class Observer:
        name = "observer"
        events = 0

        @hookimpl
        def agent_on_event(self, event: Any) -> None:
            Observer.events += 1

    for plugins, strategy in (((Observer(),), "sequential"), ((), "concurrent")):
        journal = Writes()
        outcome = await agent(journal, *plugins, strategy=strategy).run("go")
        assert outcome.reason == "completed", outcome.error
        inferred = [w for w in journal.writes if "Inferred" in w]
        assert len(inferred) == STEPS + 1
        assert all(write[-1] == "Inferred" for write in inferred), journal.writes
        assert all(Intended.__name__ not in write for write in inferred)
    assert Observer.events > 0


async def test_a_response_asking_for_an_unknown_tool_is_written_at_once() -> None:
    journal = Writes()
    turns = [tool_call("nope", x=1), text("done")]
    plugins = [ScriptedModel(turns), FakeTools(add), UseJournal(journal)]
    outcome = await Agent(model="scripted", plugins=plugins, autoload=False).run("go")
    assert outcome.reason == "completed", outcome.error
    assert next(w for w in journal.writes if "Inferred" in w)[-1] == "Inferred"


class Reversed:
    """A sequential strategy starting the step's last call first."""

    concurrent = False

    async def run(self, calls: Sequence[Any], execute: Any) -> None:
        for call in reversed(calls):
            await execute(call)


class AfterTool(SeesInferredDurable):
    @hookimpl
    async def agent_after_tool_execute(self, ctx: Any, call: Any, result: Any) -> None:
        await self.check(ctx)


async def test_a_response_whose_first_started_call_is_unknown_is_written_at_once() -> None:
    """A sequential strategy may start any call first: an unknown tool's result is no
    intent write, so the response must not wait for one."""
    journal = Writes()
    plugin = AfterTool(journal)
    turns = [[tool_call("add", a=1, b=2), tool_call("nope", x=1)], text("done")]
    plugins = [ScriptedModel(turns), FakeTools(add, strategy=Reversed()), UseJournal(journal), plugin]
    outcome = await Agent(model="scripted", plugins=plugins, autoload=False).run("go")
    assert outcome.reason == "completed", outcome.error
    assert plugin.checked == 2
    assert next(w for w in journal.writes if "Inferred" in w)[-1] == "Inferred"
