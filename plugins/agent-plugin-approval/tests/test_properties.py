"""Property: whatever people decide, however often they repeat it, each decision applies once."""

from __future__ import annotations

from approval_testkit import PROPERTY, build, check_grammar
from hypothesis import given
from hypothesis import strategies as st

from agent_kernel import Approve, Deny
from agent_kernel.testing import text, tool_call
from agent_plugin_approval import Approval
from agent_plugin_approval.policies import require_approval

PATHS = st.sampled_from(["a", "b", "c"])
CALL = st.one_of(
    st.builds(lambda p: tool_call("delete", path=p), PATHS),
    st.builds(lambda a: tool_call("add", a=a, b=1), st.integers(0, 3)),
)
SCRIPTS = st.lists(st.lists(CALL, min_size=1, max_size=3), min_size=1, max_size=3)
DECISION = st.one_of(
    st.just(Approve()),
    st.builds(lambda p: Approve(arguments={"path": p + "-edited"}), PATHS),
    st.builds(Deny, st.sampled_from(["no", "never"])),
)


@PROPERTY
@given(script=SCRIPTS, remember=st.sampled_from([False, True, "tool"]), data=st.data())
async def test_each_decision_applies_exactly_once(script, remember, data):
    approval = Approval(require_approval("delete"), remember=remember)
    agent, model, calls, recorder = build(approval, [*script, text("end")])
    outcome = await agent.run("go", run_id="prop")
    given_so_far: dict[str, object] = {}  # every decision ever sent, stale ones included
    effective: dict[tuple[int, str], object] = {}  # the first decision for each request
    invocations = 1
    while outcome.reason == "suspended":
        assert invocations < 20
        pending = list(outcome.pending)
        chosen = data.draw(st.lists(st.sampled_from(pending), min_size=1, unique_by=lambda r: r.id), label="decided")
        for request in chosen:
            decision = data.draw(DECISION, label=f"decision {request.id}")
            given_so_far[request.id] = decision
            effective.setdefault((request.step, request.call.id), decision)
        # resend everything: decisions already applied must be ignored
        outcome = await agent.resume("prop", decisions=dict(given_so_far))
        invocations += 1
    assert outcome.reason == "completed", outcome.error
    check_grammar(recorder, invocations)
    assert len(model.requests) == len(script) + 1  # no recorded answer was requested again

    ran: dict[tuple[int, str], list[dict]] = {}
    for key, _, arguments in calls.keyed:
        _, step, call_id = key.split(":")
        ran.setdefault((int(step), call_id), []).append(arguments)
    results = {m.tool_call_id: m for m in outcome.state.messages if m.role == "tool"}
    for step, turn in enumerate(script, start=1):
        for index, scripted in enumerate(turn, start=1):
            call_id = f"call_{step}_{index}"
            assert call_id in results  # every call got exactly one answer
            if scripted.name != "delete":
                continue
            decision = effective.get((step, call_id))
            runs = ran.get((step, call_id), [])
            if isinstance(decision, Deny):
                assert runs == [] and results[call_id].content == f"Denied: {decision.reason}"
            elif isinstance(decision, Approve) and decision.arguments is not None:
                assert runs == [dict(decision.arguments)]
            else:  # approved as is, or never asked (remembered)
                assert runs == [scripted.arguments]
                if decision is None:
                    assert remember, "only a remembered approval lets a delete run unasked"
