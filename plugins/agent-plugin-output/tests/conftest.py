"""Fixtures and helpers for the TypedOutput tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from agent_kernel import Agent, Message, Outcome, RuntimeRegistrar, hookimpl
from agent_kernel.testing import CodecJournal, RunRecorder, ScriptedModel


@attrs.frozen
class City:
    """A city and how many people live there."""

    name: str
    population: int = attrs.field(validator=attrs.validators.gt(0), metadata={"description": "inhabitants"})
    country: str | None = None


class Run:
    """One scripted run: the outcome, the model (its requests) and the recorded phases."""

    def __init__(self, outcome: Outcome, model: ScriptedModel, recorder: RunRecorder) -> None:
        self.outcome = outcome
        self.model = model
        self.recorder = recorder

    @property
    def messages(self) -> list[Message]:
        return list(self.outcome.state.messages)


async def run(turns: Sequence[Any], *plugins: object, input: str = "go", **agent_kwargs: Any) -> Run:
    """Run a fresh agent (scripted model, `plugins`, a recorder; no autoload) on `input`."""
    model = ScriptedModel(turns)
    recorder = RunRecorder()
    agent = Agent(model="scripted", plugins=[model, *plugins, recorder], autoload=False, **agent_kwargs)
    return Run(await agent.run(input), model, recorder)


class UseJournal:
    """A plugin that makes `journal` the agent's journal."""

    name = "use-journal"

    def __init__(self, journal: CodecJournal) -> None:
        self.journal = journal

    @hookimpl
    def agent_register_runtime(self, runtime: RuntimeRegistrar) -> None:
        runtime.set_journal(self.journal)


def steps(phases: Sequence[str]) -> list[list[str]]:
    """Recorded phases split into steps (run_start and run_end dropped)."""
    out: list[list[str]] = []
    for phase in phases:
        if phase == "step_start":
            out.append([])
        if out and phase not in ("run_start", "run_end"):
            out[-1].append(phase)
    return out
