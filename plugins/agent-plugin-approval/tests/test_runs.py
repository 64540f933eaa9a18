"""Approval in real runs: durable suspend and resume, edits, denials, exactly-once decisions."""

from __future__ import annotations

from functools import partial

import pytest
from approval_testkit import PROPERTY, Calls, build, check_grammar, tool_messages
from hypothesis import strategies as st

from agent_kernel import Agent, Approve, Deny, events, hookimpl, patches
from agent_kernel.errors import UnknownRequest
from agent_kernel.hookspecs import PHASES
from agent_kernel.testing import CodecJournal, strategies, text, tool_call
from agent_kernel.testing.grammar import check_plugin_phase_grammar, check_transcript, exercise, run_sync
from agent_plugin_approval import Approval
from agent_plugin_approval.policies import always_approve, exec_policy, pattern, require_approval


async def test_allowed_calls_run_without_suspending():
    agent, _model, calls, recorder = build(
        Approval(require_approval("delete")), [tool_call("add", a=2, b=3), text("5")]
    )
    outcome = await agent.run("2+3?")
    assert outcome.reason == "completed" and outcome.output == "5"
    assert calls.log == [("add", {"a": 2, "b": 3})]
    check_grammar(recorder, 1)


async def test_suspend_then_approve_runs_the_tool_exactly_once():
    agent, model, calls, recorder = build(
        Approval(require_approval("delete")), [tool_call("delete", path="/tmp/x"), text("gone")]
    )
    outcome = await agent.run("clean up")
    assert outcome.reason == "suspended"
    assert calls.log == []  # nothing ran before the decision
    [request] = outcome.pending
    assert request.tool == "delete" and dict(request.call.arguments) == {"path": "/tmp/x"}
    assert "delete requires approval" in request.reason
    assert len(model.requests) == 1

    resumed = await agent.resume(outcome.run_id, decisions={request.id: Approve()})
    assert resumed.reason == "completed" and resumed.output == "gone"
    assert calls.log == [("delete", {"path": "/tmp/x"})]
    assert [m.content for m in tool_messages(resumed)] == ["deleted /tmp/x"]
    assert len(model.requests) == 2  # the first answer was not requested again

    again = await agent.resume(outcome.run_id)
    assert again.reason == "completed" and again.output == "gone"
    assert len(calls.log) == 1 and len(model.requests) == 2
    check_grammar(recorder, 2)  # a finished run is not run again: no third RunStart
    assert [c[3] for c in recorder.calls if c[0] == "run_start"] == [False, True]


async def test_the_suspension_is_durable_a_fresh_agent_resumes_it():
    """Nothing waits in memory: another Agent (another Approval) on the same journal approves."""
    journal = CodecJournal()
    calls = Calls()
    first, *_ = build(
        Approval(require_approval("delete")), [tool_call("delete", path="a"), text("ok")], calls=calls, journal=journal
    )
    outcome = await first.run("go", run_id="durable")
    assert outcome.reason == "suspended"
    del first

    second, model, _, recorder = build(
        Approval(require_approval("delete")), [tool_call("delete", path="a"), text("ok")], calls=calls, journal=journal
    )
    resumed = await second.resume("durable", decisions={outcome.pending[0].id: Approve()})
    assert resumed.reason == "completed" and calls.names() == ["delete"]
    assert len(model.requests) == 1  # only the turn after the tool result
    check_grammar(recorder, 1, continued=True)


async def test_approve_with_edited_arguments():
    seen = []

    class After:
        name = "after"

        @hookimpl
        def agent_after_tool_execute(self, call):
            seen.append(dict(call.arguments))

    agent, _model, calls, recorder = build(
        Approval(require_approval("pay")), [tool_call("pay", amount=1000, to="mallory"), text("paid")], extra=[After()]
    )
    outcome = await agent.run("pay")
    resumed = await agent.resume(
        outcome.run_id, decisions={outcome.pending[0].id: Approve(arguments={"amount": 10, "to": "alice"})}
    )
    assert resumed.reason == "completed"
    assert calls.log == [("pay", {"amount": 10, "to": "alice"})]
    assert seen == [{"amount": 10, "to": "alice"}]
    assert (
        tool_messages(resumed)[0].content == "paid 10.0 to alice"
    )  # the Toolbox converts to the float the signature asks for
    check_grammar(recorder, 2)


