"""Golden transcript: a two-step run with one tool call, exactly (STYLE 14).

If one of these fails, the run protocol changed: update the docs (hookspecs'
run protocol, docs/hooks.md) together with the expected values here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from agent_kernel import Agent, Message, ToolCall, hookimpl
from agent_kernel import events as ev
from agent_kernel.journal import Committed, Ended, Inferred, Intended, Started, ToolDone
from agent_kernel.testing import FakeTools, RunRecorder, ScriptedModel, check_phase_grammar, text, tool_call

GOLDEN_PHASES = [
    "run_start",
    "step_start",
    "before_inference",
    "after_inference",
    "before_tool_execute",
    "after_tool_execute",
    "step_end",
    "step_start",
    "before_inference",
    "after_inference",
    "step_end",
    "run_end",
]

GOLDEN_CALLS = [
    ("run_start", 0, None, False),
    ("step_start", 1, None, False),
    ("before_inference", 1, None, False),
    ("after_inference", 1, None, False),
    ("before_tool_execute", 1, "call_1_1", False),
    ("after_tool_execute", 1, "call_1_1", False),
    ("step_end", 1, None, False),
    ("step_start", 2, None, False),
    ("before_inference", 2, None, False),
    ("after_inference", 2, None, False),
    ("step_end", 2, None, False),
    ("run_end", 2, None, False),
]

GOLDEN_EVENTS = [
    ev.RunStarted,
    ev.StepStarted,
    ev.InferenceStarted,
    ev.ToolCallDelta,
    ev.InferenceFinished,
    ev.ToolCallStarted,
    ev.ToolCallFinished,
    ev.StepEnded,
    ev.StepStarted,
    ev.InferenceStarted,
    ev.TextDelta,
    ev.TextDelta,
    ev.TextDelta,
    ev.InferenceFinished,
    ev.StepEnded,
    ev.RunEnded,
]

ADD_CALL = ToolCall("call_1_1", "add", {"a": 2, "b": 3})

GOLDEN_MESSAGES = [
    Message("user", "What is 2+3?"),
    Message("assistant", "", (ADD_CALL,)),
    Message("tool", "5", tool_call_id="call_1_1"),
    Message("assistant", "It is 5"),
]

# (entry type, phase, step, call id) of every journal entry, in order
GOLDEN_JOURNAL = [
    (Started, None, None, None),
    (Committed, "run_start", 0, None),
    (Committed, "step_start", 1, None),
    (Committed, "before_inference", 1, None),
    (Inferred, None, 1, None),
    (Committed, "after_inference", 1, None),
    (Committed, "before_tool_execute", 1, "call_1_1"),
    (Intended, None, 1, "call_1_1"),
    (ToolDone, None, 1, "call_1_1"),
    (Committed, "after_tool_execute", 1, "call_1_1"),
    (Committed, "step_end", 1, None),
    (Committed, "step_start", 2, None),
    (Committed, "before_inference", 2, None),
    (Inferred, None, 2, None),
    (Committed, "after_inference", 2, None),
    (Committed, "step_end", 2, None),
    (Committed, "run_end", 2, None),
    (Ended, None, None, None),
]


def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


class Observer:
    """Every event, as an `agent_on_event` observer sees it."""

    name = "observer"

    def __init__(self) -> None:
        self.events: list[ev.Event] = []

    @hookimpl
    def agent_on_event(self, event: ev.Event) -> None:
        self.events.append(event)


def golden_agent(make: Callable[..., Agent], strategy: str = "sequential") -> tuple[Agent, ScriptedModel, FakeTools]:
    model = ScriptedModel([tool_call("add", a=2, b=3), text("It is 5")])
    tools = FakeTools(add, strategy=strategy)
    return make(model, tools), model, tools


async def check_golden(
    agent: Agent, model: ScriptedModel, tools: FakeTools, recorder: RunRecorder, observer: Observer
) -> None:
    streamed: list[ev.Event] = []
    async with agent.stream("What is 2+3?", run_id="golden") as events:
        async for event in events:
            streamed.append(event)
    outcome = events.outcome
    assert outcome is not None

    recorder.assert_phases(GOLDEN_PHASES)
    assert recorder.calls == GOLDEN_CALLS
    check_phase_grammar(recorder.calls)

    assert [type(e) for e in streamed] == GOLDEN_EVENTS
    assert observer.events == streamed, "observers and the stream see the same events"
    assert all(e.run_id == "golden" for e in streamed)
    seqs = [e.seq for e in streamed]
    assert seqs == sorted(set(seqs)), "seq strictly increases"
    assert "".join(e.text for e in streamed if isinstance(e, ev.TextDelta)) == "It is 5"
    finished = [e for e in streamed if isinstance(e, ev.ToolCallFinished)]
    assert [(e.call_id, e.name, e.result.content, e.result.is_error) for e in finished] == [
        ("call_1_1", "add", "5", False)
    ]
    ended = streamed[-1]
    assert isinstance(ended, ev.RunEnded) and (ended.reason, ended.output, ended.error) == (
        "completed",
        "It is 5",
        None,
    )

    assert list(outcome.state.messages) == GOLDEN_MESSAGES
    assert (outcome.reason, outcome.output, outcome.run_id, outcome.error, outcome.stop) == (
        "completed",
        "It is 5",
        "golden",
        None,
        None,
    )
    stats = outcome.stats
    assert (stats.steps, stats.llm_calls, stats.tool_calls, stats.tool_errors, stats.retries) == (2, 2, 1, 0, 0)
    assert outcome.usage.requests == 2
    assert outcome.state.step == 2
    assert outcome.pending == ()

    assert len(model.requests) == 2
    assert [m.role for m in model.requests[0].messages] == ["user"]
    assert [m.role for m in model.requests[1].messages] == ["user", "assistant", "tool"]
    assert [t.name for t in model.requests[0].tools] == ["add"]
    assert [(i.name, dict(i.arguments), i.idempotency_key) for i in tools.invocations] == [
        ("add", {"a": 2, "b": 3}, "golden:1:call_1_1")
    ]

    journal = await agent.journal.load("golden")
    shape = [
        (type(e), getattr(e, "phase", None), getattr(e, "step", None), getattr(e, "call_id", None)) for e in journal
    ]
    assert shape == GOLDEN_JOURNAL
    start, end = journal[0], journal[-1]
    assert isinstance(start, Started) and (start.attempt, start.model, start.input) == (1, "scripted", "What is 2+3?")
    assert isinstance(end, Ended) and (end.reason, end.error) == ("completed", None)
    done = next(e for e in journal if isinstance(e, ToolDone))
    assert (done.result.content, done.result.is_error) == ("5", False)


@pytest.mark.parametrize("strategy", ["sequential", "concurrent"])
async def test_golden_two_step_run_with_one_tool_call(
    make_agent: Callable[..., Agent], recorder: RunRecorder, temp_plugin: Any, strategy: str
) -> None:
    observer = temp_plugin(Observer())
    agent, model, tools = golden_agent(make_agent, strategy)
    await check_golden(agent, model, tools, recorder, observer)


def test_golden_transcript_under_both_backends(run_async: Any) -> None:
    def make(*plugins: object) -> Agent:
        return Agent(model="scripted", plugins=[*plugins, observer, recorder], autoload=False)

    recorder, observer = RunRecorder(), Observer()
    agent, model, tools = golden_agent(make)
    run_async(check_golden, agent, model, tools, recorder, observer)


async def test_golden_resume_of_the_finished_run(make_agent: Callable[..., Agent], recorder: RunRecorder) -> None:
    agent, model, tools = golden_agent(make_agent)
    first = await agent.run("What is 2+3?", run_id="golden")
    entries = await agent.journal.load("golden")
    recorder.clear()
    again = await agent.resume("golden")
    assert recorder.calls == [], "a finished run is not run again: no hook fires"
    assert len(await agent.journal.load("golden")) == len(entries), "and nothing is journaled"
    assert (again.reason, again.output, list(again.state.messages)) == (first.reason, first.output, GOLDEN_MESSAGES)
    assert len(model.requests) == 2 and len(tools.invocations) == 1
