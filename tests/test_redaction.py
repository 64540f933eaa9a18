"""Redactors (RuntimeRegistrar.add_redactor): every journal entry, event and outcome error
passes through them; a big tool result is redacted in a worker thread, off the event loop."""

from __future__ import annotations

import threading
from typing import Any

import attrs

from agent_kernel import Agent, RuntimeRegistrar, ToolResult, hookimpl
from agent_kernel.journal import ToolDone
from agent_kernel.testing import FakeTools, ScriptedModel, text, tool_call


class HideSecrets:
    """Replaces "s3cret" in tool results, noting the thread each result was redacted on."""

    name = "hide-secrets"

    def __init__(self) -> None:
        self.threads: list[tuple[int, bool]] = []

    @hookimpl
    def agent_register_runtime(self, runtime: RuntimeRegistrar) -> None:
        runtime.add_redactor(self.redact)

    def redact(self, value: Any) -> Any:
        if isinstance(value, ToolDone):
            on_main = threading.current_thread() is threading.main_thread()
            self.threads.append((len(value.result.content), on_main))
            result = ToolResult(value.result.content.replace("s3cret", "[hidden]"), value.result.is_error)
            return attrs.evolve(value, result=result)
        return value


async def test_a_big_result_is_redacted_off_the_loop_and_a_small_one_on_it() -> None:
    def read(size: int) -> str:
        return "s3cret " + "x" * size

    hide = HideSecrets()
    model = ScriptedModel([tool_call("read", size=10), tool_call("read", size=200_000), text("done")])
    agent = Agent(model="scripted", plugins=[model, FakeTools(read), hide], autoload=False)
    assert agent.redactors == (hide.redact,)
    outcome = await agent.run("read twice")
    assert outcome.reason == "completed"
    assert [(size > 64 * 1024, on_main) for size, on_main in hide.threads] == [(False, True), (True, False)]
    results = [e.result.content for e in await agent.journal.load(outcome.run_id) if isinstance(e, ToolDone)]
    assert [r[:8] for r in results] == ["[hidden]", "[hidden]"]
    assert all("s3cret" not in m.content for m in outcome.state.messages)
