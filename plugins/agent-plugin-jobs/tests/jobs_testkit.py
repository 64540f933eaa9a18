"""Agents for the job tests: in-process factories with gates, and a factory for worker subprocesses."""

from __future__ import annotations

import os
import pathlib
import threading
from collections.abc import Callable, Sequence
from typing import Any

import anyio

from agent_kernel import Agent, hookimpl, patches
from agent_kernel.testing import FakeTools, ScriptedModel, text, tool_call
from agent_plugin_jobs import Job
from agent_plugin_sqlite import SqliteJournal

HERE = pathlib.Path(__file__).resolve().parent


def steps_script(steps: int, answer: str = "done") -> list[Any]:
    """`steps` turns each calling ``slow(n=i)``, then a text answer."""
    return [*(tool_call("slow", n=i) for i in range(1, steps + 1)), text(answer)]


class Gate:
    """The ``slow`` tool: it blocks while closed; counts starts and the calls running at once."""

    def __init__(self, *, open: bool = True) -> None:
        self.opened = anyio.Event()
        if open:
            self.opened.set()
        self.entered = anyio.Event()
        self.starts: list[int] = []
        self.running = 0
        self.most_running = 0

    async def slow(self, n: int) -> str:
        """Do step `n` (waits for the gate)."""
        self.starts.append(n)
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        self.entered.set()
        try:
            await self.opened.wait()
            await anyio.sleep(0)
        finally:
            self.running -= 1
        return f"did {n}"


class Stall:
    """A ``slow`` tool whose first call blocks its whole event loop (a stalled worker)
    until `release` is set, or `seconds` at the most."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.entered = threading.Event()
        self.release = threading.Event()
        self.starts: list[int] = []

    def slow(self, n: int) -> str:
        """Do step `n` (the first time: freeze the thread)."""
        self.starts.append(n)
        if len(self.starts) == 1:
            self.entered.set()
            self.release.wait(self.seconds)
        return f"did {n}"


class SuspendTool:
    """Suspends every call of the tool `name` for approval."""

    def __init__(self, name: str) -> None:
        self.name = f"suspend-{name}"
        self._tool = name

    @hookimpl
    def agent_before_tool_execute(self, call: Any) -> list[patches.Patch] | None:
        return [patches.Suspend(f"{self._tool} needs approval")] if call.name == self._tool else None


class FailOnce:
    """Raises in StepStart of the first invocation only (the next one gets past it)."""

    name = "fail-once"

    def __init__(self) -> None:
        self.failed = False

    @hookimpl
    def agent_step_start(self) -> None:
        if not self.failed:
            self.failed = True
            raise RuntimeError("flaky plugin")


class Factory:
    """An agent factory over one SQLite journal; keeps every model it made (to count requests)."""

    def __init__(
        self,
        journal_path: pathlib.Path,
        scripts: dict[str, Sequence[Any]] | Sequence[Any],
        gate: Gate | Stall | None = None,
        extra: Callable[[Job], Sequence[object]] = lambda job: (),
    ) -> None:
        self.journal = SqliteJournal(journal_path)
        self.scripts = scripts
        self.gate = gate or Gate()
        self.extra = extra
        self.models: dict[str, list[ScriptedModel]] = {}

    def __call__(self, job: Job) -> Agent:
        script = self.scripts[job.agent] if isinstance(self.scripts, dict) else self.scripts
        model = ScriptedModel(script)
        self.models.setdefault(job.id, []).append(model)
        tools = FakeTools(self.gate.slow, idempotent=["slow"])
        return Agent(model=job.model, plugins=[self.journal, model, tools, *self.extra(job)], autoload=False)

    def requests(self, job_id: str) -> int:
        """Model requests made for `job_id` over all its invocations."""
        return sum(len(m.requests) for m in self.models.get(job_id, []))


# ------------------------------------------------------------------ subprocess workers


def _logged(turn: Any, log: pathlib.Path) -> Callable[[Any], Any]:
    """A turn that appends the turn's index to `log` when the model is asked for it."""

    def respond(request: Any) -> Any:
        index = sum(1 for m in request.messages if m.role == "assistant")
        with log.open("a") as f:
            f.write(f"{index}\n")
        return turn

    return respond


def cli_factory(job: Job) -> Agent:
    """The factory of ``agent-kernel jobs work --factory jobs_testkit:cli_factory``.

    The job's metadata names the journal file and a directory for logs and signals:
    ``requests.log`` (turn indexes the model was asked for), ``tool.log`` (pid and
    step of every ``slow`` start). ``slow`` waits while ``<dir>/hold-<n>`` exists;
    with ``hang=<n>`` it writes ``<dir>/entered-<n>`` and hangs in step `n` of the
    first process that reaches it (``<dir>/hung`` marks that this happened).
    """
    meta = job.metadata
    folder = pathlib.Path(meta["dir"])
    hang = int(meta.get("hang", 0))
    steps = int(meta.get("steps", 2))

    async def slow(n: int) -> str:
        """Do step `n`."""
        with (folder / "tool.log").open("a") as f:
            f.write(f"{os.getpid()} {n}\n")
        if n == hang and not (folder / "hung").exists():
            (folder / "hung").touch()
            (folder / f"entered-{n}").touch()
            await anyio.sleep(600)
        while (folder / f"hold-{n}").exists():
            await anyio.sleep(0.02)
        return f"did {n}"

    script = [_logged(turn, folder / "requests.log") for turn in steps_script(steps)]
    return Agent(
        model=job.model or "scripted",
        plugins=[SqliteJournal(meta["journal"]), ScriptedModel(script), FakeTools(slow, idempotent=["slow"])],
        autoload=False,
    )


class HelloModel(ScriptedModel):
    """``--plugin jobs_testkit:HelloModel``: the model ``scripted`` answering "hello from the worker"."""

    def __init__(self) -> None:
        super().__init__([text("hello from the worker")])
