"""``transfer_to_agent``: the same run continues with another agent's model, instructions and tools."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from handoff_testkit import RunsRecorder, add, scripted, shout, tool_messages

from agent_kernel import Agent, Deltas, Message, ModelRegistrar, Request, Response, hookimpl
from agent_kernel.errors import InferenceError
from agent_kernel.journal import MemoryJournal
from agent_kernel.testing import UseJournal, text, tool_call
from agent_plugin_handoff import ACTIVE, TRANSFER_TOOL, Handoff, Peer
from agent_plugin_tools import Toolbox

BILLING = Peer("billing", "Handles invoices.", model="billing-model", instructions="You handle billing.", tools=["add"])
SUPPORT = Peer("support", "Fixes problems.", model="support-model")


def agent_with(
    lead: list[Any],
    billing: list[Any],
    support: Sequence[Any] = (),
    *more: object,
    instructions: str | None = "You triage.",
) -> tuple[Agent, dict[str, Any]]:
    models = {
        "scripted": scripted(lead),
        "billing-model": scripted(billing, model="billing-model"),
        "support-model": scripted(list(support), model="support-model"),
    }
    agent = Agent(
        "scripted",
        [*models.values(), Toolbox([add, shout]), Handoff(transfers=[BILLING, SUPPORT]), *more],
        autoload=False,
        instructions=instructions,
    )
    return agent, models


def system(request: Request) -> list[str]:
    return [m.content for m in request.messages if m.role == "system"]


def tools(request: Request) -> list[str]:
    return sorted(t.name for t in request.tools)


def test_a_transfer_switches_model_instructions_and_tools(run: Any) -> None:
    rec = RunsRecorder()
    # turn numbers count assistant messages, so each model's script is indexed by the run's turn
    agent, models = agent_with(
        [tool_call(TRANSFER_TOOL, agent="billing")],
        [None, tool_call("add", a=40, b=2), tool_call(TRANSFER_TOOL, agent="support")],
        [None, None, None, text("support here")],
        rec,
    )

    async def main() -> None:
        outcome = await agent.run("My invoice is wrong.", run_id="t")
        assert outcome.reason == "completed" and outcome.output == "support here"
        assert outcome.state.model == "support-model" and outcome.state.get(ACTIVE) == "support"
        lead, billing, support = (models[m].requests for m in ("scripted", "billing-model", "support-model"))
        assert len(lead) == 1 and len(billing) == 2 and len(support) == 1
        assert system(lead[0]) == ["You triage."] and tools(lead[0]) == ["add", "shout", TRANSFER_TOOL]
        assert system(billing[0]) == ["You handle billing."] and tools(billing[0]) == ["add", TRANSFER_TOOL]
        # support keeps the instructions in place (it has none of its own) and sees every tool
        assert system(support[0]) == ["You handle billing."] and tools(support[0]) == ["add", "shout", TRANSFER_TOOL]
        results = [m.content for m in tool_messages(outcome)]
        assert results == [
            "Transferred to billing, who continues the conversation.",
            "42",
            "Transferred to support, who continues the conversation.",
        ]

    run(main)
    rec.check()


def test_an_unknown_agent_is_an_error_result_and_nothing_changes(run: Any) -> None:
    agent, models = agent_with([tool_call(TRANSFER_TOOL, agent="sales"), text("still me")], [])

    async def main() -> None:
        outcome = await agent.run("hi")
        assert outcome.reason == "completed" and outcome.output == "still me"
        [result] = tool_messages(outcome)
        assert result.is_error and "agent: expected one of billing, support, got 'sales'" in result.content
        assert outcome.state.model == "scripted" and outcome.state.get(ACTIVE) == ""
        assert models["billing-model"].requests == []

    run(main)


def test_without_run_instructions_the_peers_are_injected_into_every_request(run: Any) -> None:
    agent, models = agent_with(
        [tool_call(TRANSFER_TOOL, agent="billing")],
        [None, tool_call("add", a=1, b=1), text("2")],
        instructions=None,
    )

    async def main() -> None:
        outcome = await agent.run("hi")
        assert outcome.reason == "completed"
        assert [system(r) for r in models["billing-model"].requests] == [["You handle billing."]] * 2
        assert [m.role for m in outcome.state.messages].count("system") == 0  # context, not conversation

    run(main)


class Flaky:
    """Serves "billing-model": fails its first request for good, then answers."""

    name = "flaky-billing"

    def __init__(self) -> None:
        self.requests: list[Request] = []

    @hookimpl
    def agent_register_models(self, models: ModelRegistrar) -> None:
        models.add("billing-model", self)

    async def infer(self, request: Request, deltas: Deltas) -> Response:
        self.requests.append(request)
        if len(self.requests) == 1:
            raise InferenceError("down", retryable=False)
        return Response(Message("assistant", "billing resumed"))


def test_a_resumed_run_continues_with_the_peer(run: Any) -> None:
    journal = MemoryJournal()

    def build(billing: object) -> Agent:
        return Agent(
            "scripted",
            [
                scripted([tool_call(TRANSFER_TOOL, agent="billing")]),
                billing,
                Toolbox([add]),
                Handoff(transfers=[BILLING]),
                UseJournal(journal),
            ],
            autoload=False,
            instructions="You triage.",
        )

    flaky = Flaky()

    async def main() -> None:
        first = await build(flaky).run("hi", run_id="t")
        assert first.reason == "error" and first.error is not None and "down" in first.error.message
        # a fresh agent on the same journal: the transfer is in the journal, not in memory
        again = await build(flaky).resume("t")
        assert again.reason == "completed" and again.output == "billing resumed"
        assert again.state.model == "billing-model"
        assert [system(r) for r in flaky.requests] == [["You handle billing."]] * 2
        assert [tools(r) for r in flaky.requests] == [["add", TRANSFER_TOOL]] * 2

    run(main)


def test_a_peer_naming_an_unknown_tool_fails_the_run_clearly(run: Any) -> None:
    agent = Agent(
        "scripted",
        [scripted([text("x")]), Handoff(transfers=[Peer("p", "x", model="m", tools=["nope"])])],
        autoload=False,
    )

    async def main() -> None:
        outcome = await agent.run("hi")
        assert outcome.reason == "error" and outcome.error is not None
        assert outcome.error.plugin == "handoff" and outcome.error.hook == "agent_run_start"
        assert "Peer 'p' lists unknown tools ['nope']" in outcome.error.message

    run(main)
