"""`RunRecorder`, a plugin that records the phase hooks called, in order; `run_scripted`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from attrs import frozen

from .._agent import Agent
from .._outcome import Outcome
from .._state import Message, ToolCall
from ..hookspecs import Context, hookimpl
from ._scripted import ScriptedModel, Turn


class RunRecorder:
    """Records every phase hook call.

    `phases` lists the hook names without the ``agent_`` prefix, in call order;
    `calls` holds ``(phase, step, call_id, resumed)`` tuples with more detail.
    """

    name = "run-recorder"

    def __init__(self) -> None:
        self.phases: list[str] = []
        self.calls: list[tuple[str, int, str | None, bool]] = []

    def _record(self, ctx: Context, call: ToolCall | None = None) -> None:
        self.phases.append(ctx.phase)
        self.calls.append((ctx.phase, ctx.step, call.id if call else None, ctx.resumed))

    def assert_phases(self, expected: Sequence[str]) -> None:
        """Assert the recorded phases equal `expected`, showing both on failure."""
        assert list(self.phases) == list(expected), f"phases were {self.phases}, expected {list(expected)}"

    def clear(self) -> None:
        self.phases.clear()
        self.calls.clear()

    def steps(self) -> list[list[str]]:
        """The recorded phases of each step (RunStart and RunEnd left out)."""
        out: list[list[str]] = []
        for phase in self.phases:
            if phase == "step_start":
                out.append([])
            if out and phase not in ("run_start", "run_end"):
                out[-1].append(phase)
        return out

    @hookimpl(tryfirst=True)
    def agent_run_start(self, ctx: Context) -> None:
        self._record(ctx)

    @hookimpl(tryfirst=True)
    def agent_step_start(self, ctx: Context) -> None:
        self._record(ctx)

    @hookimpl(tryfirst=True)
    def agent_before_inference(self, ctx: Context) -> None:
        self._record(ctx)

    @hookimpl(tryfirst=True)
    def agent_after_inference(self, ctx: Context) -> None:
        self._record(ctx)

    @hookimpl(tryfirst=True)
    def agent_before_tool_execute(self, ctx: Context, call: ToolCall) -> None:
        self._record(ctx, call)

    @hookimpl(tryfirst=True)
    def agent_after_tool_execute(self, ctx: Context, call: ToolCall) -> None:
        self._record(ctx, call)

    @hookimpl(tryfirst=True)
    def agent_step_end(self, ctx: Context) -> None:
        self._record(ctx)

    @hookimpl(tryfirst=True)
    def agent_run_end(self, ctx: Context, outcome: Any) -> None:
        self._record(ctx)


@frozen
class ScriptedRun:
    """What `run_scripted` returns: the outcome, the model (its `requests`) and the recorder."""

    outcome: Outcome
    model: ScriptedModel
    recorder: RunRecorder

    @property
    def messages(self) -> list[Message]:
        """The run's conversation."""
        return list(self.outcome.state.messages)


async def run_scripted(turns: Sequence[Turn], *plugins: object, input: str = "go", **agent_kwargs: Any) -> ScriptedRun:
    """Run a fresh agent on `input`: a `ScriptedModel` of `turns`, `plugins` and a `RunRecorder`, no autoload.

    Usage::

        r = await run_scripted([tool_call("add", a=1, b=2), text("3")], FakeTools(add), MyPlugin())
        assert r.outcome.reason == "completed" and len(r.recorder.steps()) == 2
    """
    model = ScriptedModel(turns)
    recorder = RunRecorder()
    agent = Agent(model="scripted", plugins=[model, *plugins, recorder], autoload=False, **agent_kwargs)
    return ScriptedRun(await agent.run(input), model, recorder)
