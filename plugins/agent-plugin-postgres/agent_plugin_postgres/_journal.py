"""`PostgresJournal`: the kernel's `Journal` protocol in PostgreSQL (see the package docstring)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import anyio.to_thread
import psycopg
import psycopg_pool
from psycopg import sql

from agent_kernel import hookimpl
from agent_kernel.errors import AgentError, JournalCorrupt, JournalUnavailable, StaleAttempt
from agent_kernel.journal import (
    Codec,
    Ended,
    Entry,
    RunInfo,
    Started,
    Thread,
    ThreadExists,
    ThreadNotFound,
    check_append,
)

from ._schema import MIGRATIONS, schema_version

if TYPE_CHECKING:
    from agent_kernel import RuntimeRegistrar

__all__ = [
    "Durability",
    "JournalUnavailable",
    "PostgresJournal",
    "RunInfo",
    "Thread",
    "ThreadExists",
    "ThreadNotFound",
]

T = TypeVar("T")
Durability = Literal["commit", "batched"]
_SYNCHRONOUS_COMMIT = {"commit": "on", "batched": "off"}


def _stale(run_id: str, attempt: int, latest: int, at: int, length: int) -> StaleAttempt:
    """The `StaleAttempt` for an append the statement refused, in the kernel's words (`check_append`)."""
    try:
        check_append(run_id, attempt, latest, at, length)
    except StaleAttempt as exc:
        return exc
    # The row changed between the refused write and this look (another writer moved on).
    return StaleAttempt(f"run {run_id!r}: attempt {attempt} may not commit after entry {at}: the log moved on")


