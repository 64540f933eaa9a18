"""agent-plugin-procrastinate: agent runs on many machines, queued with procrastinate on PostgreSQL.

Usage::

    from agent_plugin_procrastinate import RunQueue
    from agent_kernel import Approve

    async with RunQueue("postgresql://app@db/agents", agent="myapp.agents:make_agent") as queue:
        run_id = await queue.submit("Summarise the report")
        found = await queue.outcome(run_id, wait=True, timeout=600)
        if found.reason == "suspended":
            await queue.decide(run_id, {r.id: Approve() for r in found.pending})

and on each machine: ``agent-kernel worker --dsn DSN --agent myapp.agents:make_agent``,
where ``make_agent(journal)`` returns an `Agent` whose plugins include `journal` (a
`agent_plugin_postgres.PostgresJournal` on the same database).

The journal is the single source of truth for a run; the queue only decides who works
on what (DESIGN §8). Every job of a run carries ``lock=run_id``, so two workers never
drive one run at once. A job starts the run (``agent.run``) or resumes it
(``agent.resume``, with decisions). A suspended run holds no worker: `RunQueue.decide`
enqueues the resume that applies the decisions. A worker that dies leaves its run
resumable; a periodic task re-enqueues the runs of workers whose heartbeat stopped
for ``--stalled-after`` seconds; a worker presumed dead that comes back is fenced by
the journal (its appends raise `StaleAttempt`). See ``docs/many-machines.md``.

Autoloading the entry point ``procrastinate`` adds the commands ``agent-kernel
worker``, ``submit``, ``decide`` and ``outcome``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from agent_kernel import hookimpl

if TYPE_CHECKING:
    from agent_kernel import CommandRegistrar

    from ._queue import QUEUE as QUEUE
    from ._queue import TASK as TASK
    from ._queue import AgentFactory as AgentFactory
    from ._queue import RunQueue as RunQueue
    from ._queue import Settled as Settled
    from ._queue import build_app as build_app
    from ._queue import requeue_stalled as requeue_stalled
    from ._queue import serve as serve

__version__ = "0.1.0"

__all__ = ["QUEUE", "TASK", "AgentFactory", "RunQueue", "Settled", "build_app", "requeue_stalled", "serve"]


def __getattr__(name: str) -> Any:
    # procrastinate and psycopg load on first use, not when the entry point is autoloaded
    if name in __all__:
        return getattr(importlib.import_module("._queue", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def agent_register_commands(commands: CommandRegistrar) -> None:
    """Add ``agent-kernel worker``, ``submit``, ``decide`` and ``outcome``."""
    from . import _command

    for name, (configure, run) in _command.COMMANDS.items():
        commands.add(name, configure, run, help=_command.HELP[name])
