"""Remembering decisions for the rest of the run, across resumes (and through the codec)."""

from __future__ import annotations

import pytest
from approval_testkit import Calls, build, check_grammar, tool_messages

from agent_kernel import Approve, Deny
from agent_kernel.testing import CodecJournal, text, tool_call
from agent_plugin_approval import Approval, Remember, Remembered, fingerprint
from agent_plugin_approval.policies import exec_policy, pattern, require_approval


async def approve_all(agent, outcome, decide=lambda request: Approve()):
    """Resume until the run is no longer suspended; return the outcome and every request asked."""
    asked = []
    invocations = 1
    while outcome.reason == "suspended":
        asked.extend(outcome.pending)
        outcome = await agent.resume(outcome.run_id, decisions={r.id: decide(r) for r in outcome.pending})
        invocations += 1
    return outcome, asked, invocations


async def test_an_approval_is_remembered_across_the_resume():
    approval = Approval(require_approval("delete"), remember=True)
    agent, _model, calls, recorder = build(
        approval,
        [tool_call("delete", path="a"), tool_call("add", a=1, b=2), tool_call("delete", path="a"), text("ok")],
    )
    outcome = await agent.run("go")
    assert outcome.reason == "suspended"
    done = await agent.resume(outcome.run_id, decisions={outcome.pending[0].id: Approve()})
    assert done.reason == "completed"  # the second identical delete was not asked about
    assert calls.names() == ["delete", "add", "delete"]
    memory = done.state.get(approval.key)
    assert memory.remembered == (Remembered("delete", fingerprint({"path": "a"}), True),)
    check_grammar(recorder, 2)


async def test_remembered_approvals_survive_the_codec_and_a_fresh_agent():
    journal = CodecJournal()
    calls = Calls()
    turns = [tool_call("delete", path="a"), tool_call("delete", path="a"), tool_call("delete", path="b"), text("ok")]
    first, *_ = build(Approval(require_approval("delete"), remember=True), turns, calls=calls, journal=journal)
    outcome = await first.run("go", run_id="remembering")
    second, _, _, recorder = build(
        Approval(require_approval("delete"), remember=True), turns, calls=calls, journal=journal
    )
    resumed = await second.resume("remembering", decisions={outcome.pending[0].id: Approve()})
    assert resumed.reason == "suspended"  # path "b" is new: asked
    assert [dict(r.call.arguments) for r in resumed.pending] == [{"path": "b"}]
    assert calls.log == [("delete", {"path": "a"}), ("delete", {"path": "a"})]
    check_grammar(recorder, 1, continued=True)


async def test_arguments_scope_asks_again_for_other_arguments():
    agent, _model, calls, recorder = build(
        Approval(require_approval("delete"), remember="arguments"),
        [tool_call("delete", path="a"), tool_call("delete", path="b"), tool_call("delete", path="a"), text("ok")],
    )
    _final, asked, invocations = await approve_all(agent, await agent.run("go"))
    assert [r.call.arguments["path"] for r in asked] == ["a", "b"]
    assert calls.names() == ["delete"] * 3
    check_grammar(recorder, invocations)


async def test_tool_scope_remembers_the_tool_with_any_arguments():
    agent, _model, calls, recorder = build(
        Approval(require_approval("delete", "pay"), remember="tool"),
        [tool_call("delete", path="a"), tool_call("delete", path="b"), tool_call("pay", amount=1, to="x"), text("ok")],
    )
    _final, asked, invocations = await approve_all(agent, await agent.run("go"))
    assert [r.tool for r in asked] == ["delete", "pay"]  # another tool is still asked about
    assert calls.names() == ["delete", "delete", "pay"]
    check_grammar(recorder, invocations)


async def test_an_edited_approval_is_remembered_for_the_edited_arguments_only():
    agent, _model, calls, recorder = build(
        Approval(require_approval("delete"), remember="tool"),
        [
            tool_call("delete", path="/"),
            tool_call("delete", path="/tmp/x"),  # what the person allowed: not asked
            tool_call("delete", path="/"),  # what the model wanted: asked again
            text("ok"),
        ],
    )
    outcome = await agent.run("go")
    done = await agent.resume(outcome.run_id, decisions={outcome.pending[0].id: Approve(arguments={"path": "/tmp/x"})})
    assert done.reason == "suspended"
    assert [dict(r.call.arguments) for r in done.pending] == [{"path": "/"}]
    assert calls.log == [("delete", {"path": "/tmp/x"}), ("delete", {"path": "/tmp/x"})]
    check_grammar(recorder, 2)