class PostgresJournal:
    """The kernel's journal in a PostgreSQL database, shared by any number of processes and machines.

    Pass it as a plugin: ``Agent(model, plugins=[PostgresJournal(dsn), ...])``; its
    ``agent_register_runtime`` makes it the agent's journal. Its tables are created
    (and migrated) in `schema` on first use.

    Args:
        dsn: a libpq connection string or URL (``postgresql://user@host:5432/db``).
        schema: the PostgreSQL schema holding the journal's tables.
        durability: ``"commit"`` (the default): every `append` is committed and its
            WAL flushed to disk (``synchronous_commit=on``) before it returns.
            ``"batched"``: ``synchronous_commit=off``; appends are atomic and
            fenced alike, but a crash of the *database server* may lose the last
            fraction of a second of commits (never corrupts anything).
        pool_size: the most connections this object opens at once.
        timeout: seconds an operation keeps retrying while the database is
            unreachable or restarting before it raises `JournalUnavailable`.

    Every method runs psycopg (sync) in a worker thread with a connection from a
    ``psycopg_pool`` pool, so it never blocks the event loop, under trio and asyncio.
    """

    name = "postgres"

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "agent_kernel",
        durability: Durability = "commit",
        pool_size: int = 8,
        timeout: float = 30.0,
    ) -> None:
        if durability not in _SYNCHRONOUS_COMMIT:
            raise ValueError(f"durability must be 'commit' or 'batched', got {durability!r}")
        if not timeout >= 0:
            raise ValueError(f"timeout must be >= 0 seconds, got {timeout!r}")
        if pool_size < 1:
            raise ValueError(f"pool_size must be >= 1, got {pool_size!r}")
        self.dsn = dsn
        self.schema = schema
        self.durability: Durability = durability
        self.pool_size = pool_size
        self.timeout = float(timeout)
        self._codec: Codec | None = None
        self._lock = threading.Lock()
        self._pool: psycopg_pool.ConnectionPool[Any] | None = None
        self._ready = False
        s = sql.Identifier(schema).as_string(None)
        self._s = s
        self._sql = {
            "claim": (
                f"INSERT INTO {s}.runs (id, created, updated, attempt) VALUES (%(run)s, %(now)s, %(now)s, 1)"
                f" ON CONFLICT (id) DO UPDATE SET attempt = {s}.runs.attempt + 1, updated = %(now)s"
                " RETURNING attempt"
            ),
            # Fencing and the write are one statement (so one transaction): the UPDATE
            # matches only if `attempt` is the newest and the log ends at `at`; the
            # entries are inserted only for a matching row.
            "append": (
                f"WITH ok AS (UPDATE {s}.runs SET length = length + %(n)s, updated = %(now)s,"
                " status = COALESCE(%(status)s, status), model = COALESCE(%(model)s, model)"
                " WHERE id = %(run)s AND attempt = %(attempt)s AND length = %(at)s"
                " RETURNING length - %(n)s AS base),"
                f" ins AS (INSERT INTO {s}.entries (run_id, seq, attempt, kind, data)"
                " SELECT %(run)s, ok.base + e.ord - 1, %(attempt)s, e.kind, e.data"
                " FROM ok CROSS JOIN unnest(%(kinds)s::text[], %(datas)s::text[]) WITH ORDINALITY AS e(kind, data, ord))"
                " SELECT base FROM ok"
            ),
            "state": f"SELECT attempt, length FROM {s}.runs WHERE id = %s",
            "tail": f"SELECT attempt, data FROM {s}.entries WHERE run_id = %s AND seq >= %s ORDER BY seq",
            "load": (
                f"SELECT r.length, e.seq, e.data FROM {s}.runs r LEFT JOIN {s}.entries e ON e.run_id = r.id"
                " WHERE r.id = %s ORDER BY e.seq"
            ),
            "runs": f"SELECT id FROM {s}.runs ORDER BY seq",
            "info": f"SELECT id, created, updated, attempt, status, length, model FROM {s}.runs WHERE id = %s",
        }

    def __repr__(self) -> str:
        return f"PostgresJournal({_redact(self.dsn)!r}, schema={self.schema!r}, durability={self.durability!r})"

    async def __aenter__(self) -> PostgresJournal:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ plugin

    @hookimpl
    def agent_register_runtime(self, runtime: RuntimeRegistrar) -> None:
        """Make this the agent's journal."""
        runtime.set_journal(self)

    # ------------------------------------------------------------------ Journal protocol

    def bind(self, codec: Codec) -> None:
        """Keep the agent's codec: entries are stored as its JSON text (the last `bind` wins)."""
        self._codec = codec

    async def claim(self, run_id: str) -> int:
        """Start a new attempt on `run_id` (atomically, across machines); return its number."""
        return await self._call(partial(self._claim_op, run_id))

    async def append(self, run_id: str, attempt: int, entries: Sequence[Entry], *, at: int) -> None:
        """Durably append `entries` to `run_id` as `attempt`, where the log holds `at` entries.

        Accepted only if `attempt` is the run's newest attempt and the log holds
        exactly `at` entries, both checked by the same statement that writes
        (`agent_kernel.journal.check_append` words the refusal).
        If the connection breaks mid-append, the append is retried only after
        checking whether it had been committed, so it lands exactly once.

        Raises:
            StaleAttempt: `attempt` was superseded or the log no longer ends at `at`;
                nothing was written.
            JournalUnavailable: the database stayed unreachable for `timeout` seconds.
        """
        codec = self._bound()
        kinds: list[str] = []
        datas: list[str] = []
        status: str | None = None
        model: str | None = None
        for entry in entries:
            kinds.append(type(entry).__name__)
            datas.append(codec.encode(entry))
            if isinstance(entry, Started):
                status, model = "running", entry.model
            elif isinstance(entry, Ended):
                status = entry.reason
        params = {
            "run": run_id,
            "attempt": attempt,
            "at": at,
            "n": len(kinds),
            "now": time.time(),
            "status": status,
            "model": model,
            "kinds": kinds,
            "datas": datas,
        }
        tries = [0]
        await self._call(partial(self._append_op, params, tries))

    async def load(self, run_id: str) -> list[Entry]:
        """All entries of `run_id` in order; ``[]`` for an unknown run."""
        codec = self._bound()
        return await self._call(partial(self._load_op, codec, run_id))

    async def runs(self) -> list[str]:
        """Ids of all runs ever claimed in this journal, oldest first."""
        rows = await self._call(lambda conn: conn.execute(self._sql["runs"]).fetchall())
        return [row[0] for row in rows]

    # ------------------------------------------------------------------ extras

    async def run_info(self, run_id: str) -> RunInfo | None:
        """What the journal knows about `run_id` (status, attempt, size), or None if unknown."""
        row = await self._call(lambda conn: conn.execute(self._sql["info"], (run_id,)).fetchone())
        return None if row is None else RunInfo(*row)

    async def create_thread(
        self, name: str = "", *, thread_id: str | None = None, metadata: Mapping[str, Any] | None = None
    ) -> Thread:
        """Create an empty thread.

        Raises:
            ThreadExists: `thread_id` is taken.
        """
        meta = json.dumps(dict(metadata or {}))
        op = partial(self._create_thread_op, thread_id or uuid.uuid4().hex, name, meta, None, None, ())
        return await self._call(partial(self._transaction, op))

    async def get_thread(self, thread_id: str) -> Thread | None:
        """The thread `thread_id`, or None."""
        return await self._call(partial(self._transaction, partial(self._get_thread_op, thread_id)))

    async def list_threads(self, *, archived: bool | None = False) -> list[Thread]:
        """Threads, oldest first: only active ones (default), only archived ones
        (``archived=True``) or all (``archived=None``)."""
        return await self._call(partial(self._transaction, partial(self._list_threads_op, archived)))

    async def add_run(self, thread_id: str, run_id: str) -> Thread:
        """Append `run_id` to the thread's runs (adding a run it has is a no-op).

        Raises:
            ThreadNotFound: no such thread.
        """
        return await self._call(partial(self._transaction, partial(self._add_run_op, thread_id, run_id)))

    async def fork_thread(
        self,
        thread_id: str,
        *,
        at_run: str | None = None,
        name: str | None = None,
        new_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Thread:
        """Fork `thread_id`: a new thread sharing its runs up to and including `at_run`
        (default: all of them). See ``agent_plugin_sqlite.SqliteJournal.fork_thread``.

        Raises:
            ThreadNotFound: no such thread.
            ValueError: `at_run` is not one of the thread's runs.
            ThreadExists: `new_id` is taken.
        """
        meta = None if metadata is None else json.dumps(dict(metadata))
        op = partial(self._fork_op, thread_id, at_run, name, new_id or uuid.uuid4().hex, meta)
        return await self._call(partial(self._transaction, op))

    async def update_thread(
        self,
        thread_id: str,
        *,
        name: str | None = None,
        archived: bool | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Thread:
        """Rename, (un)archive or replace the metadata of a thread; None leaves a field as is.

        Raises:
            ThreadNotFound: no such thread.
        """
        meta = None if metadata is None else json.dumps(dict(metadata))
        op = partial(self._update_thread_op, thread_id, name, archived, meta)
        return await self._call(partial(self._transaction, op))

    def close(self) -> None:
        """Close the pool's connections (the next use opens a new pool).

        Call it when no operation is in flight, e.g. once all runs are done.
        """
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    async def aclose(self) -> None:
        """`close`, from async code (in a worker thread)."""
        await anyio.to_thread.run_sync(self.close)

    # ------------------------------------------------------------------ plumbing

    def _bound(self) -> Codec:
        if self._codec is None:
            raise AgentError(f"{self!r} has no codec: an Agent binds it when it is registered as a plugin")
        return self._codec

    async def _call(self, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        return await anyio.to_thread.run_sync(self._run, fn)

    def _get_pool(self) -> psycopg_pool.ConnectionPool[Any]:
        with self._lock:
            if self._pool is None:
                options = f"-c synchronous_commit={_SYNCHRONOUS_COMMIT[self.durability]}"
                pool: psycopg_pool.ConnectionPool[Any] = psycopg_pool.ConnectionPool(
                    self.dsn,
                    min_size=1,
                    max_size=self.pool_size,
                    open=False,
                    timeout=max(self.timeout, 0.1),
                    kwargs={"autocommit": True, "options": options, "application_name": "agent-kernel"},
                    name=f"agent-kernel-journal-{self.schema}",
                )
                pool.open(wait=False)
                self._pool = pool
            return self._pool

    def _run(self, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run `fn(conn)` on a pooled connection, retrying while the server is unreachable."""
        deadline = time.monotonic() + self.timeout
        delay = 0.02
        while True:
            pool = self._get_pool()
            try:
                with pool.connection(timeout=max(deadline - time.monotonic(), 0.05)) as conn:
                    if not self._ready:
                        self._migrate(conn)
                    return fn(conn)
            except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
                if isinstance(exc, psycopg.errors.QueryCanceled) and not isinstance(exc, psycopg.errors.AdminShutdown):
                    raise JournalUnavailable(f"{self!r}: a statement was cancelled: {exc}") from exc
                if time.monotonic() + delay > deadline:
                    raise JournalUnavailable(
                        f"{self!r}: the database stayed unreachable for {self.timeout} s ({exc})"
                    ) from exc
                pool.check()  # drop the other broken connections of a restarted server
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    def _migrate(self, conn: psycopg.Connection[Any]) -> None:
        s = self._s
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"agent-kernel-journal:{self.schema}",))
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {s}")
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {s}.schema_version"
                " (version INTEGER PRIMARY KEY, applied TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            row = conn.execute(f"SELECT COALESCE(MAX(version), 0) FROM {s}.schema_version").fetchone()
            version = int(row[0]) if row else 0
            if version > schema_version():
                raise JournalCorrupt(
                    f"{self!r}: the database schema {self.schema!r} has journal schema version {version}, but this "
                    f"agent-plugin-postgres reads versions up to {schema_version()}; upgrade agent-plugin-postgres "
                    "(nothing was modified)"
                )
            for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in migration:
                    conn.execute(statement.format(s=s))
                conn.execute(f"INSERT INTO {s}.schema_version (version) VALUES (%s)", (number,))
        self._ready = True

    # ------------------------------------------------------------------ operations (worker threads)

    def _claim_op(self, run_id: str, conn: psycopg.Connection[Any]) -> int:
        row = conn.execute(self._sql["claim"], {"run": run_id, "now": time.time()}).fetchone()
        assert row is not None
        return int(row[0])

    def _append_op(self, params: dict[str, Any], tries: list[int], conn: psycopg.Connection[Any]) -> None:
        tries[0] += 1
        if conn.execute(self._sql["append"], params).fetchone() is not None:
            return
        run_id, attempt, at, n = params["run"], params["attempt"], params["at"], params["n"]
        state = conn.execute(self._sql["state"], (run_id,)).fetchone()
        latest, length = state if state is not None else (0, 0)
        if tries[0] > 1 and latest == attempt and length == at + n:
            # A retry after the connection broke mid-append: did the first try commit?
            tail = conn.execute(self._sql["tail"], (run_id, at)).fetchall()
            if [tuple(row) for row in tail] == [(attempt, data) for data in params["datas"]]:
                return
        raise _stale(run_id, attempt, latest, at, length)

    def _load_op(self, codec: Codec, run_id: str, conn: psycopg.Connection[Any]) -> list[Entry]:
        rows = conn.execute(self._sql["load"], (run_id,)).fetchall()
        if not rows:
            return []
        expected = rows[0][0]
        if rows[0][1] is None:
            rows = []
        if len(rows) != expected:
            raise JournalCorrupt(f"{self!r}: run {run_id!r} should have {expected} entries but has {len(rows)}")
        entries: list[Entry] = []
        for index, (_, seq, data) in enumerate(rows):
            if seq != index:
                raise JournalCorrupt(f"{self!r}: run {run_id!r} is missing entry {index}")
            try:
                entries.append(codec.decode(data))
            except JournalCorrupt as exc:
                raise JournalCorrupt(f"{self!r}: run {run_id!r}, entry {seq}: {exc}") from exc
        return entries

    # -- threads

    @staticmethod
    def _transaction(fn: Callable[[psycopg.Connection[Any]], T], conn: psycopg.Connection[Any]) -> T:
        with conn.transaction():
            return fn(conn)

    _THREAD_COLUMNS = "id, name, created, updated, archived, parent_id, fork_run_id, meta"

    def _thread(
        self, conn: psycopg.Connection[Any], row: Sequence[Any], run_ids: Sequence[str] | None = None
    ) -> Thread:
        if run_ids is None:
            run_ids = [
                r[0]
                for r in conn.execute(
                    f"SELECT run_id FROM {self._s}.thread_runs WHERE thread_id = %s ORDER BY position", (row[0],)
                ).fetchall()
            ]
        return Thread(row[0], row[1], row[2], row[3], bool(row[4]), row[5], row[6], tuple(run_ids), row[7])

    def _thread_row(self, conn: psycopg.Connection[Any], thread_id: str, *, lock: bool = False) -> Sequence[Any]:
        query = f"SELECT {self._THREAD_COLUMNS} FROM {self._s}.threads WHERE id = %s" + (" FOR UPDATE" if lock else "")
        row = conn.execute(query, (thread_id,)).fetchone()
        if row is None:
            raise ThreadNotFound(f"no thread {thread_id!r} in {self!r}")
        return row  # type: ignore[no-any-return]

    def _get_thread_op(self, thread_id: str, conn: psycopg.Connection[Any]) -> Thread | None:
        try:
            return self._thread(conn, self._thread_row(conn, thread_id))
        except ThreadNotFound:
            return None

    def _list_threads_op(self, archived: bool | None, conn: psycopg.Connection[Any]) -> list[Thread]:
        where, params = ("", ()) if archived is None else (" WHERE archived = %s", (archived,))
        rows = conn.execute(f"SELECT {self._THREAD_COLUMNS} FROM {self._s}.threads{where} ORDER BY seq", params)
        threads = rows.fetchall()
        runs: dict[str, list[str]] = {}
        for thread_id, run_id in conn.execute(
            f"SELECT thread_id, run_id FROM {self._s}.thread_runs ORDER BY thread_id, position"
        ):
            runs.setdefault(thread_id, []).append(run_id)
        return [self._thread(conn, row, runs.get(row[0], [])) for row in threads]

    def _create_thread_op(
        self,
        thread_id: str,
        name: str,
        meta: str,
        parent_id: str | None,
        fork_run_id: str | None,
        run_ids: Sequence[str],
        conn: psycopg.Connection[Any],
    ) -> Thread:
        now = time.time()
        inserted = conn.execute(
            f"INSERT INTO {self._s}.threads (id, name, created, updated, parent_id, fork_run_id, meta)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb) ON CONFLICT (id) DO NOTHING RETURNING id",
            (thread_id, name, now, now, parent_id, fork_run_id, meta),
        ).fetchone()
        if inserted is None:
            raise ThreadExists(f"thread {thread_id!r} already exists in {self!r}")
        if run_ids:
            with conn.cursor() as cur:
                cur.executemany(
                    f"INSERT INTO {self._s}.thread_runs (thread_id, position, run_id, added) VALUES (%s, %s, %s, %s)",
                    [(thread_id, i, run_id, now) for i, run_id in enumerate(run_ids)],
                )
        return self._thread(conn, self._thread_row(conn, thread_id), run_ids)

    def _add_run_op(self, thread_id: str, run_id: str, conn: psycopg.Connection[Any]) -> Thread:
        self._thread_row(conn, thread_id, lock=True)  # serialises adders of one thread
        now = time.time()
        added = conn.execute(
            f"INSERT INTO {self._s}.thread_runs (thread_id, position, run_id, added)"
            f" VALUES (%s, (SELECT COALESCE(MAX(position) + 1, 0) FROM {self._s}.thread_runs WHERE thread_id = %s),"
            " %s, %s) ON CONFLICT DO NOTHING",
            (thread_id, thread_id, run_id, now),
        ).rowcount
        if added:
            conn.execute(f"UPDATE {self._s}.threads SET updated = %s WHERE id = %s", (now, thread_id))
        return self._thread(conn, self._thread_row(conn, thread_id))

    def _fork_op(
        self,
        thread_id: str,
        at_run: str | None,
        name: str | None,
        new_id: str,
        meta: str | None,
        conn: psycopg.Connection[Any],
    ) -> Thread:
        parent = self._thread(conn, self._thread_row(conn, thread_id, lock=True))
        runs = parent.run_ids
        if at_run is None:
            shared = runs
            at_run = runs[-1] if runs else None
        elif at_run in runs:
            shared = runs[: runs.index(at_run) + 1]
        else:
            raise ValueError(f"run {at_run!r} is not in thread {thread_id!r} (runs: {', '.join(runs) or 'none'})")
        meta = json.dumps(dict(parent.metadata)) if meta is None else meta
        return self._create_thread_op(
            new_id, parent.name if name is None else name, meta, thread_id, at_run, shared, conn
        )

    def _update_thread_op(
        self, thread_id: str, name: str | None, archived: bool | None, meta: str | None, conn: psycopg.Connection[Any]
    ) -> Thread:
        self._thread_row(conn, thread_id, lock=True)
        conn.execute(
            f"UPDATE {self._s}.threads SET name = COALESCE(%s, name), archived = COALESCE(%s, archived),"
            " meta = COALESCE(%s::jsonb, meta), updated = %s WHERE id = %s",
            (name, archived, meta, time.time(), thread_id),
        )
        return self._thread(conn, self._thread_row(conn, thread_id))


def _redact(dsn: str) -> str:
    """`dsn` without its password (for messages)."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<dsn>"
    if "password" in info:
        info["password"] = "***"
    return psycopg.conninfo.make_conninfo("", **info)