async def test_deny_reaches_the_model_as_an_error_result():
    agent, model, calls, recorder = build(
        Approval(require_approval("delete")), [tool_call("delete", path="/"), text("understood")]
    )
    outcome = await agent.run("wipe")
    resumed = await agent.resume(outcome.run_id, decisions={outcome.pending[0].id: Deny("not the root directory")})
    assert resumed.reason == "completed"
    assert calls.log == []
    [result] = [m for m in model.requests[-1].messages if m.role == "tool"]
    assert result.is_error and result.content == "Denied: not the root directory"
    check_grammar(recorder, 2)


async def test_a_decision_delivered_twice_is_applied_once():
    agent, _model, calls, recorder = build(
        Approval(require_approval("delete")),
        [tool_call("delete", path="a"), tool_call("delete", path="b"), text("done")],
    )
    outcome = await agent.run("go")
    first = outcome.pending[0].id
    second_outcome = await agent.resume(outcome.run_id, decisions={first: Approve()})
    assert second_outcome.reason == "suspended"  # the second delete asks again
    assert calls.log == [("delete", {"path": "a"})]
    # The first decision arrives again (a retried webhook, a double click): ignored.
    again = await agent.resume(outcome.run_id, decisions={first: Approve()})
    assert again.reason == "suspended" and again.pending == second_outcome.pending
    assert calls.log == [("delete", {"path": "a"})]
    # A Deny for the already approved request does not undo anything either.
    final = await agent.resume(
        outcome.run_id, decisions={first: Deny("too late"), second_outcome.pending[0].id: Approve()}
    )
    assert final.reason == "completed"
    assert calls.log == [("delete", {"path": "a"}), ("delete", {"path": "b"})]
    assert not any(m.is_error for m in tool_messages(final))
    # And once more after completion: no call at all.
    after = await agent.resume(outcome.run_id, decisions={first: Approve(), second_outcome.pending[0].id: Approve()})
    assert after.reason == "completed" and len(calls.log) == 2
    check_grammar(recorder, 4)  # the resume after completion runs nothing


async def test_same_decision_twice_in_a_row_runs_the_tool_once():
    agent, _model, calls, recorder = build(
        Approval(require_approval("delete")), [tool_call("delete", path="a"), text("ok")]
    )
    outcome = await agent.run("go")
    decisions = {outcome.pending[0].id: Approve()}
    one = await agent.resume(outcome.run_id, decisions=decisions)
    two = await agent.resume(outcome.run_id, decisions=decisions)
    assert one.reason == two.reason == "completed"
    assert calls.log == [("delete", {"path": "a"})]
    check_grammar(recorder, 2)  # the second resume finds the run finished


async def test_several_pending_calls_of_one_step_resolve_together():
    agent, _model, calls, recorder = build(
        Approval(require_approval("delete", "pay")),
        [
            [
                tool_call("delete", path="a"),
                tool_call("add", a=1, b=1),
                tool_call("pay", amount=5, to="bob"),
                tool_call("delete", path="b"),
            ],
            text("done"),
        ],
    )
    outcome = await agent.run("go")
    assert outcome.reason == "suspended"
    assert [r.tool for r in outcome.pending] == ["delete", "pay", "delete"]
    assert calls.log == []  # every before-hook runs before any call: not even add ran
    decisions = {
        outcome.pending[0].id: Approve(),
        outcome.pending[1].id: Deny("no money today"),
        outcome.pending[2].id: Approve(arguments={"path": "c"}),
    }
    resumed = await agent.resume(outcome.run_id, decisions=decisions)
    assert resumed.reason == "completed"
    assert calls.log == [("delete", {"path": "a"}), ("add", {"a": 1, "b": 1}), ("delete", {"path": "c"})]
    contents = [(m.tool_call_id, m.content, m.is_error) for m in tool_messages(resumed)]
    assert contents == [
        ("call_1_1", "deleted a", False),
        ("call_1_2", "2", False),
        ("call_1_3", "Denied: no money today", True),
        ("call_1_4", "deleted c", False),
    ]
    check_grammar(recorder, 2)


