"""The journal: an append-only log of a run's committed entries.

A run's state is the fold of its journal. The kernel appends entries in batches,
always before the next side effect (an LLM request, a tool call) starts, so a crash
loses nothing that had an effect. `resume` loads the entries, folds them, and
continues at the first uncommitted phase.

Journals implement the `Journal` protocol; `MemoryJournal` is the core's default
and the reference the conformance suite (`agent_kernel.testing.check_journal`) is
written against. Persistent journals come from plugins (`agent-plugin-sqlite`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

from attrs import field, frozen

from ._state import ApprovalRequest, Decision, Response, ToolResult, freeze_mapping
from .errors import AgentError, StaleAttempt
from .patches import Patch

__all__ = [
    "Codec",
    "Committed",
    "Decided",
    "Ended",
    "Entry",
    "ErrorInfo",
    "Inferred",
    "Intended",
    "Journal",
    "MemoryJournal",
    "Retried",
    "RunInfo",
    "Started",
    "Thread",
    "ThreadExists",
    "ThreadNotFound",
    "ToolDone",
    "Waiting",
    "check_append",
    "expand",
]


@frozen
class ErrorInfo:
    """Why a run failed: the `plugin` and `hook` that raised (if any) and the message."""

    message: str
    plugin: str = ""
    hook: str = ""
    type: str = ""


@frozen
class Entry:
    """Base class of journal entries."""


@frozen
class Started(Entry):
    """An invocation began. The run's first one carries its `input` (other invocations: None).

    `tools` names the tools the invoking agent had loaded (None in journals of format
    version 1), so a resume can tell a tool missing *here* from one the model made up.
    `quiet` names the phases no plugin of the invoking agent implements (format 3;
    empty in older journals): this invocation journals them only when they carry a
    patch, and each one it passed is implied by the next entry (`expand` writes them out).
    """

    attempt: int
    model: str
    input: str | None = None
    instructions: str | None = None
    tools: tuple[str, ...] | None = None
    quiet: tuple[str, ...] = ()


@frozen
class Committed(Entry):
    """A phase committed with these patches (in pluggy call order).

    `sources` names the plugin that returned each patch (same length as `patches`).
    """

    phase: str
    step: int
    patches: tuple[Patch, ...] = ()
    sources: tuple[str, ...] = ()
    call_id: str | None = None


@frozen
class Inferred(Entry):
    """An LLM response was received for `step`."""

    step: int
    response: Response


@frozen
class Intended(Entry):
    """A tool call is about to run with these arguments (its intent)."""

    step: int
    call_id: str
    arguments: Mapping[str, Any] = field(converter=freeze_mapping, hash=False)


@frozen
class ToolDone(Entry):
    """A tool call's result is known (ran, failed, or its outcome is unknown)."""

    step: int
    call_id: str
    result: ToolResult


@frozen
class Waiting(Entry):
    """A tool call suspended its run (`ToolSuspended`) until `requests` are decided."""

    step: int
    call_id: str
    requests: tuple[ApprovalRequest, ...]


@frozen
class Decided(Entry):
    """A decision for an approval request was applied."""

    request_id: str
    decision: Decision


@frozen
class Retried(Entry):
    """A failed inference or tool call was scheduled for another attempt."""

    what: str
    attempt: int
    delay: float
    error: str
    model: str = ""


@frozen
class Ended(Entry):
    """An invocation ended with this reason (and error, when it failed)."""

    reason: str
    error: ErrorInfo | None = None


class ThreadNotFound(AgentError, LookupError):
    """No thread with this id in the journal."""


class ThreadExists(AgentError, ValueError):
    """A thread with this id already exists in the journal."""


def _frozen_json(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(value or {}))


@frozen
class RunInfo:
    """What a persistent journal knows about a run without decoding its entries
    (``run_info`` of the SQLite and PostgreSQL journals).

    Attributes:
        id: the run id.
        created: when the run was first claimed (seconds since the epoch).
        updated: when it was last claimed or appended to.
        attempt: the latest attempt (the fencing token `claim` handed out last).
        status: ``new`` (claimed, nothing appended yet), ``running`` (an invocation
            started and has not ended) or the reason of the last invocation's end
            (``completed``, ``stopped``, ``cancelled``, ``suspended``, ``error``).
        entries: the number of journaled entries.
        model: the model string of the last invocation.
    """

    id: str
    created: float
    updated: float
    attempt: int
    status: str
    entries: int
    model: str = ""


@frozen
class Thread:
    """A thread: a named conversation made of runs, in order (kept by persistent
    journals for memory plugins).

    Attributes:
        id: the thread id.
        name: a human name (may be empty).
        created: when it was created (seconds since the epoch).
        updated: when it was last changed (run added, renamed, archived).
        archived: archived threads are left out of ``list_threads`` by default.
        parent_id: for a fork, the thread it was forked from.
        fork_run_id: for a fork, the parent's last run the fork shares with it
            (None when the parent had no run yet).
        run_ids: the thread's runs, oldest first (a fork starts with the runs it shares).
        metadata: free JSON-serialisable data owned by whoever created the thread.
    """

    id: str
    name: str
    created: float
    updated: float
    archived: bool
    parent_id: str | None
    fork_run_id: str | None
    run_ids: tuple[str, ...]
    metadata: Mapping[str, Any] = field(converter=_frozen_json, hash=False)


