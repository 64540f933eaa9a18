"""agent-plugin-sqlite: the embedded SQLite journal for agent-kernel.

Usage::

    from agent_kernel import Agent
    from agent_plugin_sqlite import SqliteJournal

    agent = Agent(model="openai:gpt-4o-mini", plugins=[SqliteJournal("runs.db")])
    outcome = await agent.run("...")
    # later, in any process that opens the same file:
    outcome = await agent.resume(outcome.run_id)

`SqliteJournal(path, *, durability="commit")` is a plugin: its ``agent_register_runtime``
makes it the agent's journal (``runtime.set_journal``). It implements the kernel's
`agent_kernel.journal.Journal` protocol on one SQLite file in WAL mode, and adds a
small thread API for memory plugins (`Thread`, `SqliteJournal.create_thread`, ...).

Autoloading
===========

The distribution declares the entry point ``sqlite`` (group ``agent_kernel.plugins``)
pointing at this module. The module registers **no journal** when autoloaded (a journal
needs a path: pass ``SqliteJournal(path)`` to the agent); it only implements
``agent_register_commands`` to add ``agent-kernel sqlite PATH [--run ID] [--check]``,
which prints a journal file's runs, threads or one run's entries as JSON, read-only.
An instance passed to the agent (also named ``sqlite``) replaces the autoloaded module.

Guarantees
==========

* Durability: entries are committed before `append` returns, so before the kernel's
  next side effect (an inference, a tool call), see "Durability modes" below.
* Fencing: `claim` increments the run's attempt in a ``BEGIN IMMEDIATE`` transaction;
  `append` checks the attempt in the same transaction as the insert and raises
  `StaleAttempt` naming both attempts. SQLite's file lock makes this hold between
  processes sharing the file.
* Never blocks the event loop, under trio and asyncio alike: writes go to the
  journal's writer thread, reads to worker threads (`anyio.to_thread`). Writers in
  one process (any task, event loop or OS thread) share one connection and are
  group-committed: the writer thread commits every write queued meanwhile in one
  transaction, each in its own savepoint with its own fencing check, then wakes each
  waiting task on its own event loop. Reads use a small pool of reader connections
  (WAL readers never block the writer).
* Schema: versioned with ``PRAGMA user_version`` and marked with ``PRAGMA
  application_id``; pending migrations (`agent_plugin_sqlite._schema.MIGRATIONS`) run on
  open in one transaction. A file from a newer schema, another application's SQLite
  database, or a corrupted or truncated file raises `JournalCorrupt` naming the file,
  and is never modified.

Durability modes
================

``durability="commit"`` (the default)
    ``PRAGMA synchronous=FULL``: every append is a transaction that is committed and
    synced to disk before `append` returns. A crash of the process, the OS or the
    machine loses nothing that had an effect. Cost: one fsync of the WAL per commit
    (group commit shares it between concurrent runs of one process).

``durability="batched"``
    ``PRAGMA synchronous=NORMAL`` (WAL): every append is still an atomic, committed
    transaction before `append` returns, so a crash of the *process* loses nothing and
    fencing is unchanged; but the WAL is synced only at checkpoints, so a power loss or
    OS crash may roll back the last transactions (a resumed run then redoes the lost
    phases: an LLM turn may be requested again, a non-idempotent tool call whose intent
    was lost may run again). The file is never corrupted. Much cheaper per step.

Configuration
=============

``[plugins.sqlite]`` in ``agent.toml`` (read by ``agent-kernel`` and
``agent_kernel.config.load_config``) is structured into `Settings` (``path``,
required; ``durability``; ``timeout``), whose ``plugin()`` is the configured
`SqliteJournal`.

Files
=====

Tables (schema version 1): ``runs`` (id, created, updated, attempt = fencing token,
status, number of entries, JSON metadata), ``entries`` (run_id, seq, attempt, kind,
JSON data from the agent's codec), ``threads`` (id, name, created, updated, archived,
parent thread, fork point, JSON metadata) and ``thread_runs`` (thread id, position,
run id). Do not share a journal object across ``fork()``; open it again in the child.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from attrs import frozen

from agent_kernel import hookimpl

from ._journal import Durability as Durability
from ._journal import JournalUnavailable as JournalUnavailable
from ._journal import RunInfo as RunInfo
from ._journal import SqliteJournal as SqliteJournal
from ._journal import Thread as Thread
from ._journal import ThreadExists as ThreadExists
from ._journal import ThreadNotFound as ThreadNotFound
from ._schema import schema_version as schema_version

if TYPE_CHECKING:
    from agent_kernel import CommandRegistrar


@frozen
class Settings:
    """``[plugins.sqlite]`` in ``agent.toml``: make `SqliteJournal(path)` the journal."""

    path: str
    durability: Literal["commit", "batched"] = "commit"
    timeout: float = 30.0

    def plugin(self) -> SqliteJournal:
        """The configured `SqliteJournal`."""
        return SqliteJournal(self.path, durability=self.durability, timeout=self.timeout)


__version__ = "0.1.0"

__all__ = [
    "Settings",
    "Durability",
    "JournalUnavailable",
    "RunInfo",
    "SqliteJournal",
    "Thread",
    "ThreadExists",
    "ThreadNotFound",
    "schema_version",
]


@hookimpl
def agent_register_commands(commands: CommandRegistrar) -> None:
    """Add ``agent-kernel sqlite PATH``: inspect a journal file (read-only)."""
    from . import _command

    commands.add("sqlite", _command.configure, _command.run, help=_command.HELP)
