"""agent-plugin-postgres: the PostgreSQL journal for agent-kernel (runs shared by many machines).

Usage::

    from agent_kernel import Agent
    from agent_plugin_postgres import PostgresJournal

    journal = PostgresJournal("postgresql://app@db.internal/agents")
    agent = Agent(model="openai:gpt-4o-mini", plugins=[journal])
    outcome = await agent.run("...")
    # later, on any machine that reaches the same database:
    outcome = await agent.resume(outcome.run_id)

`PostgresJournal(dsn, *, schema="agent_kernel", durability="commit")` is a plugin: its
``agent_register_runtime`` makes it the agent's journal. It implements the kernel's
`agent_kernel.journal.Journal` protocol, plus `run_info` and the thread API of
``agent_plugin_sqlite`` (`Thread`, `PostgresJournal.create_thread`, ...).

Guarantees
==========

* Durability: an `append` returns once its transaction is committed and (by default,
  ``synchronous_commit=on``) its WAL is flushed, so before the kernel's next side
  effect. ``durability="batched"`` (``synchronous_commit=off``) keeps atomicity and
  fencing but a crash of the *server* may lose the last fraction of a second of commits.
* Fencing: `claim` is one ``INSERT ... ON CONFLICT DO UPDATE`` that increments the run's
  attempt. `append` is one statement: an ``UPDATE`` of the run's row that matches only
  if the attempt is the newest **and** the log holds exactly ``at`` entries, and an
  ``INSERT`` of the entries fed by that ``UPDATE``; when it matches nothing, nothing is
  written and `StaleAttempt` is raised. Row locks make this hold between any number of
  processes and machines.
* Group commit: concurrent appends (of runs in one process or many) commit on their
  own pooled connections at once, and PostgreSQL flushes their WAL together.
* Never blocks the event loop: psycopg runs in worker threads (`anyio.to_thread`) with
  a ``psycopg_pool`` connection pool, under trio and asyncio alike.
* A restarted or briefly unreachable server: operations retry for ``timeout`` seconds
  (then `JournalUnavailable`). An append whose connection broke mid-commit checks
  whether it had landed before trying again, so it lands exactly once.
* Schema: the tables live in one PostgreSQL schema (``agent_kernel``), versioned by its
  ``schema_version`` table; pending migrations (`agent_plugin_postgres._schema.MIGRATIONS`)
  run on first use in one transaction under an advisory lock. A newer schema raises
  `JournalCorrupt` and is never modified.

Autoloading
===========

The entry point ``postgres`` registers **no journal** (a journal needs a DSN); it adds
``agent-kernel postgres DSN [--run ID] [--check]``, which prints the journal's runs or
one run's entries as JSON, read-only.

Testing
=======

`agent_plugin_postgres.testing.postgres_server()` starts a throwaway server (``initdb`` +
``pg_ctl`` in a temporary directory, free loopback port) and stops it by its PID.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from agent_kernel import hookimpl

from ._schema import schema_version as schema_version

if TYPE_CHECKING:
    from agent_kernel import CommandRegistrar

    from ._journal import Durability as Durability
    from ._journal import JournalUnavailable as JournalUnavailable
    from ._journal import PostgresJournal as PostgresJournal
    from ._journal import RunInfo as RunInfo
    from ._journal import Thread as Thread
    from ._journal import ThreadExists as ThreadExists
    from ._journal import ThreadNotFound as ThreadNotFound

__version__ = "0.1.0"

__all__ = [
    "Durability",
    "JournalUnavailable",
    "PostgresJournal",
    "RunInfo",
    "Thread",
    "ThreadExists",
    "ThreadNotFound",
    "schema_version",
]


def __getattr__(name: str) -> Any:
    # psycopg loads on first use, not when the entry point is autoloaded
    if name in __all__:
        return getattr(importlib.import_module("._journal", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def agent_register_commands(commands: CommandRegistrar) -> None:
    """Add ``agent-kernel postgres DSN``: inspect a PostgreSQL journal (read-only)."""
    from . import _command

    commands.add("postgres", _command.configure, _command.run, help=_command.HELP)
