"""Tools, agents and helpers shared by the tests and the subprocesses they start.

Only public APIs are used (agent_kernel, its testing kit, agent_plugin_tools,
agent_plugin_approval), so a fresh interpreter builds exactly the same agent.
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Sequence
from typing import Any

from hypothesis import HealthCheck, settings

from agent_kernel import Agent, Message, Outcome, RuntimeRegistrar, ToolCall, ToolContext, hookimpl
from agent_kernel.testing import RunRecorder, ScriptedModel, check_phase_grammar
from agent_plugin_approval import Approval
from agent_plugin_tools import Toolbox

HERE = pathlib.Path(__file__).resolve().parent

#: Hypothesis settings of the property tests: ``APPROVAL_EXAMPLES`` examples (default 60), no deadline
#: (runs of agents on a busy machine), on top of whatever profile is loaded.
EXAMPLES = int(os.environ.get("APPROVAL_EXAMPLES", "60"))
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


class Calls:
    """The tools the tests give the model; every call that really ran is recorded in `log`."""

    def __init__(self, path: pathlib.Path | str | None = None) -> None:
        self.log: list[tuple[str, dict[str, Any]]] = _FileLog(pathlib.Path(path)) if path else []  # type: ignore[assignment]
        self.fail_commands: set[str] = set()
        #: (idempotency key, tool, arguments) of every call that ran: key = run:step:call id.
        self.keyed: list[tuple[str, str, dict[str, Any]]] = []

    def names(self) -> list[str]:
        return [name for name, _ in self.log]

    def toolbox(self, *, parallel: bool = False, name: str = "test-tools") -> Toolbox:
        log, fail_commands, keyed = self.log, self.fail_commands, self.keyed

        async def add(a: int, b: int) -> int:
            """Add two integers.

            Args:
                a: first.
                b: second.
            """
            log.append(("add", {"a": a, "b": b}))
            return a + b

        async def pay(amount: float, to: str) -> str:
            """Send money.

            Args:
                amount: how much.
                to: to whom.
            """
            log.append(("pay", {"amount": amount, "to": to}))
            return f"paid {amount} to {to}"

        async def shell(command: str) -> str:
            """Run a shell command (pretend).

            Args:
                command: the command line.
            """
            log.append(("shell", {"command": command}))
            if command in fail_commands:
                raise RuntimeError(f"exit status 1: {command}")
            return f"ran {command}"

        async def delete(path: str, context: ToolContext) -> str:
            """Delete a file (pretend).

            Args:
                path: which file.
            """
            log.append(("delete", {"path": path}))
            keyed.append((context.idempotency_key, "delete", {"path": path}))
            return f"deleted {path}"

        return Toolbox([add, pay, shell, delete], parallel=parallel, name=name)


class _FileLog(list):  # type: ignore[type-arg]
    """A call log kept in a file, one JSON line per call, so several processes can share it."""

    def __init__(self, path: pathlib.Path) -> None:
        super().__init__()
        self.path = path

    def append(self, item: Any) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(item) + "\n")

    def _items(self) -> list[Any]:
        if not self.path.exists():
            return []
        return [tuple(json.loads(line)) for line in self.path.read_text().splitlines()]

    def __iter__(self) -> Any:
        return iter(self._items())

    def __len__(self) -> int:
        return len(self._items())


class JournalPlugin:
    """Registers a given journal (share one `CodecJournal` between agents to play a second process)."""

    name = "test-journal"

    def __init__(self, journal: Any) -> None:
        self.journal = journal

    @hookimpl
    def agent_register_runtime(self, runtime: RuntimeRegistrar) -> None:
        runtime.set_journal(self.journal)


def build(
    approval: Approval,
    turns: Sequence[Any],
    *,
    calls: Calls | None = None,
    parallel: bool = False,
    extra: Sequence[object] = (),
    journal: Any = None,
) -> tuple[Agent, ScriptedModel, Calls, RunRecorder]:
    """An agent with a scripted model, the test tools, `approval` and a recorder.

    `journal` is a journal object (registered through `JournalPlugin`) or a plugin
    that registers one (such as `agent_plugin_sqlite.SqliteJournal`).
    """
    calls = calls if calls is not None else Calls()
    model = ScriptedModel(list(turns))
    recorder = RunRecorder()
    plugins: list[object] = [model, calls.toolbox(parallel=parallel), approval, *extra, recorder]
    if journal is not None:
        plugins.append(journal if hasattr(journal, "agent_register_runtime") else JournalPlugin(journal))
    agent = Agent(model="scripted", plugins=plugins, autoload=False)
    return agent, model, calls, recorder


def tool_messages(outcome: Outcome) -> list[Message]:
    """The tool-result messages of a run, in order."""
    return [m for m in outcome.state.messages if m.role == "tool"]


def check_grammar(recorder: RunRecorder, invocations: int, *, continued: bool = False) -> None:
    """The phase grammar holds, with exactly one run_start and one run_end per invocation.

    `continued`: the recorder joined a run another agent began (it saw only resumes),
    so only the bracketing and the ``resumed`` flag are checked.
    """
    if continued:
        assert all(resumed for phase, _, _, resumed in recorder.calls if phase == "run_start"), recorder.calls
    else:
        check_phase_grammar(recorder.calls)
    phases = recorder.phases
    assert phases.count("run_start") == invocations, phases
    assert phases.count("run_end") == invocations, phases
    assert phases[0] == "run_start" and phases[-1] == "run_end", phases
    starts = [i for i, p in enumerate(phases) if p == "run_start"]
    ends = [i for i, p in enumerate(phases) if p == "run_end"]
    assert all(s < e for s, e in zip(starts, ends, strict=True)), phases
    assert all(e < s for e, s in zip(ends, starts[1:], strict=False)), phases


def call(name: str, /, **arguments: Any) -> ToolCall:
    """A tool call for unit-testing policies."""
    return ToolCall("c1", name, arguments)


def empty_state() -> Any:
    """A fresh `RunState` for unit-testing policies."""
    from agent_kernel import Log, RunState

    return RunState("run", "scripted", Log())
