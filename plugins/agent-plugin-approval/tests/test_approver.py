"""The inline approver: approve, deny, edit, no decision, timeouts (on trio's MockClock)."""

from __future__ import annotations

import trio
from approval_testkit import build, check_grammar, tool_messages

from agent_kernel import Approve, Deny
from agent_kernel.testing import text, tool_call
from agent_plugin_approval import Approval
from agent_plugin_approval.policies import require_approval

TURNS = [tool_call("delete", path="a"), text("done")]


class Approver:
    """An inline approver answering from a list (None: no decision) and recording its requests."""

    def __init__(self, *answers, delay: float = 0.0):
        self.answers = list(answers)
        self.requests = []
        self.delay = delay

    async def __call__(self, request):
        self.requests.append(request)
        if self.delay:
            await trio.sleep(self.delay)
        return self.answers.pop(0) if self.answers else None


async def test_inline_approve_runs_the_call_without_suspending():
    approver = Approver(Approve())
    agent, _model, calls, recorder = build(Approval(require_approval("delete"), approver=approver), TURNS)
    outcome = await agent.run("go")
    assert outcome.reason == "completed" and outcome.output == "done"
    assert calls.log == [("delete", {"path": "a"})]
    [request] = approver.requests
    assert request.tool == "delete" and "requires approval" in request.reason
    check_grammar(recorder, 1)


async def test_inline_deny_reaches_the_model():
    approver = Approver(Deny("not today"))
    agent, _model, calls, recorder = build(Approval(require_approval("delete"), approver=approver), TURNS)
    outcome = await agent.run("go")
    assert outcome.reason == "completed" and calls.log == []
    [result] = tool_messages(outcome)
    assert result.is_error and result.content == "Denied: not today"
    check_grammar(recorder, 1)


async def test_inline_edit():
    approver = Approver(Approve(arguments={"path": "b"}))
    agent, _model, calls, _recorder = build(Approval(require_approval("delete"), approver=approver), TURNS)
    outcome = await agent.run("go")
    assert outcome.reason == "completed" and calls.log == [("delete", {"path": "b"})]


async def test_no_decision_suspends_and_the_approver_is_asked_again_on_resume():
    approver = Approver(None, None)
    agent, _model, calls, recorder = build(Approval(require_approval("delete"), approver=approver), TURNS)
    outcome = await agent.run("go")
    assert outcome.reason == "suspended" and len(approver.requests) == 1
    still = await agent.resume(outcome.run_id)  # no decision from the caller: the approver gets another chance
    assert still.reason == "suspended" and len(approver.requests) == 2
    done = await agent.resume(outcome.run_id, decisions={outcome.pending[0].id: Approve()})
    assert done.reason == "completed" and calls.names() == ["delete"]
    assert len(approver.requests) == 2  # a caller's decision is applied first: nobody asks
    check_grammar(recorder, 3)


async def test_timeout_then_suspend(autojump_clock):
    approver = Approver(Approve(), delay=3600)  # a person who never answers in time
    approval = Approval(require_approval("delete"), approver=approver, approver_timeout=30, on_timeout="suspend")
    agent, _model, calls, recorder = build(approval, TURNS)
    start = trio.current_time()
    outcome = await agent.run("go")
    assert outcome.reason == "suspended"
    assert trio.current_time() - start == 30  # virtual time: the test did not wait
    assert calls.log == []
    done = await agent.resume(outcome.run_id, decisions={outcome.pending[0].id: Approve()})
    assert done.reason == "completed" and calls.names() == ["delete"]
    check_grammar(recorder, 2)


async def test_timeout_then_deny(autojump_clock):
    approver = Approver(Approve(), delay=3600)
    approval = Approval(require_approval("delete"), approver=approver, approver_timeout=5, on_timeout="deny")
    agent, _model, calls, recorder = build(approval, TURNS)
    start = trio.current_time()
    outcome = await agent.run("go")
    assert outcome.reason == "completed" and calls.log == []
    assert trio.current_time() - start == 5
    [result] = tool_messages(outcome)
    assert result.is_error and result.content == "Denied: no approval decision within 5 s"
    check_grammar(recorder, 1)


async def test_an_answer_within_the_timeout_counts(autojump_clock):
    approver = Approver(Approve(), delay=4)
    approval = Approval(require_approval("delete"), approver=approver, approver_timeout=5, on_timeout="deny")
    agent, _model, calls, _recorder = build(approval, TURNS)
    outcome = await agent.run("go")
    assert outcome.reason == "completed" and calls.names() == ["delete"]


async def test_the_approver_answers_only_for_its_own_plugin():
    approver = Approver(Approve(), Approve())
    mine = Approval(require_approval("delete"), approver=approver, name="mine")
    theirs = Approval(require_approval("pay"), name="theirs")
    agent, _model, calls, _recorder = build(
        mine, [[tool_call("delete", path="a"), tool_call("pay", amount=1, to="b")], text("ok")], extra=[theirs]
    )
    outcome = await agent.run("go")
    assert outcome.reason == "suspended"
    assert [r.tool for r in approver.requests] == ["delete"]
    assert [r.tool for r in outcome.pending] == ["pay"]
    done = await agent.resume(outcome.run_id, decisions={outcome.pending[0].id: Approve()})
    assert done.reason == "completed" and calls.names() == ["delete", "pay"]


async def test_an_approver_that_raises_ends_the_run_with_an_error_naming_the_plugin():
    async def broken(request):
        raise RuntimeError("approval service down")

    agent, _model, calls, recorder = build(Approval(require_approval("delete"), approver=broken, name="gate"), TURNS)
    outcome = await agent.run("go")
    assert outcome.reason == "error" and calls.log == []
    assert outcome.error.plugin == "gate" and outcome.error.hook == "approver"
    assert "approval service down" in outcome.error.message
    check_grammar(recorder, 1)


async def test_a_sync_approver_or_a_wrong_answer_is_an_error():
    def sync(request):
        return Approve()

    agent, *_ = build(Approval(require_approval("delete"), approver=sync), TURNS)
    outcome = await agent.run("go")
    assert outcome.reason == "error" and "must be async" in outcome.error.message

    async def wrong(request):
        return True

    agent, *_ = build(Approval(require_approval("delete"), approver=wrong), TURNS)
    outcome = await agent.run("go")
    assert outcome.reason == "error" and "expected Approve" in outcome.error.message


async def test_several_requests_are_each_asked(autojump_clock):
    approver = Approver(Approve(), Deny("second is no"), delay=1)
    agent, _model, calls, _recorder = build(
        Approval(require_approval("delete"), approver=approver, approver_timeout=2),
        [[tool_call("delete", path="a"), tool_call("delete", path="b")], text("ok")],
    )
    outcome = await agent.run("go")
    assert outcome.reason == "completed"
    assert [r.call.arguments["path"] for r in approver.requests] == ["a", "b"]
    assert calls.log == [("delete", {"path": "a"})]
    assert tool_messages(outcome)[1].content == "Denied: second is no"


async def test_inline_approvals_are_remembered_too():
    approver = Approver(Approve(), Approve())
    agent, _model, calls, recorder = build(
        Approval(require_approval("delete"), approver=approver, remember=True),
        [tool_call("delete", path="a"), tool_call("delete", path="a"), tool_call("delete", path="b"), text("ok")],
    )
    outcome = await agent.run("go")
    assert outcome.reason == "completed"
    assert [r.call.arguments["path"] for r in approver.requests] == ["a", "b"]  # the repeat was not asked
    assert calls.names() == ["delete"] * 3
    check_grammar(recorder, 1)
