"""agent-plugin-jobs: background jobs for agent-kernel, persisted in SQLite.

Usage::

    from agent_kernel import Agent
    from agent_plugin_jobs import JobQueue
    from agent_plugin_sqlite import SqliteJournal

    journal = SqliteJournal("runs.db")

    def make_agent(job):
        return Agent(model=job.model, plugins=[journal, ...])

    async with JobQueue("jobs.db") as queue:
        job = await queue.add("Summarise the report", model="openai:gpt-4o-mini", max_steps=10)
        async with queue.worker(make_agent, concurrency=2) as worker:
            await queue.pause(job.id)  # the run is cancelled and stays resumable
            await queue.resume(job.id)  # queued again; the worker resumes the run
            await worker.drain()

A job is a run (input, model, run id) plus a status, progress and a history of status
changes. `TRANSITIONS` is the state machine; every change is checked against it and
appended to the job's history in the same SQLite transaction. Jobs live in their own
file (``PRAGMA user_version`` schema, ``application_id`` "AGKQ"); runs live in the
agents' journal. A worker renews a lease on its jobs; when it dies, another worker
takes them over after the lease and continues them with ``agent.resume`` (recorded
model turns and tool results are never redone; the journal's fencing stops the old
worker from committing).

Autoloading the entry point ``jobs`` adds only the ``agent-kernel jobs`` command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent_kernel import hookimpl

from ._model import FINAL as FINAL
from ._model import SETTLED as SETTLED
from ._model import STATUSES as STATUSES
from ._model import TRANSITIONS as TRANSITIONS
from ._model import Change as Change
from ._model import IllegalTransition as IllegalTransition
from ._model import Job as Job
from ._model import JobsError as JobsError
from ._model import JobStoreError as JobStoreError
from ._model import PendingApproval as PendingApproval
from ._model import Progress as Progress
from ._model import Status as Status
from ._model import UnknownJob as UnknownJob
from ._queue import AgentFactory as AgentFactory
from ._queue import JobQueue as JobQueue
from ._queue import Worker as Worker
from ._store import JobStore as JobStore
from ._store import schema_version as schema_version

if TYPE_CHECKING:
    from agent_kernel import CommandRegistrar

__version__ = "0.1.0"

__all__ = [
    "FINAL",
    "SETTLED",
    "STATUSES",
    "TRANSITIONS",
    "AgentFactory",
    "Change",
    "IllegalTransition",
    "Job",
    "JobQueue",
    "JobStore",
    "JobStoreError",
    "JobsError",
    "PendingApproval",
    "Progress",
    "Status",
    "UnknownJob",
    "Worker",
    "schema_version",
]


@hookimpl
def agent_register_commands(commands: CommandRegistrar) -> None:
    """Add ``agent-kernel jobs ...``."""
    from . import _command

    commands.add("jobs", _command.configure, _command.run, help=_command.HELP)