FINISHED = frozenset({"completed", "stopped"})
"""`Ended` reasons of a finished run: resuming it returns its outcome and calls nothing."""


@runtime_checkable
class Codec(Protocol):
    """Turns entries into JSON text and back (given to journals that persist)."""

    def encode(self, entry: Entry) -> str: ...
    def decode(self, text: str) -> Entry: ...


@runtime_checkable
class Journal(Protocol):
    """Where runs are journaled. All methods are async and must not block the loop.

    Claim, then load, then append conditionally (DESIGN §4): an invocation first
    `claim`s the run (a new attempt number), then `load`s what is committed, and
    every `append` is accepted only if its attempt is still the newest **and** the
    log holds exactly `at` entries (where this attempt last saw its end), both
    checked in the same transaction as the write (`check_append` states the rule).
    Anything else raises `StaleAttempt` and writes nothing, so a stale worker can
    never commit after a newer one took over, nor on a view that is no longer the
    log's end.
    """

    def bind(self, codec: Codec) -> None:
        """Receive the agent's codec before first use (persisting journals keep it)."""

    async def claim(self, run_id: str) -> int:
        """Start a new attempt on `run_id` and return its number (1 for a new run)."""

    async def append(self, run_id: str, attempt: int, entries: Sequence[Entry], *, at: int) -> None:
        """Durably append `entries` after the first `at`; raise `StaleAttempt` as `check_append` says."""

    async def load(self, run_id: str) -> list[Entry]:
        """All entries of `run_id` in order; an empty list for an unknown run."""

    async def runs(self) -> list[str]:
        """Ids of all journaled runs, oldest first."""


def expand(run_id: str, entries: Sequence[Entry]) -> list[Entry]:
    """A run's `entries` with a `Committed` entry, without patches, for each phase an
    invocation passed quietly (`Started.quiet`), where it passed it: every phase the
    run went through, as journals of format 2 recorded them. For readers that walk a
    run phase by phase (timelines, forks at a step). Approval request ids are made
    from `run_id`, so it must be the run's own.

    Raises:
        JournalCorrupt: an entry does not fold onto the entries before it (naming `run_id`).
    """
    from ._cursor import expand as _expand

    return _expand(run_id, entries)


def check_append(run_id: str, attempt: int, latest: int, at: int, length: int) -> None:
    """The append rule: `attempt` may append after `at` entries only if it is the newest
    attempt (`latest`; 0 when the run was never claimed) and the log holds `length == at`
    entries. Journals call it inside the transaction that writes.

    Raises:
        StaleAttempt: naming the run and what this attempt got wrong; nothing may be written.
    """
    if latest == 0:
        raise StaleAttempt(f"run {run_id!r}: attempt {attempt} may not commit, the run was never claimed")
    if attempt != latest:
        raise StaleAttempt(f"run {run_id!r}: attempt {attempt} may not commit, attempt {latest} holds the run")
    if at != length:
        raise StaleAttempt(
            f"run {run_id!r}: attempt {attempt} may not commit after entry {at}, the log holds {length} entries"
        )


class MemoryJournal:
    """The in-memory journal: the default, and the reference for conformance tests.

    Retention: it keeps every unfinished run (running, suspended, cancelled, failed:
    all resumable) and the `keep` most recently finished ones (completed or stopped);
    an older finished run is dropped, so a long-lived `Agent` running many short runs
    stays flat in memory. ``keep=None`` keeps everything (tests that inspect old runs).

    Args:
        keep: how many finished runs to keep (at least 0), or None for all.
    """

    def __init__(self, *, keep: int | None = 1000) -> None:
        if keep is not None and keep < 0:
            raise ValueError(f"keep must be at least 0 or None, got {keep!r}")
        self.keep = keep
        self._entries: dict[str, list[Entry]] = {}
        self._attempts: dict[str, int] = {}
        self._finished: dict[str, None] = {}  # finished run ids, oldest first

    def bind(self, codec: Codec) -> None:
        """Nothing to do: entries are kept as objects."""

    async def claim(self, run_id: str) -> int:
        attempt = self._attempts.get(run_id, 0) + 1
        self._attempts[run_id] = attempt
        self._entries.setdefault(run_id, [])
        return attempt

    async def append(self, run_id: str, attempt: int, entries: Sequence[Entry], *, at: int) -> None:
        log = self._entries.get(run_id, [])
        check_append(run_id, attempt, self._attempts.get(run_id, 0), at, len(log))
        log.extend(entries)
        if self.keep is not None and entries and type(last := entries[-1]) is Ended:
            self._finished.pop(run_id, None)
            if last.reason in FINISHED:
                self._finished[run_id] = None
                while len(self._finished) > self.keep:
                    dropped = next(iter(self._finished))
                    del self._finished[dropped], self._entries[dropped], self._attempts[dropped]

    async def load(self, run_id: str) -> list[Entry]:
        return list(self._entries.get(run_id, ()))

    async def runs(self) -> list[str]:
        return list(self._entries)
