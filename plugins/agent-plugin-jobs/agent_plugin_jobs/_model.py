"""Jobs as values: statuses, the state machine, progress, history, errors."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Literal

from attrs import field, frozen

from agent_kernel.errors import AgentError

Status = Literal["queued", "running", "paused", "suspended", "completed", "stopped", "failed", "cancelled"]

STATUSES: tuple[Status, ...] = (
    "queued",
    "running",
    "paused",
    "suspended",
    "completed",
    "stopped",
    "failed",
    "cancelled",
)

#: Every legal status change. A worker takes ``queued`` jobs (``running``); a run ends
#: ``completed``, ``stopped``, ``failed`` (outcome error) or ``suspended`` (waiting for an
#: approval); pause and cancel interrupt it (``paused``, ``cancelled``); a worker that
#: shuts down or dies puts it back (``queued``). ``resume`` queues a paused, suspended or
#: failed job again. ``completed``, ``stopped`` and ``cancelled`` are final.
TRANSITIONS: Mapping[Status, frozenset[Status]] = MappingProxyType(
    {
        "queued": frozenset({"running", "paused", "cancelled"}),
        "running": frozenset({"queued", "completed", "stopped", "failed", "suspended", "paused", "cancelled"}),
        "paused": frozenset({"queued", "cancelled"}),
        "suspended": frozenset({"queued", "cancelled"}),
        "failed": frozenset({"queued", "cancelled"}),
        "completed": frozenset(),
        "stopped": frozenset(),
        "cancelled": frozenset(),
    }
)

#: Statuses no transition leaves.
FINAL: frozenset[Status] = frozenset(s for s, targets in TRANSITIONS.items() if not targets)

#: Statuses in which nothing happens to a job until somebody acts: all but queued and running.
SETTLED: frozenset[Status] = frozenset(STATUSES) - {"queued", "running"}

#: What a run's outcome reason makes of its job.
OUTCOME_STATUS: Mapping[str, Status] = MappingProxyType(
    {"completed": "completed", "stopped": "stopped", "error": "failed", "suspended": "suspended"}
)

Request = Literal["pause", "cancel"]


class JobsError(AgentError):
    """Base class of the errors of agent-plugin-jobs."""


class UnknownJob(JobsError, LookupError):
    """No job has this id."""


class IllegalTransition(JobsError, ValueError):
    """The operation would move a job along a transition the state machine forbids."""


class JobStoreError(JobsError):
    """The jobs file cannot be used: newer schema, another application's file, corrupted, locked."""


def check_transition(job_id: str, old: Status, new: Status, operation: str) -> None:
    """Raise `IllegalTransition` unless ``old -> new`` is in `TRANSITIONS`."""
    if new not in TRANSITIONS[old]:
        allowed = ", ".join(sorted(TRANSITIONS[old])) or "none: the job is finished"
        raise IllegalTransition(
            f"job {job_id!r}: cannot {operation} a {old} job ({old} -> {new} is not allowed; from {old}: {allowed})"
        )


@frozen
class Progress:
    """How far a job's run got: steps (of `max_steps`, when known), tool calls, tokens."""

    steps: int = 0
    max_steps: int | None = None
    tool_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def fraction(self) -> float | None:
        """``steps / max_steps`` clamped to [0, 1], or None without a `max_steps`."""
        if not self.max_steps:
            return None
        return min(1.0, self.steps / self.max_steps)


@frozen
class PendingApproval:
    """An approval request a suspended job's run waits on (resume the job with a decision)."""

    id: str
    tool: str
    reason: str


def _frozen_map(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(value))


@frozen
class Job:
    """A background run and its bookkeeping, as last stored.

    Attributes:
        id: the job's id.
        run_id: the id of its run in the agent's journal (``agent.resume(run_id)``).
        input: the user message the run starts with.
        model: the model string (the agent factory decides what to do with it).
        agent: a free-form agent profile name for the agent factory ("" if none).
        metadata: free-form JSON-ready data for the agent factory.
        status: see `STATUSES` and `TRANSITIONS`.
        request: "pause" or "cancel" when asked of a running job and not yet applied.
        owner: the worker running it (while running).
        lease_until: wall-clock time until which the owner's claim holds.
        invocations: how many times a worker started or resumed its run.
        progress: see `Progress`.
        output: the run's final text, once it ended.
        error: why it failed (or was requeued), "" otherwise.
        pending: approval requests, when suspended.
        created: wall-clock time it was added.
        updated: wall-clock time of its last change.
    """

    id: str
    run_id: str
    input: str
    model: str
    agent: str
    metadata: Mapping[str, Any] = field(converter=_frozen_map)
    status: Status
    request: Request | None
    owner: str | None
    lease_until: float | None
    invocations: int
    progress: Progress
    output: str
    error: str
    pending: tuple[PendingApproval, ...]
    created: float
    updated: float


@frozen
class Change:
    """One entry of a job's history: a status change, in order (`seq` grows)."""

    seq: int
    job_id: str
    at: float
    old: Status | None
    new: Status
    detail: str = ""
