"""In-process resume: a parent cancelled in the middle of its child resumes the child."""

from __future__ import annotations

from typing import Any

import anyio
from handoff_testkit import RunsRecorder, scripted, tool_messages

from agent_kernel import Agent, ToolContext
from agent_kernel.journal import Started
from agent_kernel.testing import text, tool_call
from agent_plugin_handoff import Handoff, SubAgent
from agent_plugin_tools import Toolbox, tool


def test_a_parent_timed_out_inside_its_child_resumes_the_child_where_it_was(run: Any) -> None:
    rec = RunsRecorder()
    release: list[anyio.Event] = []
    keys: list[str] = []

    @tool(idempotent=True)
    async def fetch(url: str, ctx: ToolContext) -> str:
        """Fetch a page (idempotent).

        Args:
            url: the page.
        """
        keys.append(ctx.idempotency_key)
        if len(keys) == 1:
            await release[0].wait()  # the first attempt hangs until the parent times out
        return f"page {url}"

    child_model = scripted([tool_call("fetch", url="a"), text("fetched a")])
    sub = SubAgent("reader", "Reads.", model="scripted", plugins=[child_model, Toolbox([fetch]), rec], autoload=False)
    parent_model = scripted([tool_call("reader", input="read a"), text("read it")])
    agent = Agent("scripted", [parent_model, Toolbox([]), Handoff([sub]), rec], autoload=False)

    async def main() -> None:
        release.append(anyio.Event())
        first = await agent.run("go", run_id="p", timeout=0.2)
        assert first.reason == "cancelled"
        child = await agent.journal.load("p/1/call_1_1")
        assert [e.input for e in child if isinstance(e, Started)] == ["read a"]
        assert (len(parent_model.requests), len(child_model.requests)) == (1, 1)
        again = await agent.resume("p")
        assert again.reason == "completed" and again.output == "read it"
        assert [m.content for m in tool_messages(again)] == ["fetched a"]
        # the child's recorded first turn was not requested again; its tool re-ran with the same key
        assert (len(parent_model.requests), len(child_model.requests)) == (2, 2)
        assert keys == ["p/1/call_1_1:1:call_1_1"] * 2
        child = await agent.journal.load("p/1/call_1_1")
        assert [e.input for e in child if isinstance(e, Started)] == ["read a", None]  # resumed, not restarted

    run(main)
    rec.check()
    assert [c[3] for c in rec.calls["p/1/call_1_1"] if c[0] == "run_start"] == [False, True]
