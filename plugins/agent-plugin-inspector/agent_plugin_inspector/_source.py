"""What the inspector reads: the `Source` protocol and `SqliteSource`, its SQLite implementation.

The web app never touches a database itself: it asks a `Source` for pages of runs,
one run's entries by step range, pending approval requests and threads. Everything a
source returns is plain data (`RunRow`, `RawEntry`, `PendingRequest`, `ThreadRow`),
so another journal (PostgreSQL) only needs another `Source`; the conformance check
`agent_plugin_inspector.testing.check_source` says what each method must do.

`SqliteSource` opens the journal file **read-only** (``mode=ro``), in worker threads,
one short transaction per call: the runs the page shows never wait for it, and it
never writes, migrates or locks the file for writing.
"""

from __future__ import annotations

import json
import os
import pathlib
import sqlite3
import threading
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Protocol, TypeVar, runtime_checkable

import anyio.to_thread
from attrs import frozen

from agent_kernel.errors import AgentError, JournalCorrupt

__all__ = [
    "RUN_STATUSES",
    "PendingRequest",
    "RawEntry",
    "RunPage",
    "RunRow",
    "Source",
    "SourceUnavailable",
    "SqliteSource",
    "StepIndex",
    "ThreadRow",
    "pending_requests",
]

T = TypeVar("T")

#: Statuses a run can have in a journal (``new``: claimed, nothing appended yet).
RUN_STATUSES = ("running", "suspended", "completed", "stopped", "cancelled", "error", "new")


class SourceUnavailable(AgentError):
    """The journal cannot be read (missing file, not a journal, locked too long)."""


@frozen
class RunRow:
    """One line of the run list: what the journal knows about a run, plus counts from its entries.

    Attributes:
        id: the run id.
        key: the source's ordering key (newest first = highest key); keyset pages use it.
        status: running, suspended, completed, stopped, cancelled, error or new.
        model: the model of the last invocation.
        created: when the run was first claimed (seconds since the epoch).
        updated: when it was last claimed or appended to.
        entries: how many journal entries it has.
        steps: the last step an LLM answered in.
        tool_calls: tool results recorded.
        tool_errors: tool results marked as errors.
        input_tokens: tokens sent, summed over the recorded responses.
        output_tokens: tokens received.
        attempts: invocations that claimed the run.
    """

    id: str
    key: int
    status: str
    model: str
    created: float
    updated: float
    entries: int
    steps: int = 0
    tool_calls: int = 0
    tool_errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    attempts: int = 0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def duration(self) -> float:
        return max(0.0, self.updated - self.created)


@frozen
class RunPage:
    """A page of runs, newest first; `next_before` is the key for the next (older) page, or None."""

    rows: tuple[RunRow, ...]
    next_before: int | None
    total: int


@frozen
class RawEntry:
    """One journal entry as stored: its position, the attempt that wrote it, its kind and JSON data."""

    seq: int
    attempt: int
    kind: str
    data: dict[str, Any]


@frozen
class StepIndex:
    """Where each step starts in a run's journal: ``starts[i]`` is the seq of step ``i + 1``'s first entry."""

    starts: tuple[int, ...]
    length: int

    @property
    def steps(self) -> int:
        return len(self.starts)

    def seq_range(self, first: int, last: int) -> tuple[int, int]:
        """Entries ``[lo, hi)`` covering steps `first`..`last` (step 0: what precedes step 1)."""
        n = len(self.starts)
        lo = 0 if first <= 1 else self.starts[min(first, n) - 1]
        hi = self.length if last >= n else self.starts[last]
        return lo, hi


@frozen
class PendingRequest:
    """An approval request waiting for a decision.

    Attributes:
        id: the request id (what `Approve`/`Deny` are keyed on).
        run_id: its run.
        step: the step of the call.
        call_id: the tool call's id.
        tool: the tool's name.
        arguments: the call's arguments (JSON object).
        reason: why it needs a decision.
        plugin: the plugin that suspended the call.
        since: when the run suspended (the run's last update).
    """

    id: str
    run_id: str
    step: int
    call_id: str
    tool: str
    arguments: dict[str, Any]
    reason: str
    plugin: str
    since: float


