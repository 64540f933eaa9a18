"""The jobs file: a synchronous SQLite store, one transaction per operation.

`JobStore` is blocking; `JobQueue` calls it from worker threads. Every status change
goes through `_move`, which checks the state machine and appends the history row in
the same transaction, so the table and its history never disagree. The history table
refuses UPDATE and DELETE (triggers): it is append-only in the file itself.

Schema, versioned with ``PRAGMA user_version`` and marked with ``PRAGMA application_id``
(``0x41474B51``, "AGKQ"): ``MIGRATIONS[i]`` takes version ``i`` to ``i + 1``; pending ones
run on open in one ``BEGIN IMMEDIATE`` transaction. A released migration is never edited.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import pathlib
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from ._model import (
    STATUSES,
    Change,
    IllegalTransition,
    Job,
    JobStoreError,
    PendingApproval,
    Progress,
    Request,
    Status,
    UnknownJob,
    check_transition,
)

#: ``PRAGMA application_id`` of jobs files: "AGKQ".
APPLICATION_ID = 0x41474B51

_V1 = (
    """
    CREATE TABLE jobs (
        seq           INTEGER PRIMARY KEY,
        id            TEXT    NOT NULL UNIQUE,
        run_id        TEXT    NOT NULL UNIQUE,
        input         TEXT    NOT NULL,
        model         TEXT    NOT NULL,
        agent         TEXT    NOT NULL,
        meta          TEXT    NOT NULL,
        status        TEXT    NOT NULL,
        request       TEXT,
        owner         TEXT,
        lease_until   REAL,
        invocations   INTEGER NOT NULL DEFAULT 0,
        steps         INTEGER NOT NULL DEFAULT 0,
        max_steps     INTEGER,
        tool_calls    INTEGER NOT NULL DEFAULT 0,
        input_tokens  INTEGER NOT NULL DEFAULT 0,
        output_tokens INTEGER NOT NULL DEFAULT 0,
        output        TEXT    NOT NULL DEFAULT '',
        error         TEXT    NOT NULL DEFAULT '',
        pending       TEXT    NOT NULL DEFAULT '[]',
        decisions     TEXT    NOT NULL DEFAULT '{}',
        created       REAL    NOT NULL,
        updated       REAL    NOT NULL
    )
    """,
    "CREATE INDEX jobs_by_status ON jobs (status, seq)",
    """
    CREATE TABLE history (
        seq      INTEGER PRIMARY KEY,
        job_id   TEXT    NOT NULL REFERENCES jobs(id),
        at       REAL    NOT NULL,
        old      TEXT,
        new      TEXT    NOT NULL,
        detail   TEXT    NOT NULL DEFAULT ''
    )
    """,
    "CREATE INDEX history_by_job ON history (job_id, seq)",
    "CREATE TRIGGER history_no_update BEFORE UPDATE ON history BEGIN SELECT RAISE(ABORT, 'job history is append-only'); END",
    "CREATE TRIGGER history_no_delete BEFORE DELETE ON history BEGIN SELECT RAISE(ABORT, 'job history is append-only'); END",
    f"PRAGMA application_id = {APPLICATION_ID}",
)

#: The migrations, in order: ``MIGRATIONS[i]`` upgrades schema version ``i`` to ``i + 1``.
MIGRATIONS: list[tuple[str, ...]] = [_V1]

_COLUMNS = (
    "id, run_id, input, model, agent, meta, status, request, owner, lease_until, invocations, "
    "steps, max_steps, tool_calls, input_tokens, output_tokens, output, error, pending, created, updated"
)

#: Decisions as stored: request id -> {"approve": arguments or None} or {"deny": reason}.
StoredDecisions = Mapping[str, Mapping[str, Any]]

T = TypeVar("T")

#: What a pending request makes of a job whose run was interrupted.
_AFTER_REQUEST: Mapping[Request | None, Status] = {"pause": "paused", "cancel": "cancelled"}


def schema_version() -> int:
    """The schema version this plugin writes (and the newest it reads)."""
    return len(MIGRATIONS)


def _job(row: Sequence[Any]) -> Job:
    (id_, run_id, input_, model, agent, meta, status, request, owner, lease_until, invocations) = row[:11]
    steps, max_steps, tool_calls, input_tokens, output_tokens, output, error, pending, created, updated = row[11:]
    return Job(
        id_,
        run_id,
        input_,
        model,
        agent,
        json.loads(meta),
        status,
        request,
        owner,
        lease_until,
        invocations,
        Progress(steps, max_steps, tool_calls, input_tokens, output_tokens),
        output,
        error,
        tuple(PendingApproval(**p) for p in json.loads(pending)),
        created,
        updated,
    )


class JobStore:
    """The jobs and their history in one SQLite file (WAL), safe across threads and processes.

    Args:
        path: the file (created with its schema if missing); its directory must exist.
        timeout: seconds to wait for another process's write lock.

    Raises:
        JobStoreError: the file is another application's, from a newer schema, or unreadable.
    """

    def __init__(self, path: str | pathlib.Path, *, timeout: float = 30.0) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise JobStoreError(f"jobs file {self.path} cannot be opened: {exc}") from exc
        try:
            with self._errors():
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=FULL")
            self._transaction(self._migrate)
        except BaseException:
            self._conn.close()
            raise

    def close(self) -> None:
        """Close the file (idempotent)."""
        with self._lock:
            self._conn.close()

    # ------------------------------------------------------------------ plumbing

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Map SQLite's errors to `JobStoreError` naming the file."""
        try:
            yield
        except sqlite3.ProgrammingError as exc:  # e.g. used after close()
            raise JobStoreError(f"jobs file {self.path}: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            raise JobStoreError(f"jobs file {self.path} cannot be used: {exc}") from exc

    def _transaction(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """Run `body` in one ``BEGIN IMMEDIATE`` transaction (SQLite errors become `JobStoreError`)."""
        with self._lock, self._errors():
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = body(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

    def _migrate(self, conn: sqlite3.Connection) -> None:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]
        if app_id != APPLICATION_ID and (app_id != 0 or version != 0 or tables):
            raise JobStoreError(f"{self.path} is not an agent-kernel jobs file (application_id {app_id:#x})")
        if version > len(MIGRATIONS):
            raise JobStoreError(
                f"jobs file {self.path} has schema version {version}; this agent-plugin-jobs reads up to {len(MIGRATIONS)}"
            )
        for statements in MIGRATIONS[version:]:
            for statement in statements:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")

    def _row(self, conn: sqlite3.Connection, job_id: str) -> Job:
        row = conn.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise UnknownJob(f"no job {job_id!r} in {self.path}")
        return _job(row)

    def _move(
        self, conn: sqlite3.Connection, job: Job, new: Status, operation: str, detail: str = "", **columns: Any
    ) -> None:
        """Change `job`'s status to `new` (checked), set `columns`, append the history row."""
        check_transition(job.id, job.status, new, operation)
        at = max(time.time(), job.updated)
        assignments = "".join(f", {name} = ?" for name in columns)
        conn.execute(
            f"UPDATE jobs SET status = ?, updated = ?{assignments} WHERE id = ?",
            (new, at, *columns.values(), job.id),
        )
        conn.execute(
            "INSERT INTO history (job_id, at, old, new, detail) VALUES (?, ?, ?, ?, ?)",
            (job.id, at, job.status, new, detail),
        )

    # ------------------------------------------------------------------ reading

    def get(self, job_id: str) -> Job:
        """The job `job_id` (raises `UnknownJob`)."""
        return self._transaction(lambda conn: self._row(conn, job_id))

    def list(self, statuses: Iterable[Status] | None = None) -> list[Job]:
        """Jobs, oldest first; only those with one of `statuses` when given."""
        wanted = None if statuses is None else tuple(statuses)
        for status in wanted or ():
            if status not in STATUSES:
                raise ValueError(f"unknown job status {status!r} (one of: {', '.join(STATUSES)})")

        def body(conn: sqlite3.Connection) -> list[Job]:
            if wanted is None:
                rows = conn.execute(f"SELECT {_COLUMNS} FROM jobs ORDER BY seq").fetchall()
            else:
                marks = ", ".join("?" * len(wanted))
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM jobs WHERE status IN ({marks}) ORDER BY seq", wanted
                ).fetchall()
            return [_job(row) for row in rows]

        return self._transaction(body)

    def history(self, job_id: str) -> builtins.list[Change]:
        """Every status change of `job_id`, oldest first."""

        def body(conn: sqlite3.Connection) -> list[Change]:
            self._row(conn, job_id)
            rows = conn.execute(
                "SELECT seq, job_id, at, old, new, detail FROM history WHERE job_id = ? ORDER BY seq", (job_id,)
            ).fetchall()
            return [Change(*row) for row in rows]

        return self._transaction(body)

    # ------------------------------------------------------------------ operations

    def add(
        self,
        input: str,
        *,
        model: str = "",
        agent: str = "",
        job_id: str | None = None,
        run_id: str | None = None,
        max_steps: int | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Job:
        """Queue a new job; see `JobQueue.add`."""
        if not isinstance(input, str):
            raise TypeError(f"job input must be a str, got {type(input).__name__}")
        if max_steps is not None and (type(max_steps) is not int or max_steps < 1):
            raise ValueError(f"max_steps must be a positive int or None, got {max_steps!r}")
        job_id = job_id or uuid.uuid4().hex[:12]
        run_id = run_id or f"job-{job_id}"
        try:
            meta = json.dumps(dict(metadata or {}), sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"job {job_id!r}: metadata must be JSON-serialisable ({exc})") from exc

        def body(conn: sqlite3.Connection) -> Job:
            taken = conn.execute("SELECT id FROM jobs WHERE id = ? OR run_id = ?", (job_id, run_id)).fetchone()
            if taken is not None:
                raise IllegalTransition(f"job id {job_id!r} or run id {run_id!r} is already used by job {taken[0]!r}")
            now = time.time()
            conn.execute(
                "INSERT INTO jobs (id, run_id, input, model, agent, meta, status, max_steps, created, updated)"
                " VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?)",
                (job_id, run_id, input, model, agent, meta, max_steps, now, now),
            )
            conn.execute(
                "INSERT INTO history (job_id, at, old, new, detail) VALUES (?, ?, NULL, 'queued', 'added')",
                (job_id, now),
            )
            return self._row(conn, job_id)

        return self._transaction(body)

    def pause(self, job_id: str) -> Job:
        """Pause a queued job now, or ask the worker running it to pause it."""
        return self._transaction(lambda conn: self._interrupt(conn, job_id, "pause", "paused"))

    def cancel(self, job_id: str) -> Job:
        """Cancel a job now, or ask the worker running it to cancel it."""
        return self._transaction(lambda conn: self._interrupt(conn, job_id, "cancel", "cancelled"))

    def _interrupt(self, conn: sqlite3.Connection, job_id: str, request: Request, new: Status) -> Job:
        job = self._row(conn, job_id)
        if job.status == "running":
            if job.request == "cancel" and request == "pause":
                raise IllegalTransition(f"job {job_id!r}: cannot pause a job that is being cancelled")
            conn.execute("UPDATE jobs SET request = ? WHERE id = ?", (request, job_id))
        else:
            self._move(conn, job, new, request, f"{request} requested")
        return self._row(conn, job_id)

    def resume(self, job_id: str, decisions: StoredDecisions | None = None) -> Job:
        """Queue a paused, suspended or failed job again, with approval `decisions` for its run."""

        def body(conn: sqlite3.Connection) -> Job:
            job = self._row(conn, job_id)
            if job.status == "running" or job.status == "queued":
                raise IllegalTransition(f"job {job_id!r}: cannot resume a {job.status} job (it is not paused)")
            check_transition(job_id, job.status, "queued", "resume")
            known = {p.id for p in job.pending}
            unknown = sorted(set(decisions or {}) - known)
            if unknown:
                raise IllegalTransition(
                    f"job {job_id!r} has no pending approval {', '.join(map(repr, unknown))}"
                    f" (pending: {', '.join(sorted(known)) or 'none'})"
                )
            self._move(conn, job, "queued", "resume", "resumed", decisions=json.dumps(dict(decisions or {})))
            return self._row(conn, job_id)

        return self._transaction(body)

    # ------------------------------------------------------------------ worker side

    def claim(self, owner: str, lease: float, *, busy: Collection[str] = ()) -> tuple[Job, StoredDecisions] | None:
        """Take the oldest queued job for `owner` (after reaping expired leases), or None.

        `busy` are the jobs `owner` still has a task on. Its own expired leases on them
        are left alone: a worker that claims is alive, and its heartbeat renews them (a
        late renewal holds unless another worker reaped the job first). A busy job that
        is queued (another worker reaped it while `owner` stalled, and its task has not
        noticed yet) is skipped: another worker must take it.
        """

        def body(conn: sqlite3.Connection) -> tuple[Job, StoredDecisions] | None:
            now = time.time()
            skip = ",".join("?" * len(busy))
            expired = conn.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE status = 'running' AND lease_until < ?"
                f" AND NOT (owner = ? AND id IN ({skip})) ORDER BY seq",
                (now, owner, *busy),
            ).fetchall()
            for row in expired:
                self._reap(conn, _job(row))
            row = conn.execute(
                f"SELECT {_COLUMNS}, decisions FROM jobs WHERE status = 'queued' AND id NOT IN ({skip})"
                " ORDER BY seq LIMIT 1",
                tuple(busy),
            ).fetchone()
            if row is None:
                return None
            job = _job(row[:-1])
            self._move(
                conn,
                job,
                "running",
                "claim",
                f"worker {owner}",
                owner=owner,
                lease_until=now + lease,
                invocations=job.invocations + 1,
                request=None,
            )
            return self._row(conn, job.id), json.loads(row[-1])

        return self._transaction(body)

    def _reap(self, conn: sqlite3.Connection, job: Job) -> None:
        """A running job whose worker stopped renewing its lease: apply its request or queue it."""
        detail = f"worker {job.owner} stopped renewing its lease"
        new = _AFTER_REQUEST.get(job.request, "queued")
        self._move(conn, job, new, "recover", detail, owner=None, lease_until=None, request=None, error=detail)

    def interrupted(self, owner: str, job_id: str, default: Status, *, progress: Progress | None = None) -> bool:
        """`owner`'s run of `job_id` was cancelled: apply the pending request, else move to `default`.

        Returns False (and changes nothing) when `owner` no longer runs the job.
        """

        def body(conn: sqlite3.Connection) -> bool:
            job = self._row(conn, job_id)
            if job.owner != owner or job.status != "running":
                return False
            new = _AFTER_REQUEST.get(job.request, default)
            detail = f"{job.request} requested" if job.request else f"worker {owner} stopped"
            self._end(conn, job, new, detail, progress=progress, error="" if job.request else detail)
            return True

        return self._transaction(body)

    def renew(self, owner: str, job_ids: Iterable[str], lease: float) -> dict[str, Request | bool | None]:
        """Extend `owner`'s leases; per job: its pending request (or None), or False when `owner` lost it."""

        def body(conn: sqlite3.Connection) -> dict[str, Request | bool | None]:
            until = time.time() + lease
            answer: dict[str, Request | bool | None] = {}
            for job_id in job_ids:
                row = conn.execute(
                    "SELECT request FROM jobs WHERE id = ? AND owner = ? AND status = 'running'", (job_id, owner)
                ).fetchone()
                if row is None:
                    answer[job_id] = False
                else:
                    conn.execute("UPDATE jobs SET lease_until = ? WHERE id = ?", (until, job_id))
                    answer[job_id] = row[0]
            return answer

        return self._transaction(body)

    def progress(self, owner: str, job_id: str, progress: Progress) -> bool:
        """Store `progress` if `owner` still runs `job_id`; say whether it did."""

        def body(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE jobs SET steps = ?, tool_calls = ?, input_tokens = ?, output_tokens = ?, updated = MAX(updated, ?)"
                " WHERE id = ? AND owner = ? AND status = 'running'",
                (
                    progress.steps,
                    progress.tool_calls,
                    progress.input_tokens,
                    progress.output_tokens,
                    time.time(),
                    job_id,
                    owner,
                ),
            )
            return cursor.rowcount == 1

        return self._transaction(body)

    def finish(
        self,
        owner: str,
        job_id: str,
        new: Status,
        detail: str,
        *,
        progress: Progress | None = None,
        output: str | None = None,
        error: str = "",
        pending: Sequence[PendingApproval] = (),
    ) -> bool:
        """End `owner`'s invocation of `job_id` with status `new`; False if `owner` lost the job."""

        def body(conn: sqlite3.Connection) -> bool:
            job = self._row(conn, job_id)
            if job.owner != owner or job.status != "running":
                return False
            self._end(conn, job, new, detail, progress=progress, output=output, error=error, pending=pending)
            return True

        return self._transaction(body)

    def _end(
        self,
        conn: sqlite3.Connection,
        job: Job,
        new: Status,
        detail: str,
        *,
        progress: Progress | None,
        output: str | None = None,
        error: str = "",
        pending: Sequence[PendingApproval] = (),
    ) -> None:
        """Move a running job to `new`, releasing its claim and storing what the run left."""
        columns: dict[str, Any] = {
            "owner": None,
            "lease_until": None,
            "request": None,
            "decisions": "{}",
            "error": error,
            "pending": json.dumps([{"id": p.id, "tool": p.tool, "reason": p.reason} for p in pending]),
        }
        if output is not None:
            columns["output"] = output
        if progress is not None:
            columns.update(
                steps=progress.steps,
                tool_calls=progress.tool_calls,
                input_tokens=progress.input_tokens,
                output_tokens=progress.output_tokens,
            )
        self._move(conn, job, new, "finish", detail, **columns)
