"""Helpers for the Handoff tests: named scripted models, a per-run recorder, a tool."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from agent_kernel import Context, ToolCall
from agent_kernel.testing import RunRecorder, ScriptedModel, check_phase_grammar

Recorded = tuple[str, int, str | None, bool]


def scripted(turns: Sequence[Any], *, model: str = "scripted", name: str | None = None) -> ScriptedModel:
    """A `ScriptedModel` serving `model`, registered under plugin name `name` (default: the model)."""
    plugin = ScriptedModel(turns, model=model)
    plugin.name = name or f"scripted-{model}"
    return plugin


class RunsRecorder(RunRecorder):
    """The kit's `RunRecorder`, keeping each run's calls apart (share it between agents)."""

    name = "runs-recorder"

    def __init__(self) -> None:  # replaces the flat lists with lists per run id
        self.calls: dict[str, list[Recorded]] = defaultdict(list)  # type: ignore[assignment]

    def _record(self, ctx: Context, call: ToolCall | None = None) -> None:
        self.calls[ctx.run_id].append((ctx.phase, ctx.step, call.id if call else None, ctx.resumed))

    def phases(self, run_id: str) -> list[str]:  # type: ignore[override]
        return [c[0] for c in self.calls[run_id]]

    def check(self) -> None:
        """Assert the phase grammar for every run seen (over all its invocations)."""
        assert self.calls, "no run recorded"
        for run_id, calls in self.calls.items():
            try:
                check_phase_grammar(calls)
            except AssertionError as exc:
                raise AssertionError(f"run {run_id!r}: {exc}") from None
            names = [c[0] for c in calls]
            assert names.count("run_start") == names.count("run_end"), f"run {run_id!r}: {names}"


def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: the first addend.
        b: the second addend.
    """
    return a + b


def shout(words: str) -> str:
    """Shout.

    Args:
        words: what to shout.
    """
    return words.upper()


def tool_messages(outcome: Any) -> list[Any]:
    """The tool result messages of an outcome's conversation."""
    return [m for m in outcome.state.messages if m.role == "tool"]