@frozen
class ThreadRow:
    """A thread: a named conversation made of runs (oldest first)."""

    id: str
    name: str
    created: float
    updated: float
    archived: bool
    parent_id: str | None
    fork_run_id: str | None
    run_ids: tuple[str, ...]


@runtime_checkable
class Source(Protocol):
    """What the inspector reads. Every method is async and must not block the event loop.

    Implementations hold no state between calls that a journal writer could make stale:
    each call reads what is committed at that moment.
    """

    label: str

    async def run_page(
        self, *, status: str | None = None, thread: str | None = None, before: int | None = None, limit: int = 50
    ) -> RunPage:
        """Runs newest first, `limit` of them, older than key `before`, filtered by status and thread."""

    async def status_counts(self, *, thread: str | None = None) -> dict[str, int]:
        """How many runs have each status (only statuses that occur)."""

    async def run(self, run_id: str) -> RunRow | None:
        """One run's row, or None."""

    async def step_index(self, run_id: str) -> StepIndex:
        """Where each step of the run starts."""

    async def entries(self, run_id: str, *, lo: int = 0, hi: int | None = None) -> list[RawEntry]:
        """The run's entries with ``lo <= seq < hi`` (to the end when `hi` is None), in order."""

    async def pending(self, *, run_id: str | None = None, limit: int = 200) -> list[PendingRequest]:
        """Pending approval requests of suspended runs (of one run), most recently suspended first."""

    async def threads(self, *, archived: bool | None = False) -> list[ThreadRow]:
        """Threads, newest first (active ones by default, archived ones, or all with None)."""

    async def thread(self, thread_id: str) -> ThreadRow | None:
        """One thread, or None."""

    async def threads_of(self, run_id: str) -> list[str]:
        """Ids of the threads holding `run_id`, oldest first."""

    async def aclose(self) -> None:
        """Release connections."""


def pending_requests(run_id: str, since: float, entries: Sequence[RawEntry]) -> list[PendingRequest]:
    """The approval requests still pending after `entries` (a run's Suspend patches, Waiting
    entries and Decided entries, with the Inferred entries that carry the calls).

    Mirrors the kernel's fold: a ``Suspend`` patch committed in ``before_tool_execute``
    (or a ``Waiting`` entry) opens request ``{run}/{step}/{call}``; a ``Decided`` entry closes it.
    """
    calls: dict[tuple[int, str], dict[str, Any]] = {}
    found: dict[str, PendingRequest] = {}
    decided: set[str] = set()
    for entry in entries:
        data = entry.data
        if entry.kind == "Inferred":
            step = int(data.get("step", 0))
            for call in data.get("response", {}).get("message", {}).get("tool_calls", ()):
                calls[(step, str(call.get("id")))] = call
        elif entry.kind == "Committed" and data.get("call_id"):
            step, call_id = int(data.get("step", 0)), str(data["call_id"])
            sources = data.get("sources") or []
            for i, patch in enumerate(data.get("patches") or ()):
                if patch.get("type") != "Suspend":
                    continue
                request_id = f"{run_id}/{step}/{call_id}"
                call = calls.get((step, call_id), {})
                found.setdefault(
                    request_id,
                    PendingRequest(
                        request_id,
                        run_id,
                        step,
                        call_id,
                        str(call.get("name", "")),
                        dict(call.get("arguments") or {}),
                        str(patch.get("reason", "")),
                        str(sources[i]) if i < len(sources) else "",
                        since,
                    ),
                )
        elif entry.kind == "Waiting":
            for request in data.get("requests") or ():
                call = request.get("call") or {}
                found.setdefault(
                    str(request["id"]),
                    PendingRequest(
                        str(request["id"]),
                        run_id,
                        int(request.get("step", data.get("step", 0))),
                        str(call.get("id", data.get("call_id", ""))),
                        str(request.get("tool", call.get("name", ""))),
                        dict(call.get("arguments") or {}),
                        str(request.get("reason", "")),
                        str(request.get("plugin", "")),
                        since,
                    ),
                )
        elif entry.kind == "Decided":
            decided.add(str(data.get("request_id")))
    return [request for request_id, request in found.items() if request_id not in decided]


