"""`SqliteJournal`: the kernel's `Journal` protocol on one SQLite file (see the package docstring)."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import sqlite3
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import anyio
import anyio.to_thread
import sniffio

from agent_kernel import hookimpl
from agent_kernel.errors import AgentError, JournalCorrupt, JournalUnavailable
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

from . import _schema
from ._schema import APPLICATION_ID, schema_version

if TYPE_CHECKING:
    from agent_kernel import RuntimeRegistrar

__all__ = [
    "Durability",
    "JournalUnavailable",
    "RunInfo",
    "SqliteJournal",
    "Thread",
    "ThreadExists",
    "ThreadNotFound",
]

T = TypeVar("T")
Durability = Literal["commit", "batched"]
_SYNCHRONOUS = {"commit": "FULL", "batched": "NORMAL"}
_POOL_SIZE = 4  # idle reader connections kept open

# Primary result codes (``sqlite3.Error.sqlite_errorcode & 0xFF``) and extended ones.
_BUSY, _LOCKED, _CORRUPT, _FORMAT, _NOTADB = 5, 6, 11, 24, 26
_IOERR_SHORT_READ = 522


_Schedule = Callable[[Callable[[], object]], object]


class _Op:
    """One write waiting for the group commit: the writer runs `fn(conn)`, keeps the
    outcome, then has `schedule` (its event loop's thread-safe call-soon) call `wake`."""

    __slots__ = ("error", "fn", "result", "schedule", "wake")

    def __init__(
        self, fn: Callable[[sqlite3.Connection], Any], schedule: _Schedule, wake: Callable[[], object]
    ) -> None:
        self.fn = fn
        self.schedule = schedule
        self.wake = wake
        self.result: Any = None
        self.error: BaseException | None = None


def _call_soon_threadsafe() -> _Schedule:
    """How another thread schedules a call on the running event loop (trio or asyncio)."""
    if sniffio.current_async_library() == "trio":
        import trio

        return trio.lowlevel.current_trio_token().run_sync_soon
    import asyncio

    return asyncio.get_running_loop().call_soon_threadsafe


class _Worker:
    """A journal's writer thread and its queue of `_Op`; ``None`` in the queue stops it."""

    __slots__ = ("ops", "stop", "thread")

    def __init__(self, journal: SqliteJournal) -> None:
        self.ops: queue.SimpleQueue[_Op | None] = queue.SimpleQueue()
        # Also stops the thread when the journal is garbage-collected, and at exit.
        self.stop = weakref.finalize(journal, self.ops.put, None)
        self.thread = threading.Thread(
            target=_serve, args=(weakref.ref(journal), self.ops), name=f"{journal!r} writer", daemon=True
        )
        self.thread.start()


def _serve(journal_ref: weakref.ref[SqliteJournal], ops: queue.SimpleQueue[_Op | None]) -> None:
    """The writer thread (it holds the journal only while running a batch)."""
    while _serve_batch(journal_ref, ops):
        pass


def _serve_batch(journal_ref: weakref.ref[SqliteJournal], ops: queue.SimpleQueue[_Op | None]) -> bool:
    """Wait for writes, run all those queued as one group commit, wake their waiters; False once stopped."""
    queued = [ops.get()]
    while not ops.empty():
        queued.append(ops.get_nowait())
    batch = [op for op in queued if op is not None]
    if batch:
        journal = journal_ref()
        assert journal is not None  # every waiting task holds it
        with journal._write_lock:
            journal._run_batch(batch)
        wakes: dict[_Schedule, list[Callable[[], object]]] = {}
        for op in batch:
            wakes.setdefault(op.schedule, []).append(op.wake)
        for schedule, calls in wakes.items():  # one wake-up per event loop
            with contextlib.suppress(RuntimeError):  # that loop is gone: nobody waits
                schedule(partial(_call_all, calls))
    return queued[-1] is not None  # the stop mark is always queued last


# Connections a forked child inherited: never used (SQLite forbids it) nor closed (closing
# may checkpoint), only kept from the garbage collector.
_FORSAKEN: list[sqlite3.Connection] = []


def _after_fork_in_child(journal_ref: weakref.ref[SqliteJournal]) -> None:
    """In a forked child, a journal starts afresh: its writer thread did not survive the
    fork, and the parent's connections and locks are not the child's to use."""
    journal = journal_ref()
    if journal is not None:
        _FORSAKEN.extend(c for c in (journal._writer, *(c for _, c in journal._pool)) if c is not None)
        journal._start_afresh()


def _call_all(calls: list[Callable[[], object]]) -> None:
    for call in calls:
        call()


class SqliteJournal:
    """The kernel's journal in one SQLite file (WAL mode), shared safely between processes.

    Pass it as a plugin: ``Agent(model, plugins=[SqliteJournal("runs.db"), ...])``; its
    ``agent_register_runtime`` makes it the agent's journal. The file is created (and
    migrated to the current schema) on first use; its directory must exist.

    Args:
        path: the journal file, or ``":memory:"`` for a private in-memory database.
        durability: ``"commit"`` (the default): every `append` is a committed
            transaction synced to disk (``synchronous=FULL``) before it returns, so
            before the kernel's next side effect. ``"batched"``: ``synchronous=NORMAL``;
            commits are atomic and survive a crash of the process, but a power loss
            or OS crash may lose the last few commits (never corrupts the file).
        timeout: seconds to wait for another process's lock on the file before
            raising `JournalUnavailable`.

    All methods are async and never block the event loop, under trio or asyncio:
    writes go to the journal's writer thread (started on first use, stopped by
    `close`), which group-commits everything queued meanwhile, from any task, loop
    or OS thread: one transaction, each write fenced separately. Reads run in worker
    threads (`anyio.to_thread`).

    Raises (from any method):
        JournalCorrupt: the file is corrupted, truncated, not an agent-kernel journal,
            or from a newer schema. The file is never modified in that case.
        JournalUnavailable: the file cannot be opened or stayed locked too long.
    """

    name = "sqlite"

    def __init__(
        self, path: str | os.PathLike[str], *, durability: Durability = "commit", timeout: float = 30.0
    ) -> None:
        if durability not in _SYNCHRONOUS:
            raise ValueError(f"durability must be 'commit' or 'batched', got {durability!r}")
        if not timeout >= 0:
            raise ValueError(f"timeout must be >= 0 seconds, got {timeout!r}")
        self.path = os.fspath(path)
        self.durability: Durability = durability
        self.timeout = float(timeout)
        self._memory = self.path == ":memory:"
        self._codec: Codec | None = None
        self._start_afresh()
        os.register_at_fork(after_in_child=partial(_after_fork_in_child, weakref.ref(self)))

    def _start_afresh(self) -> None:
        """No writer thread, no connection, no lock held: a new journal, or a forked child's copy."""
        # Lock order: _write_lock, then _open_lock, then _pool_lock. _worker_lock stands alone.
        self._write_lock = threading.Lock()  # held by the writer thread while it runs a group commit
        self._open_lock = threading.Lock()
        self._pool_lock = threading.Lock()
        self._worker_lock = threading.Lock()
        self._worker: _Worker | None = None
        self._writer: sqlite3.Connection | None = None
        self._pool: list[tuple[int, sqlite3.Connection]] = []
        self._generation = 0
        self._corrupt: JournalCorrupt | None = None  # once seen, nothing is written until close()

    def __repr__(self) -> str:
        return f"SqliteJournal({self.path!r}, durability={self.durability!r})"

    # ------------------------------------------------------------------ plugin

    @hookimpl
    def agent_register_runtime(self, runtime: RuntimeRegistrar) -> None:
        """Make this the agent's journal."""
        runtime.set_journal(self)

    # ------------------------------------------------------------------ Journal protocol

    def bind(self, codec: Codec) -> None:
        """Keep the agent's codec: entries are stored as its JSON text.

        One journal object serves one agent (or agents with the same plugins): the
        last `bind` wins.
        """
        self._codec = codec

    async def claim(self, run_id: str) -> int:
        """Start a new attempt on `run_id` (atomically, across processes); return its number."""
        return await self._write(partial(self._claim_op, run_id))

    async def append(self, run_id: str, attempt: int, entries: Sequence[Entry], *, at: int) -> None:
        """Durably append `entries` to `run_id` as `attempt`, after its first `at` entries.

        The attempt and the position are checked in the same transaction as the insert.

        Raises:
            StaleAttempt: `attempt` is not the run's latest attempt (a newer one
                claimed it, or it was never claimed), or the run does not hold
                exactly `at` entries; nothing was written.
        """
        await self._write(self._append_fn(self._bound(), run_id, attempt, at, entries))

    async def load(self, run_id: str) -> list[Entry]:
        """All entries of `run_id` in order; ``[]`` for an unknown run."""
        codec = self._bound()
        return await self._read(partial(self._load_op, codec, run_id))

    async def runs(self) -> list[str]:
        """Ids of all runs ever claimed in this file, oldest first."""
        rows = await self._read(lambda conn: conn.execute("SELECT id FROM runs ORDER BY seq").fetchall())
        return [row[0] for row in rows]

    # ------------------------------------------------------------------ extras

    async def run_info(self, run_id: str) -> RunInfo | None:
        """What the file knows about `run_id` (status, attempt, size), or None if unknown."""
        return await self._read(partial(self._run_info_op, run_id))

    async def create_thread(
        self, name: str = "", *, thread_id: str | None = None, metadata: Mapping[str, Any] | None = None
    ) -> Thread:
        """Create an empty thread.

        Args:
            name: a human name.
            thread_id: the id (a random hex id when omitted).
            metadata: JSON-serialisable data to keep with the thread.

        Raises:
            ThreadExists: `thread_id` is taken.
        """
        meta = json.dumps(dict(metadata or {}))
        return await self._write(
            partial(self._create_thread_op, thread_id or uuid.uuid4().hex, name, meta, None, None, ())
        )

    async def get_thread(self, thread_id: str) -> Thread | None:
        """The thread `thread_id`, or None."""
        return await self._read(partial(self._get_thread_op, thread_id))

    async def list_threads(self, *, archived: bool | None = False) -> list[Thread]:
        """Threads, oldest first: only active ones (default), only archived ones
        (``archived=True``) or all (``archived=None``)."""
        return await self._read(partial(self._list_threads_op, archived))

    async def add_run(self, thread_id: str, run_id: str) -> Thread:
        """Append `run_id` to the thread's runs (adding a run it has is a no-op).

        Raises:
            ThreadNotFound: no such thread.
        """
        return await self._write(partial(self._add_run_op, thread_id, run_id))

    async def fork_thread(
        self,
        thread_id: str,
        *,
        at_run: str | None = None,
        name: str | None = None,
        new_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Thread:
        """Fork `thread_id`: a new thread sharing its runs up to and including `at_run`.

        The fork records its parent and fork point (`Thread.parent_id`,
        `Thread.fork_run_id`); runs added to either thread afterwards stay their own.

        Args:
            thread_id: the thread to fork.
            at_run: the last shared run (default: the parent's last run).
            name: the fork's name (default: the parent's).
            new_id: the fork's id (random when omitted).
            metadata: the fork's metadata (default: a copy of the parent's).

        Raises:
            ThreadNotFound: no such thread.
            ValueError: `at_run` is not one of the thread's runs.
            ThreadExists: `new_id` is taken.
        """
        meta = None if metadata is None else json.dumps(dict(metadata))
        return await self._write(partial(self._fork_op, thread_id, at_run, name, new_id or uuid.uuid4().hex, meta))

    async def create_fork(
        self,
        thread_id: str,
        run_ids: Sequence[str],
        *,
        fork_run_id: str | None = None,
        name: str | None = None,
        new_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Thread:
        """Create a fork of `thread_id` holding exactly `run_ids`, in one transaction.

        For forks that do not end at a run boundary: a memory plugin forks a run at
        a step into a new run and makes a thread of the parent's earlier runs plus
        that new run.

        Args:
            thread_id: the parent thread.
            run_ids: the fork's runs, oldest first (no duplicates).
            fork_run_id: the parent's last run the fork shares whole (None: none).
            name: the fork's name (default: the parent's).
            new_id: the fork's id (random when omitted).
            metadata: the fork's metadata (default: a copy of the parent's).

        Raises:
            ThreadNotFound: no such thread.
            ValueError: `run_ids` repeats a run, or `fork_run_id` is not a run of the parent.
            ThreadExists: `new_id` is taken.
        """
        runs = tuple(run_ids)
        if isinstance(run_ids, str) or len(set(runs)) != len(runs):
            raise ValueError(f"create_fork(run_ids): expected distinct run ids, got {run_ids!r}")
        meta = None if metadata is None else json.dumps(dict(metadata))
        op = partial(self._create_fork_op, thread_id, runs, fork_run_id, name, new_id or uuid.uuid4().hex, meta)
        return await self._write(op)

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
        return await self._write(partial(self._update_thread_op, thread_id, name, archived, meta))

    def close(self) -> None:
        """Stop the writer thread and close the file's connections (the next use starts them again).

        Call it when no operation is in flight, e.g. once all runs are done.
        """
        with self._worker_lock:
            worker, self._worker = self._worker, None
            if worker is not None:
                worker.stop()
        if worker is not None:
            worker.thread.join()
        with self._write_lock, self._open_lock:
            writer, self._writer = self._writer, None
            self._corrupt = None
            with self._pool_lock:
                pool, self._pool = self._pool, []
                self._generation += 1
        for _, conn in pool:
            conn.close()
        if writer is not None:
            writer.close()

    async def aclose(self) -> None:
        """`close`, from async code (waits for the writer thread in a worker thread)."""
        await anyio.to_thread.run_sync(self.close)

    # ------------------------------------------------------------------ opening

    def _bound(self) -> Codec:
        if self._codec is None:
            raise AgentError(f"{self!r} has no codec: an Agent binds it when it is registered as a plugin")
        return self._codec

    def _error(self, exc: sqlite3.Error, doing: str) -> AgentError:
        """Turn a sqlite3 error into `JournalCorrupt` or `JournalUnavailable` naming the file."""
        code = getattr(exc, "sqlite_errorcode", None)
        primary = code & 0xFF if isinstance(code, int) else None
        if primary in (_CORRUPT, _NOTADB, _FORMAT) or code == _IOERR_SHORT_READ:
            return self._damaged(f"{exc}, while {doing}")
        if primary in (_BUSY, _LOCKED):
            return JournalUnavailable(
                f"journal file {self.path} stayed locked by another connection for more than "
                f"{self.timeout} s while {doing} ({exc})"
            )
        return JournalUnavailable(f"journal file {self.path}: {doing} failed: {exc}")

    def _damaged(self, why: str) -> JournalCorrupt:
        """A `JournalCorrupt` for a damaged file; this object then refuses to touch the file until `close`."""
        error = JournalCorrupt(
            f"journal file {self.path} is corrupted or truncated ({why}); "
            "it was left untouched: restore it from a backup or move it away"
        )
        self._corrupt = error
        return error

    def _check_size(self) -> None:
        """Refuse a file cut in the middle of a page (SQLite itself notices only whole missing pages)."""
        try:
            with open(self.path, "rb") as file:
                header = file.read(100)
                size = os.fstat(file.fileno()).st_size
        except FileNotFoundError:
            return
        except OSError as exc:
            raise JournalUnavailable(f"journal file {self.path} cannot be read: {exc}") from exc
        if size == 0 or not header.startswith(b"SQLite format 3\x00") or len(header) < 100:
            return  # empty (a new journal), or SQLite reports it as not a database
        page_size = int.from_bytes(header[16:18], "big")
        page_size = 65536 if page_size == 1 else page_size
        if page_size and size % page_size:
            raise self._damaged(f"its size, {size} bytes, is not a multiple of its page size, {page_size}")

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise self._error(exc, "opening it") from exc
        try:
            conn.execute(f"PRAGMA synchronous = {_SYNCHRONOUS[self.durability]}")
        except sqlite3.Error as exc:
            conn.close()
            raise self._error(exc, "opening it") from exc
        return conn

    def _ensure_open(self) -> sqlite3.Connection:
        """The writer connection, opening the file (and migrating it) on first use."""
        writer = self._writer
        if writer is not None and self._corrupt is None:
            return writer
        with self._open_lock:
            if self._corrupt is not None:
                raise self._corrupt
            if self._writer is None:
                if not self._memory:
                    self._check_size()
                conn = self._connect()
                try:
                    self._prepare(conn)
                except BaseException:
                    conn.close()
                    raise
                self._writer = conn
            return self._writer

    def _prepare(self, conn: sqlite3.Connection) -> None:
        """Check that the file is ours and not newer, switch to WAL, apply pending migrations."""
        try:
            version = check_header(conn, self.path)
            if version == schema_version() and not self._memory:
                mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
                if str(mode).lower() == "wal":
                    return
            if not self._memory:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise JournalUnavailable(f"journal file {self.path}: cannot switch to WAL mode (got {mode!r})")
            if version < schema_version():
                conn.execute("BEGIN IMMEDIATE")
                try:
                    version = check_header(conn, self.path)  # another process may have migrated meanwhile
                    for migration in _schema.MIGRATIONS[version:]:
                        for statement in migration:
                            conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {schema_version()}")
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
        except sqlite3.Error as exc:
            raise self._error(exc, "opening it") from exc

    # ------------------------------------------------------------------ running work in threads

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(conn)` in the writer thread's next group commit and return its result.

        The wait is shielded from cancellation: once queued, the write may commit, so
        the caller learns how it ended (a cancelled caller sees the cancellation at
        its next checkpoint).
        """
        done = anyio.Event()
        op = _Op(fn, _call_soon_threadsafe(), done.set)
        with self._worker_lock:
            if self._worker is None:
                self._worker = _Worker(self)
            self._worker.ops.put(op)
        with anyio.CancelScope(shield=True):
            await done.wait()
        if op.error is not None:
            raise op.error
        return op.result  # type: ignore[no-any-return]

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._memory:  # one connection: the writer's
            return await self._write(fn)
        return await anyio.to_thread.run_sync(self._read_sync, fn)

    def _read_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` in a read transaction on a pooled reader connection (WAL: never blocks writers)."""
        self._ensure_open()
        with self._pool_lock:
            generation = self._generation
            conn = self._pool.pop()[1] if self._pool else None
        if conn is None:
            conn = self._connect()
        keep = False
        try:
            conn.execute("BEGIN")
            try:
                return fn(conn)
            finally:
                conn.execute("ROLLBACK")
                keep = True  # the connection is clean again, whatever `fn` did
        except sqlite3.Error as exc:
            raise self._error(exc, "reading it") from exc
        finally:
            with self._pool_lock:
                if keep and generation == self._generation and len(self._pool) < _POOL_SIZE:
                    self._pool.append((generation, conn))
                    conn = None
            if conn is not None:
                conn.close()

    def _run_batch(self, batch: list[_Op]) -> None:
        """Run `batch` as one group commit and keep each op's result or error; never raises.

        One ``BEGIN IMMEDIATE`` transaction, each op in its own savepoint (so one
        failing op, e.g. a stale append, does not undo the others), one commit.
        """
        try:
            conn = self._ensure_open()
            conn.execute("BEGIN IMMEDIATE")
        except BaseException as exc:
            error = self._error(exc, "starting a transaction") if isinstance(exc, sqlite3.Error) else exc
            for op in batch:
                op.error = error
            return
        ok: list[_Op] = []
        try:
            if len(batch) == 1:
                self._run_op(conn, batch[0], ok)
            else:
                for op in batch:
                    conn.execute("SAVEPOINT op")
                    if not self._run_op(conn, op, ok):
                        conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
            conn.execute("COMMIT" if ok else "ROLLBACK")
        except BaseException as exc:
            # The transaction is lost: every operation that had not failed on its own
            # (committed in a savepoint, or not run yet) fails with the cause.
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            error = self._error(exc, "committing") if isinstance(exc, sqlite3.Error) else exc
            for op in batch:
                if op.error is None:
                    op.result, op.error = None, error

    def _run_op(self, conn: sqlite3.Connection, op: _Op, ok: list[_Op]) -> bool:
        try:
            op.result = op.fn(conn)
        except sqlite3.Error as exc:
            op.error = self._error(exc, "writing")
            return False
        except Exception as exc:
            op.error = exc
            return False
        ok.append(op)
        return True

    # ------------------------------------------------------------------ operations (writer and worker threads)

    def _claim_op(self, run_id: str, conn: sqlite3.Connection) -> int:
        now = time.time()
        row = conn.execute("SELECT attempt FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            conn.execute("INSERT INTO runs (id, created, updated, attempt) VALUES (?, ?, ?, 1)", (run_id, now, now))
            return 1
        attempt = int(row[0]) + 1
        conn.execute("UPDATE runs SET attempt = ?, updated = ? WHERE id = ?", (attempt, now, run_id))
        return attempt

    def _append_fn(
        self, codec: Codec, run_id: str, attempt: int, at: int, entries: Sequence[Entry]
    ) -> Callable[[sqlite3.Connection], None]:
        """The write op appending `entries` (encoded here, so the writer thread only runs SQL)."""
        rows: list[tuple[str, str]] = []
        status: str | None = None
        model: str | None = None
        for entry in entries:
            rows.append((type(entry).__name__, codec.encode(entry)))
            if isinstance(entry, Started):
                status, model = "running", entry.model
            elif isinstance(entry, Ended):
                status = entry.reason
        return partial(self._append_op, run_id, attempt, at, rows, status, model)

    def _append_op(
        self,
        run_id: str,
        attempt: int,
        at: int,
        rows: list[tuple[str, str]],
        status: str | None,
        model: str | None,
        conn: sqlite3.Connection,
    ) -> None:
        found = conn.execute("SELECT attempt, length, meta FROM runs WHERE id = ?", (run_id,)).fetchone()
        latest, length, meta = found if found is not None else (0, 0, "{}")  # never claimed: refused below
        check_append(run_id, attempt, latest, at, length)
        if not rows:
            return
        conn.executemany(
            "INSERT INTO entries (run_id, seq, attempt, kind, data) VALUES (?, ?, ?, ?, ?)",
            [(run_id, length + i, attempt, kind, data) for i, (kind, data) in enumerate(rows)],
        )
        if model is not None:
            meta = json.dumps({**self._json(meta, f"run {run_id!r} metadata"), "model": model})
        conn.execute(
            "UPDATE runs SET length = ?, updated = ?, status = COALESCE(?, status), meta = ? WHERE id = ?",
            (length + len(rows), time.time(), status, meta, run_id),
        )

    def _load_op(self, codec: Codec, run_id: str, conn: sqlite3.Connection) -> list[Entry]:
        found = conn.execute("SELECT length FROM runs WHERE id = ?", (run_id,)).fetchone()
        rows = conn.execute("SELECT seq, data FROM entries WHERE run_id = ? ORDER BY seq", (run_id,)).fetchall()
        expected = found[0] if found is not None else 0
        if len(rows) != expected:
            raise JournalCorrupt(
                f"journal file {self.path}: run {run_id!r} should have {expected} entries but has {len(rows)}"
            )
        entries: list[Entry] = []
        for index, (seq, data) in enumerate(rows):
            if seq != index:
                raise JournalCorrupt(f"journal file {self.path}: run {run_id!r} is missing entry {index}")
            try:
                entries.append(codec.decode(data))
            except JournalCorrupt as exc:
                raise JournalCorrupt(f"journal file {self.path}: run {run_id!r}, entry {seq}: {exc}") from exc
        return entries

    def _run_info_op(self, run_id: str, conn: sqlite3.Connection) -> RunInfo | None:
        row = conn.execute(
            "SELECT id, created, updated, attempt, status, length, meta FROM runs WHERE id = ?", (run_id,)
        ).fetchone()
        if row is None:
            return None
        meta = self._json(row[6], f"run {run_id!r} metadata")
        return RunInfo(row[0], row[1], row[2], row[3], row[4], row[5], str(meta.get("model", "")))

    def _json(self, text: str, what: str) -> dict[str, Any]:
        try:
            value = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise JournalCorrupt(f"journal file {self.path}: {what} is not valid JSON: {text!r:.80}") from exc
        if not isinstance(value, dict):
            raise JournalCorrupt(f"journal file {self.path}: {what} is not a JSON object: {text!r:.80}")
        return value

    # -- threads

    _THREAD_COLUMNS = "id, name, created, updated, archived, parent_id, fork_run_id, meta"

    def _thread(self, conn: sqlite3.Connection, row: Sequence[Any], run_ids: Sequence[str] | None = None) -> Thread:
        if run_ids is None:
            run_ids = [
                r[0]
                for r in conn.execute(
                    "SELECT run_id FROM thread_runs WHERE thread_id = ? ORDER BY position", (row[0],)
                ).fetchall()
            ]
        meta = self._json(row[7], f"thread {row[0]!r} metadata")
        return Thread(row[0], row[1], row[2], row[3], bool(row[4]), row[5], row[6], tuple(run_ids), meta)

    def _thread_row(self, conn: sqlite3.Connection, thread_id: str) -> Sequence[Any]:
        row = conn.execute(f"SELECT {self._THREAD_COLUMNS} FROM threads WHERE id = ?", (thread_id,)).fetchone()
        if row is None:
            raise ThreadNotFound(f"no thread {thread_id!r} in journal file {self.path}")
        return row  # type: ignore[no-any-return]

    def _get_thread_op(self, thread_id: str, conn: sqlite3.Connection) -> Thread | None:
        try:
            return self._thread(conn, self._thread_row(conn, thread_id))
        except ThreadNotFound:
            return None

    def _list_threads_op(self, archived: bool | None, conn: sqlite3.Connection) -> list[Thread]:
        where, params = ("", ()) if archived is None else (" WHERE archived = ?", (int(archived),))
        rows = conn.execute(f"SELECT {self._THREAD_COLUMNS} FROM threads{where} ORDER BY seq", params).fetchall()
        runs: dict[str, list[str]] = {}
        for thread_id, run_id in conn.execute("SELECT thread_id, run_id FROM thread_runs ORDER BY thread_id, position"):
            runs.setdefault(thread_id, []).append(run_id)
        return [self._thread(conn, row, runs.get(row[0], [])) for row in rows]

    def _create_thread_op(
        self,
        thread_id: str,
        name: str,
        meta: str,
        parent_id: str | None,
        fork_run_id: str | None,
        run_ids: Sequence[str],
        conn: sqlite3.Connection,
    ) -> Thread:
        now = time.time()
        try:
            conn.execute(
                "INSERT INTO threads (id, name, created, updated, archived, parent_id, fork_run_id, meta)"
                " VALUES (?, ?, ?, ?, 0, ?, ?, ?)",
                (thread_id, name, now, now, parent_id, fork_run_id, meta),
            )
        except sqlite3.IntegrityError:
            raise ThreadExists(f"thread {thread_id!r} already exists in journal file {self.path}") from None
        conn.executemany(
            "INSERT INTO thread_runs (thread_id, position, run_id, added) VALUES (?, ?, ?, ?)",
            [(thread_id, i, run_id, now) for i, run_id in enumerate(run_ids)],
        )
        return self._thread(conn, self._thread_row(conn, thread_id), run_ids)

    def _add_run_op(self, thread_id: str, run_id: str, conn: sqlite3.Connection) -> Thread:
        self._thread_row(conn, thread_id)
        now = time.time()
        added = conn.execute(
            "INSERT OR IGNORE INTO thread_runs (thread_id, position, run_id, added)"
            " VALUES (?, (SELECT COALESCE(MAX(position) + 1, 0) FROM thread_runs WHERE thread_id = ?), ?, ?)",
            (thread_id, thread_id, run_id, now),
        ).rowcount
        if added:
            conn.execute("UPDATE threads SET updated = ? WHERE id = ?", (now, thread_id))
        return self._thread(conn, self._thread_row(conn, thread_id))

    def _fork_op(
        self,
        thread_id: str,
        at_run: str | None,
        name: str | None,
        new_id: str,
        meta: str | None,
        conn: sqlite3.Connection,
    ) -> Thread:
        parent = self._thread(conn, self._thread_row(conn, thread_id))
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

    def _create_fork_op(
        self,
        thread_id: str,
        run_ids: tuple[str, ...],
        fork_run_id: str | None,
        name: str | None,
        new_id: str,
        meta: str | None,
        conn: sqlite3.Connection,
    ) -> Thread:
        parent = self._thread(conn, self._thread_row(conn, thread_id))
        if fork_run_id is not None and fork_run_id not in parent.run_ids:
            raise ValueError(
                f"fork_run_id {fork_run_id!r} is not in thread {thread_id!r} (runs: {', '.join(parent.run_ids) or 'none'})"
            )
        meta = json.dumps(dict(parent.metadata)) if meta is None else meta
        return self._create_thread_op(
            new_id, parent.name if name is None else name, meta, thread_id, fork_run_id, run_ids, conn
        )

    def _update_thread_op(
        self, thread_id: str, name: str | None, archived: bool | None, meta: str | None, conn: sqlite3.Connection
    ) -> Thread:
        self._thread_row(conn, thread_id)
        conn.execute(
            "UPDATE threads SET name = COALESCE(?, name), archived = COALESCE(?, archived),"
            " meta = COALESCE(?, meta), updated = ? WHERE id = ?",
            (name, None if archived is None else int(archived), meta, time.time(), thread_id),
        )
        return self._thread(conn, self._thread_row(conn, thread_id))


def check_header(conn: sqlite3.Connection, path: str) -> int:
    """Return the file's schema version after checking it is an agent-kernel journal this plugin reads.

    Raises:
        JournalCorrupt: another application's database, or a newer schema.
        sqlite3.DatabaseError: the file is not a database or is corrupted.
    """
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
    if app_id != APPLICATION_ID:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name LIMIT 5"
            ).fetchall()
        ]
        if app_id != 0 or version != 0 or tables:
            raise JournalCorrupt(
                f"journal file {path} is an SQLite database but not an agent-kernel journal "
                f"(application_id {app_id:#x}, user_version {version}, tables: {', '.join(tables) or 'none'}); "
                "refusing to modify it"
            )
    if version > schema_version():
        raise JournalCorrupt(
            f"journal file {path} has schema version {version}, but this agent-plugin-sqlite reads schema "
            f"versions up to {schema_version()}; upgrade agent-plugin-sqlite to open it (the file was not modified)"
        )
    return version