async def test_a_partial_decision_keeps_the_rest_pending():
    agent, _model, calls, recorder = build(
        Approval(require_approval("delete")),
        [[tool_call("delete", path="a"), tool_call("delete", path="b")], text("ok")],
    )
    outcome = await agent.run("go")
    a, b = outcome.pending
    partial = await agent.resume(outcome.run_id, decisions={a.id: Approve()})
    assert partial.reason == "suspended" and partial.pending == (b,)
    assert calls.log == []  # calls of one step run together, once every one is decided
    done = await agent.resume(outcome.run_id, decisions={b.id: Approve()})
    assert done.reason == "completed"
    assert calls.names() == ["delete", "delete"]
    check_grammar(recorder, 3)


async def test_unknown_request_ids_are_refused():
    agent, *_ = build(Approval(require_approval("delete")), [tool_call("delete", path="a"), text("ok")])
    outcome = await agent.run("go")
    with pytest.raises(UnknownRequest):
        await agent.resume(outcome.run_id, decisions={"nope": Approve()})


async def test_policy_deny_blocks_the_call_and_the_run_goes_on():
    policy = exec_policy({"rm": "deny", "ls": "allow"}, "unless-trusted")
    agent, _model, calls, recorder = build(
        Approval(policy), [tool_call("shell", command="rm -rf /"), tool_call("shell", command="ls"), text("ok")]
    )
    outcome = await agent.run("go")
    assert outcome.reason == "completed"
    assert calls.log == [("shell", {"command": "ls"})]
    denied, ran = tool_messages(outcome)
    assert denied.is_error and denied.content.startswith("Denied: shell: 'rm -rf /' is forbidden")
    assert ran.content == "ran ls" and not ran.is_error
    check_grammar(recorder, 1)


async def test_approval_requests_are_streamed_as_events():
    agent, *_ = build(Approval(require_approval("delete")), [tool_call("delete", path="a"), text("ok")])
    async with agent.stream("go") as stream:
        seen = [event async for event in stream]
    requested = [e for e in seen if isinstance(e, events.ApprovalRequested)]
    assert [e.request for e in requested] == list(stream.outcome.pending)


async def test_several_asks_in_a_parallel_step_merge_their_state():
    """Concurrent calls write the plugin's state from one snapshot; its merge rule unites them."""
    approval = Approval(require_approval("delete", "pay"), remember=True)
    agent, _model, calls, recorder = build(
        approval,
        [
            [tool_call("delete", path="a"), tool_call("pay", amount=1, to="b")],
            [tool_call("delete", path="a"), tool_call("pay", amount=1, to="b")],
            text("ok"),
        ],
        parallel=True,
    )
    outcome = await agent.run("go")
    assert outcome.reason == "suspended", outcome.error
    assert len(outcome.state.get(approval.key).asked) == 2
    resumed = await agent.resume(outcome.run_id, decisions={r.id: Approve() for r in outcome.pending})
    assert resumed.reason == "completed", resumed.error
    assert sorted(calls.names()) == ["delete", "delete", "pay", "pay"]  # the repeat was remembered, not asked
    assert len(resumed.state.get(approval.key).remembered) == 2
    check_grammar(recorder, 2)