_RUN_COLUMNS = "seq, id, status, meta, created, updated, length, attempt"
# Counts per run, from the entries that carry them (one range scan of the run's entries).
_STATS = """
SELECT run_id,
       MAX(CASE WHEN kind = 'Inferred' THEN json_extract(data, '$.step') END),
       SUM(kind = 'ToolDone'),
       SUM(CASE WHEN kind = 'ToolDone' THEN json_extract(data, '$.result.is_error') ELSE 0 END),
       SUM(CASE WHEN kind = 'Inferred' THEN json_extract(data, '$.response.usage.input_tokens') ELSE 0 END),
       SUM(CASE WHEN kind = 'Inferred' THEN json_extract(data, '$.response.usage.output_tokens') ELSE 0 END)
FROM entries
WHERE run_id IN ({marks}) AND kind IN ('Inferred', 'ToolDone')
GROUP BY run_id
"""


class SqliteSource:
    """A `Source` over an agent-plugin-sqlite journal file, opened read-only.

    Args:
        path: the journal file (it must exist).
        timeout: seconds to wait for a writer's lock before giving up.

    Counts derived from entries (steps, tool calls, tokens) are cached per run and
    per entry count, so a page of finished runs costs one query after the first view.
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 5.0) -> None:
        self.path = os.fspath(path)
        self.label = f"SQLite journal {self.path}"
        self.timeout = timeout
        self._lock = threading.Lock()
        self._pool: list[sqlite3.Connection] = []
        self._stats: dict[str, tuple[int, tuple[int, int, int, int, int]]] = {}

    def __repr__(self) -> str:
        return f"SqliteSource({self.path!r})"

    # ------------------------------------------------------------------ plumbing

    def _connect(self) -> sqlite3.Connection:
        file = pathlib.Path(self.path)
        if not file.is_file():
            raise SourceUnavailable(f"journal file {self.path} does not exist")
        try:
            conn = sqlite3.connect(
                file.absolute().as_uri() + "?mode=ro",
                uri=True,
                timeout=self.timeout,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise SourceUnavailable(f"journal file {self.path} cannot be opened: {exc}") from exc
        return conn

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            conn = self._pool.pop() if self._pool else None
        if conn is None:
            conn = self._connect()
        keep = False
        try:
            conn.execute("BEGIN")
            try:
                self._check(conn)
                result = fn(conn)
            finally:
                conn.execute("ROLLBACK")
            keep = True
            return result
        except sqlite3.Error as exc:
            raise SourceUnavailable(f"journal file {self.path} cannot be read: {exc}") from exc
        finally:
            if keep:
                with self._lock:
                    if len(self._pool) < 4:
                        self._pool.append(conn)
                        conn = None
            if conn is not None:
                conn.close()

    def _check(self, conn: sqlite3.Connection) -> None:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        missing = {"runs", "entries", "threads", "thread_runs"} - tables
        if missing:
            raise SourceUnavailable(
                f"journal file {self.path} is not an agent-kernel SQLite journal (no table {', '.join(sorted(missing))})"
            )

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await anyio.to_thread.run_sync(self._call, fn)

    async def aclose(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, []
        for conn in pool:
            conn.close()

    # ------------------------------------------------------------------ runs

    async def run_page(
        self, *, status: str | None = None, thread: str | None = None, before: int | None = None, limit: int = 50
    ) -> RunPage:
        return await self._read(partial(self._run_page, status, thread, before, max(1, min(int(limit), 500))))

    def _where(self, status: str | None, thread: str | None) -> tuple[list[str], list[Any]]:
        where: list[str] = []
        params: list[Any] = []
        if status:
            where.append("r.status = ?")
            params.append(status)
        if thread:
            where.append("r.id IN (SELECT run_id FROM thread_runs WHERE thread_id = ?)")
            params.append(thread)
        return where, params

    def _run_page(
        self, status: str | None, thread: str | None, before: int | None, limit: int, conn: sqlite3.Connection
    ) -> RunPage:
        where, params = self._where(status, thread)
        total = conn.execute(
            "SELECT COUNT(*) FROM runs r" + (" WHERE " + " AND ".join(where) if where else ""), params
        ).fetchone()[0]
        if before is not None:
            where.append("r.seq < ?")
            params.append(int(before))
        sql = f"SELECT {_RUN_COLUMNS} FROM runs r"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = conn.execute(sql + " ORDER BY r.seq DESC LIMIT ?", [*params, limit + 1]).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        runs = self._with_stats(conn, rows)
        return RunPage(tuple(runs), runs[-1].key if more and runs else None, int(total))

    def _with_stats(self, conn: sqlite3.Connection, rows: Sequence[Sequence[Any]]) -> list[RunRow]:
        missing = [row[1] for row in rows if self._stats.get(row[1], (-1,))[0] != row[6]]
        if missing:
            found = {
                r[0]: tuple(int(v or 0) for v in r[1:])
                for r in conn.execute(_STATS.format(marks=",".join("?" * len(missing))), missing)
            }
            for row in rows:
                if row[1] in missing:
                    stats = found.get(row[1], (0, 0, 0, 0, 0))
                    self._stats[row[1]] = (row[6], stats)  # type: ignore[assignment]
            if len(self._stats) > 20_000:  # a bound, not a policy: drop the oldest half
                for key in list(self._stats)[:10_000]:
                    del self._stats[key]
        out = []
        for seq, run_id, status, meta, created, updated, length, attempt in rows:
            steps, tools, errors, tin, tout = self._stats[run_id][1]
            out.append(
                RunRow(
                    run_id,
                    seq,
                    status,
                    _model(meta),
                    created,
                    updated,
                    length,
                    steps,
                    tools,
                    errors,
                    tin,
                    tout,
                    attempt,
                )
            )
        return out

    async def status_counts(self, *, thread: str | None = None) -> dict[str, int]:
        def op(conn: sqlite3.Connection) -> dict[str, int]:
            where, params = self._where(None, thread)
            sql = "SELECT r.status, COUNT(*) FROM runs r" + (" WHERE " + " AND ".join(where) if where else "")
            return {status: n for status, n in conn.execute(sql + " GROUP BY r.status", params)}

        return await self._read(op)

    async def run(self, run_id: str) -> RunRow | None:
        def op(conn: sqlite3.Connection) -> RunRow | None:
            row = conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs r WHERE id = ?", (run_id,)).fetchone()
            return self._with_stats(conn, [row])[0] if row is not None else None

        return await self._read(op)

    async def step_index(self, run_id: str) -> StepIndex:
        def op(conn: sqlite3.Connection) -> StepIndex:
            length = conn.execute("SELECT length FROM runs WHERE id = ?", (run_id,)).fetchone()
            starts: dict[int, int] = {}
            # a step starts at its first entry: its StepStart, or (a quiet StepStart is not
            # journaled) whatever comes first; RunStart and RunEnd carry the step they are in
            for seq, step in conn.execute(
                "SELECT seq, json_extract(data, '$.step') FROM entries WHERE run_id = ?"
                " AND kind IN ('Committed', 'Inferred', 'Intended', 'ToolDone', 'Waiting')"
                " AND json_extract(data, '$.step') > 0"
                " AND NOT (kind = 'Committed' AND json_extract(data, '$.phase') IN ('run_start', 'run_end'))"
                " ORDER BY seq",
                (run_id,),
            ):
                starts.setdefault(int(step), seq)  # a resumed step keeps its first start
            ordered = tuple(starts[s] for s in sorted(starts))
            return StepIndex(ordered, int(length[0]) if length else 0)

        return await self._read(op)

    async def entries(self, run_id: str, *, lo: int = 0, hi: int | None = None) -> list[RawEntry]:
        def op(conn: sqlite3.Connection) -> list[RawEntry]:
            rows = conn.execute(
                "SELECT seq, attempt, kind, data FROM entries WHERE run_id = ? AND seq >= ? AND seq < ? ORDER BY seq",
                (run_id, lo, (1 << 62) if hi is None else hi),
            ).fetchall()
            return [RawEntry(seq, attempt, kind, self._json(data, run_id, seq)) for seq, attempt, kind, data in rows]

        return await self._read(op)

    def _json(self, text: str, run_id: str, seq: int) -> dict[str, Any]:
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise JournalCorrupt(f"journal file {self.path}: run {run_id!r}, entry {seq} is not JSON") from exc
        return value if isinstance(value, dict) else {"value": value}

    # ------------------------------------------------------------------ approvals

    async def pending(self, *, run_id: str | None = None, limit: int = 200) -> list[PendingRequest]:
        def op(conn: sqlite3.Connection) -> list[PendingRequest]:
            if run_id is None:
                runs = conn.execute(
                    "SELECT id, updated FROM runs WHERE status = 'suspended' ORDER BY updated DESC LIMIT ?", (limit,)
                ).fetchall()
            else:
                runs = conn.execute("SELECT id, updated FROM runs WHERE id = ?", (run_id,)).fetchall()
            by_run: dict[str, list[RawEntry]] = {rid: [] for rid, _ in runs}
            for start in range(0, len(runs), 500):  # one query per 500 runs (SQLite's variable limit)
                ids = [rid for rid, _ in runs[start : start + 500]]
                for rid, s, a, k, d in conn.execute(
                    "SELECT run_id, seq, attempt, kind, data FROM entries"
                    f" WHERE run_id IN ({','.join('?' * len(ids))}) AND (kind IN ('Inferred', 'Waiting', 'Decided')"
                    " OR (kind = 'Committed' AND data LIKE '%\"Suspend\"%')) ORDER BY run_id, seq",
                    ids,
                ):
                    by_run[rid].append(RawEntry(s, a, k, self._json(d, rid, s)))
            out: list[PendingRequest] = []
            for rid, updated in runs:
                out.extend(pending_requests(rid, updated, by_run[rid]))
            return out[:limit]

        return await self._read(op)

    # ------------------------------------------------------------------ threads

    _THREADS = "SELECT id, name, created, updated, archived, parent_id, fork_run_id FROM threads"

    def _threads(self, conn: sqlite3.Connection, rows: Sequence[Sequence[Any]]) -> list[ThreadRow]:
        if not rows:
            return []
        ids = [row[0] for row in rows]
        runs: dict[str, list[str]] = {}
        for thread_id, run_id in conn.execute(
            f"SELECT thread_id, run_id FROM thread_runs WHERE thread_id IN ({','.join('?' * len(ids))})"
            " ORDER BY thread_id, position",
            ids,
        ):
            runs.setdefault(thread_id, []).append(run_id)
        return [
            ThreadRow(row[0], row[1], row[2], row[3], bool(row[4]), row[5], row[6], tuple(runs.get(row[0], ())))
            for row in rows
        ]

    async def threads(self, *, archived: bool | None = False) -> list[ThreadRow]:
        def op(conn: sqlite3.Connection) -> list[ThreadRow]:
            where, params = ("", ()) if archived is None else (" WHERE archived = ?", (int(archived),))
            return self._threads(conn, conn.execute(self._THREADS + where + " ORDER BY seq DESC", params).fetchall())

        return await self._read(op)

    async def thread(self, thread_id: str) -> ThreadRow | None:
        def op(conn: sqlite3.Connection) -> ThreadRow | None:
            found = self._threads(conn, conn.execute(self._THREADS + " WHERE id = ?", (thread_id,)).fetchall())
            return found[0] if found else None

        return await self._read(op)

    async def threads_of(self, run_id: str) -> list[str]:
        def op(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                "SELECT t.id FROM thread_runs tr JOIN threads t ON t.id = tr.thread_id"
                " WHERE tr.run_id = ? ORDER BY t.seq",
                (run_id,),
            )
            return [row[0] for row in rows]

        return await self._read(op)


def _model(meta: str) -> str:
    try:
        value = json.loads(meta)
    except (TypeError, ValueError):
        return ""
    return str(value.get("model", "")) if isinstance(value, dict) else ""
