"""Exceptions of the kernel. Each message names what was wrong and where."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._state import ApprovalRequest

__all__ = [
    "AgentError",
    "ConfigurationError",
    "InferenceError",
    "JournalAppendFailed",
    "JournalCorrupt",
    "JournalUnavailable",
    "MissingComponent",
    "PatchConflict",
    "PluginError",
    "PluginLoadError",
    "RunExists",
    "StaleAttempt",
    "ToolInputError",
    "ToolSuspended",
    "UnknownRequest",
    "UnknownRun",
]


class AgentError(Exception):
    """Base class of every error the kernel raises."""


class PluginLoadError(AgentError):
    """A plugin could not be loaded: duplicate name, unknown hook, bad entry point."""


class PluginError(AgentError):
    """A plugin broke the hook contract (illegal patch, wrong return shape)."""

    def __init__(self, message: str, *, plugin: str, hook: str) -> None:
        super().__init__(f"{plugin}.{hook}: {message}")
        self.plugin = plugin
        self.hook = hook


class PatchConflict(AgentError):
    """Two concurrent tool calls set the same state key and its merge rule forbids it.

    Attributes:
        key: the state key's name.
        calls: the ids of the two tool calls, in call order.
        plugins: the plugins whose patches conflict, in the same order ("" when unknown).
    """

    def __init__(
        self, message: str, *, key: str = "", calls: tuple[str, str] = ("", ""), plugins: tuple[str, str] = ("", "")
    ) -> None:
        super().__init__(message)
        self.key = key
        self.calls = calls
        self.plugins = plugins


class MissingComponent(AgentError):
    """Something the run needs (an LLM executor, a tool strategy) is not registered."""


class ConfigurationError(AgentError):
    """Two plugins registered the same thing, or a registration is malformed."""


class UnknownRun(AgentError):
    """`resume` was asked for a run the journal has never seen."""


class UnknownRequest(AgentError):
    """A decision names an approval request the run never had."""


class StaleAttempt(AgentError):
    """A newer attempt has claimed the run; this one may not commit (fencing)."""


class JournalAppendFailed(AgentError):
    """An append to the journal failed; the invocation ended without writing anything more.

    The run is resumable from the last entry the journal holds: no side effect
    happened after it (entries are appended before every side effect).
    """


class JournalCorrupt(AgentError):
    """A journal could not be read back: truncated, corrupted or from a newer schema."""


class JournalUnavailable(AgentError):
    """A journal cannot be used right now: its file stayed locked, its database is down
    or unreachable, the disk is full... Unlike `JournalCorrupt`, trying again later may
    work; the run stays resumable."""


class RunExists(AgentError):
    """`run(..., run_id=)` named a run the journal already holds: `resume` continues it."""


class ToolInputError(AgentError):
    """Raised by a tool executor when the model's arguments are invalid.

    The message goes to the model as an error result; the call is not retried.
    """


class ToolSuspended(Exception):
    """Raised by a tool to suspend its run until `requests` are decided.

    For tools that wrap a run of their own (a sub-agent waiting for approval): the
    kernel journals the requests, which join the run's pending approval requests,
    and the run ends ``suspended``. Once every one is decided (``resume(run_id,
    decisions=...)`` or an approver), the tool is called again, whether or not it is
    idempotent, with the decisions in `ToolContext.decisions`; it may finish, or
    suspend again with new requests. Request ids must be unique within the run
    (prefix them with the call's idempotency key, as child run ids are).

    Args:
        requests: the `ApprovalRequest`s to decide, at least one.
    """

    def __init__(self, requests: Sequence[ApprovalRequest]) -> None:
        requests = tuple(requests)
        if not requests:
            raise ValueError("ToolSuspended needs at least one ApprovalRequest")
        super().__init__(f"waiting for {', '.join(r.id for r in requests)}")
        self.requests = requests


class InferenceError(AgentError):
    """Raised by an LLM executor when a request fails.

    Args:
        message: what the server answered, for humans and the model log.
        retryable: whether trying again may succeed (rate limits, 5xx, timeouts).
        retry_after: seconds the server asked us to wait, if it said.
        status: the HTTP status, when there was one.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = False,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status