def test_a_suspended_call_that_never_started_is_not_learned_as_approved():
    """Only a call whose tool really started counts as approved (a Block or ProvideResult of
    another plugin, or a start this process did not see, teaches nothing: fail closed)."""
    from types import MappingProxyType

    from agent_kernel import Context, Log, RunState, ToolCall, ToolResult
    from agent_plugin_approval import ApprovalMemory, fingerprint
    from agent_plugin_approval._approval import Asked

    approval = Approval(require_approval("delete"), remember="tool")
    call = ToolCall("c1", "delete", {"path": "a"})
    memory = ApprovalMemory(asked=(Asked(1, "c1", fingerprint(call.arguments)),))
    state = RunState("r", "scripted", Log(), step=1, data=MappingProxyType({approval.key.name: memory}))
    ctx = Context("r", state, 1, False, 1, "after_tool_execute", MappingProxyType({}))
    assert approval.agent_after_tool_execute(ctx, call, ToolResult("blocked elsewhere", True)) is None
    assert approval.agent_after_tool_execute(ctx, call, ToolResult("provided", False)) is None


async def test_a_call_blocked_by_another_plugin_is_not_suspended():
    class Blocker:
        name = "blocker"

        @hookimpl
        def agent_before_tool_execute(self, call):
            return [patches.Block("blocked elsewhere")] if call.name == "delete" else None

    approval = Approval(require_approval("delete"), remember=True)
    agent, _model, calls, recorder = build(
        approval, [tool_call("delete", path="a"), tool_call("delete", path="a"), text("ok")], extra=[Blocker()]
    )
    outcome = await agent.run("go")
    assert outcome.reason == "completed" and calls.log == []
    assert [m.content for m in tool_messages(outcome)] == ["blocked elsewhere"] * 2
    assert outcome.state.get(approval.key).remembered == ()  # a block is not an approval
    check_grammar(recorder, 1)


# The kit's phase-grammar property, with random scripts, faults (inference errors, tool
# exceptions, timeouts, outside cancellation) and random other plugins, resumed to the end.
# The other plugins get no before_tool_execute hook: agent-kernel 0.1 leaves a run stuck when
# another plugin Blocks a call this plugin Suspends (see the xfail above), and that is the
# kernel's bug to fix, not something this property should keep rediscovering.
OTHER_PHASES = tuple(p for p in PHASES if p != "before_tool_execute")


def _grammar_property(factory, max_examples):
    from hypothesis import HealthCheck, given, settings

    @settings(PROPERTY, max_examples=max_examples, suppress_health_check=list(HealthCheck))
    @given(
        script=strategies.scripts(),
        behaviours=strategies.plugin_behaviours(phases=OTHER_PHASES, max_plugins=2),
        faults=strategies.faults(),
        concurrent=st.booleans(),
    )
    def check(script, behaviours, faults, concurrent):
        run = partial(exercise, script, [factory(), *behaviours], faults, concurrent=concurrent)
        check_transcript(run_sync(run))

    check()


def test_approval_keeps_the_phase_grammar_under_random_faults_and_plugins():
    _grammar_property(lambda: Approval(require_approval("add"), remember=True), 60)


def test_approval_with_denials_and_tool_memory_keeps_the_phase_grammar():
    _grammar_property(lambda: Approval(pattern({"echo": "ask", "add": "deny"}), remember="tool"), 40)


def test_approval_without_other_plugins_keeps_the_phase_grammar():
    check_plugin_phase_grammar(lambda: Approval(require_approval("add", "echo")), max_examples=30, random_plugins=False)


def test_approval_constructor_validation():
    with pytest.raises(TypeError, match="decide"):
        Approval("require_approval")
    with pytest.raises(TypeError, match="approver"):
        Approval(always_approve(), approver="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="on_timeout"):
        Approval(always_approve(), on_timeout="allow")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="approver_timeout"):
        Approval(always_approve(), approver_timeout=-1)
    with pytest.raises(ValueError, match="remember"):
        Approval(always_approve(), remember="forever")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="name"):
        Approval(always_approve(), name="")


def test_two_approvals_need_their_own_names():
    from agent_kernel.errors import PluginLoadError

    with pytest.raises(PluginLoadError, match="approval"):
        Agent(model="scripted", plugins=[Approval(always_approve()), Approval(always_approve())], autoload=False)
    agent = Agent(
        model="scripted",
        plugins=[Approval(always_approve(), name="a"), Approval(always_approve(), name="b")],
        autoload=False,
    )
    assert {"a", "b"} <= set(agent.plugins)
