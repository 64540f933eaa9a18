"""Plugins and scenarios shared by the tests and by the subprocesses they start.

Only the kernel's public API and its testing kit are used, so the scripts that the
cross-process tests run in fresh interpreters build exactly the same agents;
`holding_the_writer` (for in-process tests) reaches into the journal.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import threading
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import anyio
import anyio.to_thread

from agent_kernel import Agent, Retry, StateKey, ToolResult, ToolSpec, hookimpl, patches
from agent_kernel.testing import ScriptedModel, fault, text, tool_call
from agent_plugin_sqlite import SqliteJournal

HERE = pathlib.Path(__file__).resolve().parent

STEPS = StateKey("sqlite-tests.steps", int, default=0)
NOTES = StateKey("sqlite-tests.notes", dict[str, list[int]], default={})


class Sequential:
    """A tool strategy running calls one after another."""

    concurrent = False

    async def run(self, calls: Sequence[Any], execute: Callable[[Any], Any]) -> None:
        for call in calls:
            await execute(call)


class Tools:
    """Tools for the scenarios; `extra` maps a name to (function, idempotent)."""

    name = "sqlite-test-tools"

    def __init__(self, extra: Mapping[str, tuple[Callable[[Mapping[str, Any]], str], bool]] | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.extra = dict(extra or {})

    @hookimpl
    def agent_register_tools(self, tools: Any) -> None:
        def make(name: str, function: Callable[[Mapping[str, Any]], str]) -> Any:
            async def run(arguments: Mapping[str, Any], ctx: Any) -> ToolResult:
                self.calls.append((name, dict(arguments)))
                return ToolResult(function(arguments))

            return run

        tools.add(ToolSpec("add", "Add a and b"), make("add", lambda a: str(a["a"] + a["b"])))
        tools.add(ToolSpec("danger", "Needs approval"), make("danger", lambda a: f"did {a['x']}"))
        for name, (function, idempotent) in self.extra.items():
            tools.add(ToolSpec(name, name, idempotent=idempotent), make(name, function))

    @hookimpl
    def agent_register_runtime(self, runtime: Any) -> None:
        runtime.set_tool_strategy(Sequential())
        runtime.add_state_key(STEPS)
        runtime.add_state_key(NOTES)


class Behaviour:
    """Retries failed inferences, counts steps, notes tool results and gates `danger`."""

    name = "sqlite-test-behaviour"

    @hookimpl
    def agent_on_inference_error(self, attempt: int) -> Retry | None:
        return Retry(0.0) if attempt < 3 else None

    @hookimpl
    def agent_step_start(self, ctx: Any) -> list[Any]:
        return [patches.IncrementData(STEPS, 1), patches.InjectContext(f"step {ctx.step}")]

    @hookimpl
    def agent_before_tool_execute(self, call: Any) -> list[Any] | None:
        if call.name == "danger":
            return [patches.Suspend("danger needs a human")]
        return None

    @hookimpl
    def agent_after_tool_execute(self, ctx: Any, call: Any, result: Any) -> list[Any]:
        notes = {k: list(v) for k, v in ctx.state.get(NOTES).items()}
        notes.setdefault(call.name, []).append(len(result.content))
        return [patches.SetData(NOTES, notes), patches.Remind(f"{call.name} done")]


def scenario_turns() -> list[Any]:
    """A flaky first inference, a tool call, a gated tool call, then the answer."""
    return [fault("flaky"), tool_call("add", a=2, b=3), tool_call("danger", x=1), text("all done")]


def scenario_agent(journal: Any, *, turns: Sequence[Any] | None = None) -> tuple[Agent, ScriptedModel, Tools]:
    """The scenario agent on `journal` (a journal plugin, or None for the in-memory one)."""
    model = ScriptedModel(list(turns) if turns is not None else scenario_turns())
    tools = Tools()
    plugins: list[Any] = [model, tools, Behaviour()]
    if journal is not None:
        plugins.append(journal)
    return Agent(model="scripted", plugins=plugins, autoload=False, instructions="be brief"), model, tools


def crash_agent(
    path: str | os.PathLike[str], marker: pathlib.Path, *, idempotent: bool
) -> tuple[Agent, ScriptedModel, Tools]:
    """An agent whose `explode` tool kills the process the first time it runs (`marker` counts runs)."""

    def explode(arguments: Mapping[str, Any]) -> str:
        runs = int(marker.read_text()) if marker.exists() else 0
        marker.write_text(str(runs + 1))
        if runs == 0:
            os._exit(17)  # a hard crash: no cleanup, no RunEnd, no close
        return "exploded safely"

    model = ScriptedModel([tool_call("add", a=1, b=2), tool_call("explode"), text("recovered")])
    tools = Tools({"explode": (explode, idempotent)})
    agent = Agent(model="scripted", plugins=[model, tools, SqliteJournal(path)], autoload=False)
    return agent, model, tools


def codec_agent(path: str | os.PathLike[str], **options: Any) -> tuple[Agent, SqliteJournal]:
    """A bare agent whose only job is to bind its codec to a journal on `path`."""
    journal = SqliteJournal(path, **options)
    agent = Agent(model="scripted", plugins=[ScriptedModel([text("ok")]), Tools(), journal], autoload=False)
    return agent, journal


@contextlib.asynccontextmanager
async def holding_the_writer(journal: SqliteJournal) -> AsyncIterator[None]:
    """Keep `journal`'s writer thread inside a write of its own until the block exits,
    so that the writes made meanwhile queue up and then run as one group commit."""
    entered, release = threading.Event(), threading.Event()

    def hold(conn: Any) -> None:
        entered.set()
        release.wait()

    async with anyio.create_task_group() as group:
        group.start_soon(journal._write, hold)
        assert await anyio.to_thread.run_sync(entered.wait, 10), "the writer never ran the holding write"
        try:
            yield
        finally:
            release.set()
