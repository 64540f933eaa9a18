"""Conformance check for inspector sources: ``await check_source(journal, source)``.

A `Source` for another journal (PostgreSQL...) passes when it reads what an agent
journals: run it on an empty journal plugin and a source over the same storage::

    from agent_plugin_inspector.testing import check_source

    async def test_my_source(tmp_path):
        journal = SqliteJournal(tmp_path / "j.db")
        await check_source(journal, SqliteSource(tmp_path / "j.db"))

It runs scripted runs through an `Agent` on `journal` (completed, suspended on an
approval, failing tool, several steps, a thread) and raises `AssertionError` naming
what the source got wrong.
"""

from __future__ import annotations

from typing import Any

from agent_kernel import Agent, Approve, Request, ToolCall, hookimpl, patches
from agent_kernel.testing import FakeTools, ScriptedModel, text, tool_call

from ._source import RunRow, Source

__all__ = ["check_source"]


class _Gate:
    """Suspends every ``deploy`` call for a decision (what an approval plugin does)."""

    name = "check-gate"

    @hookimpl
    def agent_before_tool_execute(self, call: ToolCall) -> list[patches.Patch] | None:
        return [patches.Suspend("deploys need a person")] if call.name == "deploy" else None


def _policy(request: Request) -> Any:
    first = next(m.content for m in request.messages if m.role == "user")
    done = sum(1 for m in request.messages if m.role == "assistant")
    verb, _, rest = first.partition(" ")
    if verb == "deploy":
        return tool_call("deploy", target=rest) if done == 0 else text("deployed")
    if verb == "fail":
        return tool_call("broken") if done == 0 else text("it failed")
    if verb == "count":
        return tool_call("add", a=done, b=1) if done < int(rest) else text("counted")
    return text(first)


def _deploy(target: str) -> str:
    return f"deployed {target}"


def _broken() -> str:
    raise RuntimeError("broken on purpose")


def _add(a: int, b: int) -> int:
    return a + b


_deploy.__name__, _broken.__name__, _add.__name__ = "deploy", "broken", "add"


async def check_source(journal: object, source: Source) -> None:
    """Check that `source` reads what an agent journals into `journal` (an empty journal plugin).

    Raises:
        AssertionError: the source returned something else than what was journaled.
    """
    agent = Agent(
        model="scripted",
        plugins=[journal, ScriptedModel([_policy] * 100), FakeTools(_deploy, _broken, _add), _Gate()],
        autoload=False,
    )
    hello = await agent.run("hello", run_id="check-hello")
    assert hello.reason == "completed", hello
    waiting = await agent.run("deploy prod", run_id="check-deploy")
    assert waiting.reason == "suspended", waiting
    failed = await agent.run("fail", run_id="check-fail")
    assert failed.reason == "completed", failed
    counted = await agent.run("count 3", run_id="check-count")
    assert counted.reason == "completed", counted
    order = ["check-count", "check-fail", "check-deploy", "check-hello"]

    page = await source.run_page(limit=10)
    assert [r.id for r in page.rows] == order, (
        f"run_page: newest first expected {order}, got {[r.id for r in page.rows]}"
    )
    assert page.total == 4 and page.next_before is None, page
    rows = {r.id: r for r in page.rows}
    _expect(rows["check-hello"], status="completed", model="scripted", steps=1, tool_calls=0)
    _expect(rows["check-deploy"], status="suspended", steps=1, tool_calls=0)
    _expect(rows["check-fail"], status="completed", steps=2, tool_calls=1, tool_errors=1)
    _expect(rows["check-count"], status="completed", steps=4, tool_calls=3, tool_errors=0)
    assert rows["check-count"].tokens == counted.usage.total_tokens, (rows["check-count"], counted.usage)

    seen: list[str] = []
    before = None
    while True:
        part = await source.run_page(limit=3, before=before)
        seen += [r.id for r in part.rows]
        if part.next_before is None:
            break
        before = part.next_before
    assert seen == order, f"keyset pages of 3 must cover every run once, newest first: {seen}"

    only = await source.run_page(status="suspended")
    assert [r.id for r in only.rows] == ["check-deploy"] and only.total == 1, only
    counts = await source.status_counts()
    assert counts == {"completed": 3, "suspended": 1}, counts

    pending = await source.pending()
    assert [(p.id, p.run_id, p.tool, p.arguments) for p in pending] == [
        (waiting.pending[0].id, "check-deploy", "deploy", {"target": "prod"})
    ], pending
    assert pending[0].reason == "deploys need a person" and pending[0].step == 1, pending[0]
    assert await source.pending(run_id="check-hello") == []

    index = await source.step_index("check-count")
    assert index.steps == 4, index
    everything = await source.entries("check-count")
    assert [e.seq for e in everything] == list(range(len(everything))) and index.length == len(everything)
    lo, hi = index.seq_range(2, 3)
    middle = await source.entries("check-count", lo=lo, hi=hi)
    assert {e.data.get("step") for e in middle} == {2, 3}, "seq_range(2, 3) must hold steps 2 and 3 only"
    # the range starts at step 2's first entry: the one before it is step 1's
    assert middle[0].data["step"] == 2 and everything[lo - 1].data.get("step") == 1, (everything[lo - 1], middle[0])
    assert await source.entries("no-such-run") == []
    assert await source.run("no-such-run") is None

    resumed = await agent.resume("check-deploy", decisions={waiting.pending[0].id: Approve()})
    assert resumed.reason == "completed", resumed
    assert await source.pending() == [], "a decided request is no longer pending"
    row = await source.run("check-deploy")
    assert row is not None and row.status == "completed" and row.attempts == 2, row

    create = getattr(journal, "create_thread", None)
    if create is not None:  # a journal with threads
        await create("a thread", thread_id="check-thread")
        for run_id in ("check-hello", "check-count"):
            await journal.add_run("check-thread", run_id)  # type: ignore[attr-defined]
        threads = await source.threads()
        assert [t.id for t in threads] == ["check-thread"], threads
        thread = await source.thread("check-thread")
        assert thread is not None and thread.run_ids == ("check-hello", "check-count"), thread
        in_thread = await source.run_page(thread="check-thread")
        assert [r.id for r in in_thread.rows] == ["check-count", "check-hello"], in_thread
        assert await source.thread("no-such-thread") is None
        assert await source.threads_of("check-count") == ["check-thread"]
        assert await source.threads_of("check-fail") == []


def _expect(row: RunRow, **fields: Any) -> None:
    for name, value in fields.items():
        assert getattr(row, name) == value, f"run {row.id}: {name} should be {value!r}, got {getattr(row, name)!r}"
