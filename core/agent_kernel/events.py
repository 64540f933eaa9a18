"""Typed, serialisable events a run emits, in order.

Every event has `run_id` and `seq`. `seq` strictly increases within a run, across
`run` and every later `resume`: it is `(journal position << 32) + n`, so events
emitted after journal entry N sort after everything emitted before it, even in
another process. Events are delivered to `agent.stream(...)` consumers and to
`agent_on_event` observers; they are built only when someone listens.
"""

from __future__ import annotations

from attrs import frozen

from ._state import ApprovalRequest, Message, ToolCall, ToolResult, Usage

__all__ = [
    "ApprovalRequested",
    "Event",
    "InferenceFinished",
    "InferenceStarted",
    "RetryScheduled",
    "RunEnded",
    "RunStarted",
    "StepEnded",
    "StepStarted",
    "TextDelta",
    "ToolCallDelta",
    "ToolCallFinished",
    "ToolCallStarted",
]


@frozen
class Event:
    """Base class: `seq` orders events within a run; `run_id` names the run."""

    seq: int
    run_id: str


@frozen
class RunStarted(Event):
    """RunStart committed. `resumed` is true for `resume`; `attempt` counts invocations."""

    resumed: bool
    attempt: int


@frozen
class StepStarted(Event):
    """StepStart committed for `step`."""

    step: int


@frozen
class InferenceStarted(Event):
    """BeforeInference committed; the request to `model` is about to be sent."""

    step: int
    model: str


@frozen
class TextDelta(Event):
    """A piece of the assistant's text as the executor streams it."""

    text: str


@frozen
class ToolCallDelta(Event):
    """A piece of a streamed tool call: `index` within the turn, `arguments` a JSON fragment."""

    index: int
    call_id: str
    name: str
    arguments: str


@frozen
class InferenceFinished(Event):
    """AfterInference committed: the assistant `message` and the `usage` it cost."""

    step: int
    message: Message
    usage: Usage
    stop_reason: str


@frozen
class ToolCallStarted(Event):
    """A tool call is about to run (its intent is journaled)."""

    step: int
    call: ToolCall


@frozen
class ToolCallFinished(Event):
    """AfterToolExecute committed for `call_id`, with the `result` the model will see."""

    step: int
    call_id: str
    name: str
    result: ToolResult


@frozen
class ApprovalRequested(Event):
    """A tool call was suspended and waits for a decision."""

    request: ApprovalRequest


@frozen
class RetryScheduled(Event):
    """A failed inference or tool call will be tried again after `delay` seconds."""

    what: str
    attempt: int
    delay: float
    error: str


@frozen
class StepEnded(Event):
    """StepEnd committed for `step`."""

    step: int


@frozen
class RunEnded(Event):
    """RunEnd committed; `reason` is the outcome's reason."""

    reason: str
    output: str
    error: str | None = None
