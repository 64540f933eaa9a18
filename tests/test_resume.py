"""Resume refuses what it cannot do before it claims or journals anything."""

from __future__ import annotations

import pytest
from attrs import evolve

from agent_kernel import Agent, Approve, ToolCall, hookimpl, patches
from agent_kernel.errors import MissingComponent
from agent_kernel.journal import MemoryJournal, Started
from agent_kernel.testing import FakeTools, ScriptedModel, text, tool_call
from agent_kernel.testing.crash import UseJournal


class WireNeedsApproval:
    name = "wire-approval"

    @hookimpl
    def agent_before_tool_execute(self, call: ToolCall) -> list[patches.Patch] | None:
        return [patches.Suspend("wires need a human")] if call.name == "wire" else None


SCRIPT = [tool_call("wire", amount=5), text("done")]


async def wire_waiting_for_approval(journal: MemoryJournal, wired: list[int]) -> tuple[Agent, str]:
    """An agent with the `wire` tool, and the request its run "r" is suspended on."""

    def wire(amount: int) -> str:
        wired.append(amount)
        return f"wired {amount}"

    with_tool = Agent(
        model="scripted",
        plugins=[ScriptedModel(SCRIPT), FakeTools(wire), WireNeedsApproval(), UseJournal(journal)],
        autoload=False,
    )
    (request,) = (await with_tool.run("wire 5", run_id="r")).pending
    return with_tool, request.id


def without_tool(journal: MemoryJournal) -> Agent:
    return Agent(model="scripted", plugins=[ScriptedModel(SCRIPT), UseJournal(journal)], autoload=False)


async def test_approving_a_call_whose_tool_is_not_loaded_is_refused_before_anything_is_used() -> None:
    """The tool lives in a plugin the resuming process lacks (an MCP server, say): the
    approval is refused naming the tool, and stays usable where the tool is loaded."""
    wired: list[int] = []
    journal = MemoryJournal()
    with_tool, request = await wire_waiting_for_approval(journal, wired)
    before = await journal.load("r")

    with pytest.raises(MissingComponent, match=r"approves a call of tool 'wire', which no loaded plugin registers"):
        await without_tool(journal).resume("r", decisions={request: Approve()})
    assert await journal.load("r") == before  # nothing journaled
    assert await journal.claim("r") == 2  # and nothing claimed: the run's first attempt was the last

    done = await with_tool.resume("r", decisions={request: Approve()})
    assert (done.reason, done.output, wired) == ("completed", "done", [5])


class EverythingNeedsApproval:
    name = "all-approval"

    @hookimpl
    def agent_before_tool_execute(self, call: ToolCall) -> list[patches.Patch] | None:
        return [patches.Suspend("ask first")]


async def test_approving_a_call_of_a_tool_the_model_made_up_gives_the_model_an_unknown_tool_result() -> None:
    """No invocation of the run had the tool: the approval goes through and the model
    reads the same error a call of an unknown tool always gets (DESIGN §5.9)."""
    journal = MemoryJournal()
    script = [tool_call("teleport", to="mars"), text("cannot")]
    agent = Agent(
        model="scripted",
        plugins=[ScriptedModel(script), FakeTools(), EverythingNeedsApproval(), UseJournal(journal)],
        autoload=False,
    )
    (request,) = (await agent.run("go", run_id="r")).pending
    done = await agent.resume("r", decisions={request.id: Approve()})
    (result,) = [m for m in done.state.messages if m.role == "tool"]
    assert result.is_error and "Unknown tool 'teleport'" in result.content
    assert done.output == "cannot"


async def test_a_journal_that_does_not_say_which_tools_were_offered_is_not_refused() -> None:
    """Format-1 journals (0.1) have no `Started.tools`: an approval of a call whose tool is
    missing here cannot be told from a made-up one, and runs into the unknown-tool result."""
    journal = MemoryJournal()
    _, request = await wire_waiting_for_approval(journal, [])
    journal._entries["r"] = [evolve(e, tools=None) if isinstance(e, Started) else e for e in journal._entries["r"]]
    done = await without_tool(journal).resume("r", decisions={request: Approve()})
    (result,) = [m for m in done.state.messages if m.role == "tool"]
    assert result.is_error and result.content.startswith("Unknown tool 'wire'")
