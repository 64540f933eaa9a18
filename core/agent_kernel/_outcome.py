"""What `Agent.run` and `Agent.resume` return."""

from __future__ import annotations

from typing import final

from attrs import frozen

from ._state import ApprovalRequest, Reason, RunState, StopInfo, Usage
from .journal import ErrorInfo


@frozen
class Stats:
    """Counts over the whole run (all invocations), folded from the journal.

    `tool_calls` counts executions started (`Intended` entries): a call whose
    result was lost in a crash and that is run again counts twice, as it ran twice.
    `duration` is the wall-clock seconds of this invocation.
    """

    steps: int = 0
    llm_calls: int = 0
    tool_calls: int = 0
    tool_errors: int = 0
    retries: int = 0
    duration: float = 0.0


@final
@frozen
class Outcome:
    """How an invocation ended.

    Attributes:
        reason: completed, stopped, cancelled, suspended or error.
        output: the final assistant text ("" if there is none).
        run_id: the run's id, the handle for `resume`.
        usage: tokens and requests spent over the whole run.
        stats: see `Stats`.
        state: the final `RunState`.
        pending: approval requests, when `reason` is suspended.
        error: plugin, hook and message, when `reason` is error (or cancelled by a timeout).
        stop: code and detail, when `reason` is stopped.
    """

    reason: Reason
    output: str
    run_id: str
    usage: Usage
    stats: Stats
    state: RunState
    pending: tuple[ApprovalRequest, ...] = ()
    error: ErrorInfo | None = None
    stop: StopInfo | None = None
