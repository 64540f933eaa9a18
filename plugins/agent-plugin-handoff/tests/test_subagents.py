"""Sub-agents as tools: child runs, their links, outcomes, depth, parallel siblings."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from handoff_testkit import RunsRecorder, add, scripted, tool_messages

from agent_kernel import Agent, Approve, Context, Deny, hookimpl, patches
from agent_kernel.errors import ConfigurationError
from agent_kernel.journal import Committed, Inferred, Started
from agent_kernel.testing import text, tool_call
from agent_plugin_approval import Approval
from agent_plugin_approval.policies import require_approval
from agent_plugin_handoff import DEPTH, MAX_DEPTH, PARENT, Handoff, Peer, SubAgent, child_run_id
from agent_plugin_tools import Toolbox


def researcher(*turns: Any, recorder: RunsRecorder | None = None, **kwargs: Any) -> SubAgent:
    plugins = [scripted(list(turns)), Toolbox([add]), *([recorder] if recorder else []), *kwargs.pop("plugins", [])]
    return SubAgent(
        "researcher",
        "Looks things up.",
        model="scripted",
        instructions="You research.",
        plugins=plugins,
        autoload=False,
        **kwargs,
    )


def parent(turns: list[Any], handoff: Handoff, *more: object, parallel: bool = False) -> Agent:
    return Agent(
        "scripted",
        [scripted(turns), Toolbox([add], parallel=parallel), handoff, *more],
        autoload=False,
        instructions="You lead.",
    )


def test_a_sub_agent_call_runs_a_linked_child_run_and_returns_its_answer(run: Any) -> None:
    rec = RunsRecorder()
    child_model = scripted([tool_call("add", a=2, b=3), text("It is 5.")])
    sub = SubAgent(
        "researcher",
        "Looks things up.",
        model="scripted",
        instructions="You research.",
        plugins=[child_model, Toolbox([add]), rec],
        autoload=False,
    )
    handoff = Handoff([sub])
    agent = parent([tool_call("researcher", input="What is 2+3?"), text("The researcher says 5.")], handoff, rec)

    async def main() -> None:
        outcome = await agent.run("Ask the researcher.", run_id="root")
        assert outcome.reason == "completed" and outcome.output == "The researcher says 5."
        [result] = tool_messages(outcome)
        assert result.content == "It is 5." and not result.is_error
        child_id = child_run_id("root", 1, "call_1_1")
        assert child_id == "root/1/call_1_1"
        assert await agent.journal.runs() == ["root", child_id]
        assert await handoff.child_runs("root") == [child_id]
        assert await handoff.child_runs(child_id) == []
        # the child got its own instructions and the task as its input
        first = child_model.requests[0].messages
        assert [(m.role, m.content) for m in first] == [("system", "You research."), ("user", "What is 2+3?")]
        # the child's state links it to its parent; the root has no parent
        child = await handoff.children["researcher"].resume(child_id)
        assert child.reason == "completed" and child.output == "It is 5." and child.stats.llm_calls == 2
        assert (child.state.get(PARENT), child.state.get(DEPTH), child.state.get(MAX_DEPTH)) == ("root", 1, 3)
        assert (outcome.state.get(PARENT), outcome.state.get(DEPTH)) == ("", 0)
        assert len(child_model.requests) == 2  # the finished child resumed without any request

    run(main)
    rec.check()
    assert set(rec.calls) == {"root", "root/1/call_1_1"}
    assert rec.phases("root/1/call_1_1")[:2] == ["run_start", "step_start"]


def test_the_tool_is_described_and_declared_idempotent() -> None:
    handoff = Handoff([researcher(text("x"))])
    agent = parent([text("x")], handoff)
    spec = {s.name: s for s in agent.tools}["researcher"]
    assert spec.description == "Looks things up." and spec.idempotent and spec.plugin == "handoff"
    assert spec.parameters["required"] == ["input"]
    assert spec.parameters["properties"]["input"]["type"] == "string"


def test_invalid_arguments_are_error_results_the_model_sees(run: Any) -> None:
    handoff = Handoff([researcher(text("never"))])
    agent = parent(
        [[tool_call("researcher", task="x"), tool_call("researcher", input="  ")], text("ok")],
        handoff,
    )

    async def main() -> None:
        outcome = await agent.run("go", run_id="r")
        assert outcome.reason == "completed"
        extra, blank = tool_messages(outcome)
        assert extra.is_error and "task: unknown argument" in extra.content
        assert blank.is_error and "input: expected a non-empty string" in blank.content
        assert await agent.journal.runs() == ["r"]  # no child run was started

    run(main)


class StopAtOnce:
    name = "stop-at-once"

    @hookimpl
    def agent_step_start(self, ctx: Context) -> list[Any]:
        return [patches.Stop("child.budget", "no budget left")]


def test_child_outcomes_other_than_completed_become_error_results(run: Any) -> None:
    stopping = SubAgent(
        "stopper", "Stops.", model="scripted", plugins=[scripted([text("x")]), StopAtOnce()], autoload=False
    )
    failing = SubAgent("failer", "Fails.", model="scripted", plugins=[scripted([])], autoload=False)
    handoff = Handoff([stopping, failing])
    agent = parent([[tool_call("stopper", input="a"), tool_call("failer", input="b")], text("k")], handoff)

    async def main() -> None:
        outcome = await agent.run("go", run_id="r")
        assert outcome.reason == "completed"
        stopped, failed = tool_messages(outcome)
        assert stopped.is_error and stopped.content == "Sub-agent 'stopper' stopped (child.budget: no budget left)."
        assert failed.is_error and failed.content.startswith("Sub-agent 'failer' failed: inference failed")

    run(main)


def waiter(script: list[Any]) -> SubAgent:
    """A sub-agent whose `add` calls need approval."""
    plugins = [scripted(script), Toolbox([add]), Approval(require_approval("add"))]
    return SubAgent("waiter", "Needs approval.", model="scripted", plugins=plugins, autoload=False)


@pytest.mark.parametrize("parallel", [False, True])
def test_a_child_waiting_for_approval_suspends_the_parent_until_it_is_decided(run: Any, parallel: bool) -> None:
    handoff = Handoff([waiter([tool_call("add", a=1, b=1), text("It is 2.")])])
    turns = [[tool_call("waiter", input="c"), tool_call("add", a=2, b=2)], text("k")]
    agent = parent(turns, handoff, parallel=parallel)
    child = "r/1/call_1_1"

    async def main() -> None:
        outcome = await agent.run("go", run_id="r")
        assert outcome.reason == "suspended"
        (request,) = outcome.pending
        assert (request.id, request.tool, dict(request.call.arguments)) == (
            f"{child}/1/call_1_1",
            "add",
            {"a": 1, "b": 1},
        )
        assert [m.content for m in tool_messages(outcome)] == ["4"], "the parent's other call was not held back"
        waiting = await handoff.children["waiter"].resume(child)  # the child waits, in the same journal
        assert [r.id for r in waiting.pending] == [request.id]

        done = await agent.resume("r", decisions={request.id: Approve(arguments={"a": 1, "b": 41})})
        assert (done.reason, done.output) == ("completed", "k")
        assert {m.tool_call_id: m.content for m in tool_messages(done)} == {"call_1_1": "It is 2.", "call_1_2": "4"}
        finished = await handoff.children["waiter"].resume(child)
        assert finished.reason == "completed"
        assert [m.content for m in tool_messages(finished)] == ["42"], "the decision (with its edit) reached the child"

    run(main)


def test_a_denied_child_request_goes_to_the_child_and_a_second_one_suspends_the_parent_again(run: Any) -> None:
    script = [tool_call("add", a=1, b=1), tool_call("add", a=5, b=5), text("gave up")]
    agent = parent([tool_call("waiter", input="c"), text("k")], Handoff([waiter(script)]))

    async def main() -> None:
        first = await agent.run("go", run_id="r")
        second = await agent.resume("r", decisions={first.pending[0].id: Deny("no adding")})
        assert second.reason == "suspended"
        assert [r.id for r in second.pending] == ["r/1/call_1_1/2/call_2_1"], "the child's next request"
        done = await agent.resume("r", decisions={second.pending[0].id: Deny("still no")})
        assert done.reason == "completed"
        child = await agent.journal.load("r/1/call_1_1")
        assert done.stats.tool_calls == 1 and len(child) > 0
        (result,) = tool_messages(done)
        assert result.content == "gave up"

    run(main)


def chain(levels: int, *, max_depth: int, rec: RunsRecorder) -> tuple[Handoff, list[Any]]:
    """Agents L1..L`levels`: each calls the next once, then answers; the root calls L1."""
    inner: Handoff | None = None
    sub: SubAgent | None = None
    for level in range(levels, 0, -1):
        turns: list[Any] = [text(f"L{level} done")]
        if level < levels:
            turns.insert(0, tool_call(f"L{level + 1}", input=f"go deeper from {level}"))
        plugins: list[object] = [scripted(turns), Toolbox([add]), rec, *([inner] if inner else [])]
        sub = SubAgent(f"L{level}", f"level {level}", model="scripted", plugins=plugins, autoload=False)
        inner = Handoff([sub], max_depth=10)  # a nested Handoff's own cap never applies
    assert sub is not None
    root = Handoff([sub], max_depth=max_depth)
    return root, [tool_call("L1", input="start"), text("root done")]


def test_the_depth_cap_of_the_root_holds_for_every_descendant(run: Any) -> None:
    rec = RunsRecorder()
    root, turns = chain(4, max_depth=2, rec=rec)
    agent = parent(turns, root, rec)

    async def main() -> None:
        outcome = await agent.run("go", run_id="r")
        assert outcome.reason == "completed" and outcome.output == "root done"
        runs = await agent.journal.runs()
        assert runs == ["r", "r/1/call_1_1", "r/1/call_1_1/1/call_1_1"]
        nested = root.children["L1"].plugin_manager.get_plugin("handoff")
        assert isinstance(nested, Handoff)
        deepest = await nested.children["L2"].resume(runs[-1])
        [refused] = tool_messages(deepest)
        assert refused.is_error
        assert refused.content == "Sub-agent 'L3' was not started: depth limit 2 reached (this agent runs at depth 2)."
        assert (deepest.state.get(DEPTH), deepest.state.get(MAX_DEPTH)) == (2, 2)

    run(main)
    rec.check()


def test_sibling_sub_agents_run_concurrently_under_a_parallel_strategy(run: Any) -> None:
    """Each child's tool waits for the other child's: this finishes only if they overlap."""
    arrived: dict[str, anyio.Event] = {}

    async def meet(me: str) -> str:
        """Wait until the other sibling is here too.

        Args:
            me: who is waiting.
        """
        other = "b" if me == "a" else "a"
        arrived[me].set()
        with anyio.fail_after(5):
            await arrived[other].wait()
        return f"{me} met {other}"

    def sibling(name: str) -> SubAgent:
        turns = [tool_call("meet", me=name), text(f"{name} ok")]
        return SubAgent(name, name, model="scripted", plugins=[scripted(turns), Toolbox([meet])], autoload=False)

    handoff = Handoff([sibling("a"), sibling("b")])
    agent = parent([[tool_call("a", input="x"), tool_call("b", input="y")], text("both")], handoff, parallel=True)

    async def main() -> None:
        arrived.update(a=anyio.Event(), b=anyio.Event())  # events belong to the running loop
        outcome = await agent.run("go", run_id="r")
        assert outcome.reason == "completed"
        assert [(m.tool_call_id, m.content) for m in tool_messages(outcome)] == [
            ("call_1_1", "a ok"),
            ("call_1_2", "b ok"),
        ]
        for child_id, name in (("r/1/call_1_1", "a"), ("r/1/call_1_2", "b")):
            child = await handoff.children[name].resume(child_id)
            assert [m.content for m in tool_messages(child)] == [f"{name} met {'b' if name == 'a' else 'a'}"]

    run(main)


def test_a_sequential_strategy_runs_siblings_one_after_another(run: Any) -> None:
    order: list[str] = []

    def sibling(name: str) -> SubAgent:
        def turn(request: Any) -> Any:
            order.append(name)
            return text(f"{name} ok")

        return SubAgent(name, name, model="scripted", plugins=[scripted([turn])], autoload=False)

    agent = parent(
        [[tool_call("a", input="x"), tool_call("b", input="y")], text("both")], Handoff([sibling("a"), sibling("b")])
    )

    async def main() -> None:
        outcome = await agent.run("go")
        assert outcome.reason == "completed" and order == ["a", "b"]

    run(main)


def test_child_runs_share_a_persistent_journal(tmp_path: Any, run: Any) -> None:
    from agent_plugin_sqlite import SqliteJournal

    db = tmp_path / "runs.db"

    def build() -> tuple[Agent, Handoff]:
        handoff = Handoff([researcher(tool_call("add", a=1, b=1), text("two"))])
        return parent([tool_call("researcher", input="1+1?"), text("2")], handoff, SqliteJournal(db)), handoff

    async def main() -> None:
        agent, _ = build()
        outcome = await agent.run("go", run_id="p")
        assert outcome.reason == "completed"
        fresh, _ = build()  # a new agent on the same file reads both runs back
        entries = await fresh.journal.load("p/1/call_1_1")
        assert isinstance(entries[0], Started) and entries[0].input == "1+1?"
        assert sum(isinstance(e, Inferred) for e in entries) == 2
        links = [p for e in entries if isinstance(e, Committed) for p in e.patches if isinstance(p, patches.SetData)]
        assert {(p.key.name, p.value) for p in links} >= {("handoff.parent", "p"), ("handoff.depth", 1)}
        again = await fresh.resume("p")
        assert again.reason == "completed" and again.output == "2"

    run(main)


def test_child_plugin_state_round_trips_through_the_parents_codec(tmp_path: Any, run: Any) -> None:
    """A key only the sub-agent's plugins declare is read back through the parent's journal codec."""
    from agent_plugin_limits import Limits
    from agent_plugin_sqlite import SqliteJournal

    db = tmp_path / "runs.db"

    def build() -> Agent:
        sub = researcher(
            tool_call("add", a=1, b=1), text("two"), plugins=[Limits(max_tool_calls=5, name="child-limits")]
        )
        return parent([tool_call("researcher", input="1+1?"), text("2")], Handoff([sub]), SqliteJournal(db))

    async def main() -> None:
        assert (await build().run("go", run_id="p")).reason == "completed"
        entries = await build().journal.load("p/1/call_1_1")
        keys = {p.key.name for e in entries if isinstance(e, Committed) for p in e.patches if hasattr(p, "key")}
        assert any(k.startswith("child-limits.") for k in keys), keys

    run(main)


def test_bad_configuration_fails_with_a_clear_error() -> None:
    sub = researcher(text("x"))
    with pytest.raises(TypeError, match=r"Handoff agents\[0\] must be a SubAgent"):
        Handoff(["researcher"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match=r"Handoff transfers\[0\] must be a Peer"):
        Handoff(transfers=[sub])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="max_depth must be an int >= 1, got 0"):
        Handoff([sub], max_depth=0)
    with pytest.raises(ValueError, match="needs at least one SubAgent"):
        Handoff()
    with pytest.raises(ValueError, match="'researcher' is used twice"):
        Handoff([sub, sub])
    with pytest.raises(ValueError, match="'transfer_to_agent' is used twice"):
        Handoff(transfers=[Peer("transfer_to_agent", "x", model="m")])
    with pytest.raises(ValueError, match="'name' must match regex"):
        SubAgent("has space", "x", model="m")
    with pytest.raises(TypeError, match="'model' must be <class 'str'>"):
        Peer("p", "x", model=None)  # type: ignore[arg-type]
    handoff = Handoff([sub])
    parent([text("x")], handoff)
    with pytest.raises(ConfigurationError, match="already part of another Agent"):
        parent([text("x")], handoff)


def test_the_entry_point_is_installed_and_inert() -> None:
    agent = Agent("scripted", [scripted([text("hi")])])
    info = agent.plugins["handoff"]
    assert info.distribution == "agent-plugin-handoff" and info.hooks == ()
    # a Handoff given in code takes the entry point's place
    agent = Agent("scripted", [scripted([text("hi")]), Handoff([researcher(text("x"))])])
    assert agent.plugins["handoff"].distribution is None and "agent_register_tools" in agent.plugins["handoff"].hooks
    assert "researcher" in {spec.name for spec in agent.tools}