async def test_denials_can_be_remembered_too():
    approval = Approval(require_approval("delete"), remember=Remember(approved=None, denied="arguments"))
    agent, _model, calls, recorder = build(
        approval,
        [tool_call("delete", path="a"), tool_call("delete", path="a"), tool_call("delete", path="b"), text("ok")],
    )
    outcome = await agent.run("go")
    resumed = await agent.resume(outcome.run_id, decisions={outcome.pending[0].id: Deny("keep a")})
    assert resumed.reason == "suspended"  # the repeat of "a" was denied without asking; "b" is asked
    assert [dict(r.call.arguments) for r in resumed.pending] == [{"path": "b"}]
    assert [m.content for m in tool_messages(resumed)] == ["Denied: keep a", "Denied: keep a"]
    final = await agent.resume(outcome.run_id, decisions={resumed.pending[0].id: Approve()})
    assert final.reason == "completed" and calls.log == [("delete", {"path": "b"})]
    check_grammar(recorder, 3)


async def test_without_remember_every_call_is_asked():
    approval = Approval(require_approval("delete"))
    agent, _model, calls, recorder = build(
        approval, [tool_call("delete", path="a"), tool_call("delete", path="a"), text("ok")]
    )
    final, asked, invocations = await approve_all(agent, await agent.run("go"))
    assert len(asked) == 2 and calls.names() == ["delete", "delete"]
    assert approval.key.name not in final.state.data  # nothing to remember, nothing journaled
    check_grammar(recorder, invocations)


async def test_remembered_approvals_never_override_a_policy_deny():
    from agent_plugin_approval.policies import Rule

    policy = pattern([Rule("delete", "deny", when={"path": "/"}), Rule("delete", "ask")])
    agent, _model, calls, _recorder = build(
        Approval(policy, remember="tool"),
        [tool_call("delete", path="a"), tool_call("delete", path="/"), text("ok")],
    )
    final, asked, _invocations = await approve_all(agent, await agent.run("go"))
    assert len(asked) == 1 and calls.log == [("delete", {"path": "a"})]
    assert tool_messages(final)[1].content.startswith("Denied: ")


def test_a_remembered_denial_wins_over_a_remembered_approval():
    from agent_plugin_approval import ApprovalMemory

    digest = fingerprint({"path": "a"})
    approved, denied = Remembered("delete", None, True), Remembered("delete", digest, False, "no")
    for remembered in ((approved, denied), (denied, approved)):
        memory = ApprovalMemory(remembered=remembered)
        assert memory.recall("delete", digest) == denied
        assert memory.recall("delete", fingerprint({"path": "b"})) == approved
        assert memory.recall("add", digest) is None


def test_remember_values():
    assert Approval(require_approval(), remember=True).remember == Remember("arguments", None)
    assert Approval(require_approval(), remember=False).remember == Remember(None, None)
    assert Approval(require_approval(), remember="tool").remember == Remember("tool", None)
    with pytest.raises(ValueError, match=r"Remember\.denied"):
        Remember(denied="forever")  # type: ignore[arg-type]


def test_fingerprints_ignore_key_order_but_not_values():
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 1.5})
    assert fingerprint({"a": 1}) != fingerprint({"a": "1"})


async def test_on_failure_asks_before_running_a_failed_command_again():
    calls = Calls()
    calls.fail_commands.add("make test")
    approval = Approval(exec_policy({"git status": "allow"}, "on-failure"))
    agent, _model, _, recorder = build(
        approval,
        [
            tool_call("shell", command="make test"),  # runs, fails
            tool_call("shell", command="git status"),
            tool_call("shell", command="make test"),  # the re-run: asked
            tool_call("shell", command="make build"),  # never failed: runs
            text("ok"),
        ],
        calls=calls,
    )
    outcome = await agent.run("go")
    assert outcome.reason == "suspended"
    [request] = outcome.pending
    assert request.call.arguments["command"] == "make test" and "failed earlier" in request.reason
    assert calls.log == [("shell", {"command": "make test"}), ("shell", {"command": "git status"})]
    calls.fail_commands.clear()
    done = await agent.resume(outcome.run_id, decisions={request.id: Approve()})
    assert done.reason == "completed"
    assert [a["command"] for _, a in calls.log] == ["make test", "git status", "make test", "make build"]
    assert done.state.get(approval.key).failed == ("exec:shell:make test",)
    check_grammar(recorder, 2)


async def test_memory_of_asked_calls_is_pruned_to_the_current_step():
    approval = Approval(require_approval("delete"), remember=True)
    agent, _model, _calls, _recorder = build(
        approval, [tool_call("delete", path="a"), tool_call("delete", path="b"), text("ok")]
    )
    final, _asked, _ = await approve_all(agent, await agent.run("go"))
    memory = final.state.get(approval.key)
    assert [(a.step, a.call_id) for a in memory.asked] == [(2, "call_2_1")]
    assert len(memory.remembered) == 2
