"""`RunRecorder`: a plugin that records the phase hooks called, in order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._state import ToolCall
from ..hookspecs import Context, hookimpl


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
