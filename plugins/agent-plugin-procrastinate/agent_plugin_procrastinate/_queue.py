"""`RunQueue` and the worker: runs driven by procrastinate jobs, journaled by `PostgresJournal`."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import anyio
import anyio.to_thread
import procrastinate
import psycopg
from attrs import frozen
from procrastinate import jobs as procrastinate_jobs
from procrastinate.schema import SchemaManager

from agent_kernel import Agent, ApprovalRequest, Approve, Deny, ToolCall, patches
from agent_kernel.config import import_object
from agent_kernel.errors import AgentError, RunExists, StaleAttempt
from agent_kernel.journal import Committed, Decided, Ended, Inferred, Waiting
from agent_plugin_postgres import JournalUnavailable, PostgresJournal

__all__ = ["QUEUE", "TASK", "AgentFactory", "RunQueue", "Settled", "build_app", "serve"]

log = logging.getLogger("agent_plugin_procrastinate")

TASK = "agent_kernel.drive"
SWEEP = "agent_kernel.requeue_stalled"
QUEUE = "agent_kernel"
#: Reasons after which a run waits for nobody but a person (a decision) or is done.
SETTLED = ("completed", "stopped", "suspended", "error")
FINAL = ("completed", "stopped")

AgentFactory = Callable[[PostgresJournal], Agent]


@frozen
class Settled:
    """How a run's last invocation ended, read from the journal (for runs not completed or stopped).

    Attributes:
        reason: ``suspended`` or ``error`` (or ``cancelled``).
        run_id: the run.
        pending: approval requests still waiting for a decision (when suspended).
        error: the error message (when it failed).
        output: "" (the final text exists only for completed runs).
    """

    reason: str
    run_id: str
    pending: tuple[ApprovalRequest, ...] = ()
    error: str | None = None
    output: str = ""


class _NotEnded(AgentError):
    """The invocation ended but its end could not be journaled (the database went away): try again."""


def encode_decisions(decisions: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Decisions as JSON for a job's arguments."""
    out: dict[str, dict[str, Any]] = {}
    for request_id, decision in decisions.items():
        if isinstance(decision, Approve):
            args = None if decision.arguments is None else dict(decision.arguments)
            out[request_id] = {"approve": True, "arguments": args}
        elif isinstance(decision, Deny):
            out[request_id] = {"approve": False, "reason": decision.reason}
        else:
            raise TypeError(f"decision for {request_id!r} must be Approve(...) or Deny(...), got {decision!r}")
    return out


def decode_decisions(data: Mapping[str, Any] | None) -> dict[str, Approve | Deny]:
    """The inverse of `encode_decisions`."""
    return {
        request_id: Approve(value.get("arguments")) if value["approve"] else Deny(value.get("reason", "denied"))
        for request_id, value in (data or {}).items()
    }


def pending_requests(run_id: str, entries: list[Any]) -> tuple[ApprovalRequest, ...]:
    """The approval requests of a run's journal that no `Decided` entry answered, in order.

    Requests come from `Suspend` patches committed for a tool call (the kernel names
    them ``run/step/call``) and from `Waiting` entries (a tool raised `ToolSuspended`).
    """
    calls: dict[str, ToolCall] = {}
    requests: dict[str, ApprovalRequest] = {}
    for entry in entries:
        if isinstance(entry, Inferred):
            for call in entry.response.message.tool_calls:
                calls[call.id] = call
        elif isinstance(entry, Committed) and entry.call_id is not None:
            for index, patch in enumerate(entry.patches):
                if isinstance(patch, patches.Suspend) and entry.call_id in calls:
                    call = calls[entry.call_id]
                    request_id = f"{run_id}/{entry.step}/{call.id}"
                    plugin = entry.sources[index] if index < len(entry.sources) else ""
                    requests.setdefault(
                        request_id, ApprovalRequest(request_id, call, call.name, patch.reason, entry.step, plugin)
                    )
        elif isinstance(entry, Waiting):
            for request in entry.requests:
                requests.setdefault(request.id, request)
        elif isinstance(entry, Decided):
            requests.pop(entry.request_id, None)
    return tuple(requests.values())


def load_factory(spec: str) -> AgentFactory:
    """Import ``module:factory``: a callable taking the worker's `PostgresJournal` and returning an `Agent`."""
    factory = import_object(spec, "--agent", instantiate=False)
    if not callable(factory):
        raise AgentError(f"--agent {spec!r} is not callable: expected a function journal -> Agent")
    return factory  # type: ignore[return-value]


def ensure_schema(dsn: str) -> None:
    """Create procrastinate's tables in the database unless they exist (once, under an advisory lock)."""
    with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('agent-kernel-procrastinate-schema'))")
        row = conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()
        if row is None or row[0] is None:
            conn.execute(SchemaManager.get_schema())


class _Worker:
    """What the tasks of one worker process share: its journal and its agent."""

    def __init__(self, journal: PostgresJournal, agent: Agent, stalled_after: float) -> None:
        self.journal = journal
        self.agent = agent
        self.stalled_after = stalled_after

    async def invoke(self, run_id: str, input: str | None, decisions: Mapping[str, Any] | None) -> str:
        info = await self.journal.run_info(run_id)
        if input is not None and (info is None or info.entries == 0):
            try:
                outcome = await self.agent.run(input, run_id=run_id)
            except RunExists:  # another invocation's first entries landed after the look above
                outcome = await self.agent.resume(run_id, decisions=decode_decisions(decisions))
        else:
            outcome = await self.agent.resume(run_id, decisions=decode_decisions(decisions))
        if outcome.reason != "suspended":
            info = await self.journal.run_info(run_id)
            if info is not None and info.status == "running":
                raise _NotEnded(f"run {run_id!r} ended {outcome.reason} but its end is not journaled")
        return outcome.reason


def build_app(dsn: str, *, worker: _Worker | None = None) -> procrastinate.App:
    """The procrastinate app with the agent-kernel tasks (`worker` given: the worker process's app)."""
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn))

    @app.task(
        name=TASK,
        queue=QUEUE,
        pass_context=True,
        retry=procrastinate.RetryStrategy(
            max_attempts=1000, wait=1, retry_exceptions={_NotEnded, JournalUnavailable, psycopg.OperationalError}
        ),
    )
    async def drive(
        context: procrastinate.JobContext,
        run_id: str,
        input: str | None = None,
        decisions: dict[str, Any] | None = None,
    ) -> str:
        if worker is None:
            raise AgentError("this app was built for submitting runs, not for working on them")
        try:
            return await worker.invoke(run_id, input, decisions)
        except StaleAttempt as exc:
            # Fenced: another worker took the run over (this one was presumed dead).
            log.warning("run %s: fenced, another attempt holds it: %s", run_id, exc)
            return "fenced"
        except asyncio.CancelledError:
            # Draining (SIGTERM): the kernel journaled the run as cancelled; hand it on.
            with anyio.CancelScope(shield=True):
                await requeue(context.app, run_id)
            raise

    if worker is not None:
        every = max(1, min(59, round(worker.stalled_after / 3)))

        @app.periodic(cron=f"* * * * * */{every}", periodic_id="stalled")
        @app.task(name=SWEEP, queue=QUEUE, pass_context=True)
        async def sweep(context: procrastinate.JobContext, timestamp: int) -> int:
            return await requeue_stalled(context.app, worker.stalled_after)

    return app


async def requeue(app: procrastinate.App, run_id: str, decisions: dict[str, Any] | None = None) -> None:
    """Enqueue a job that resumes `run_id` (behind any job holding its lock)."""
    task = app.tasks[TASK]
    await task.configure(lock=run_id, queue=QUEUE).defer_async(run_id=run_id, decisions=decisions)


async def requeue_stalled(app: procrastinate.App, stalled_after: float) -> int:
    """Re-enqueue the runs of jobs whose worker stopped sending heartbeats; return how many.

    Each stalled job is replaced by a new job with the same arguments and lock, then
    marked failed, rather than retried in place: a worker presumed dead that comes
    back would otherwise finish the job a live worker is running (its own writes to
    the run are refused by the journal's fencing either way). Two sweepers racing
    may enqueue one run twice: the second job finds the run ahead of it and resumes
    it from where it is (a finished run makes no calls).
    """
    manager = app.job_manager
    stalled = await manager.get_stalled_jobs(queue=QUEUE, task_name=TASK, seconds_since_heartbeat=stalled_after)
    count = 0
    for job in stalled:
        args = dict(job.task_kwargs)
        run_id = str(args["run_id"])
        await app.tasks[TASK].configure(lock=run_id, queue=QUEUE).defer_async(**args)
        try:
            await manager.finish_job(job, status=procrastinate_jobs.Status.FAILED, delete_job=False)
        except Exception as exc:  # another sweeper got there first
            log.info("stalled job %s of run %s: %s", job.id, run_id, exc)
        log.warning("run %s: its worker stopped (job %s stalled); re-enqueued", run_id, job.id)
        count += 1
    return count


class RunQueue:
    """Submit runs to workers on many machines and read their outcomes (works under trio and asyncio).

    Args:
        dsn: the PostgreSQL database shared by the queue (procrastinate's tables) and
            the journal (`PostgresJournal`'s tables, schema `schema`).
        agent: ``module:factory``, the factory the workers use (a function taking a
            `PostgresJournal` and returning an `Agent`); `outcome` uses it to read a
            finished run's `Outcome` (read-only, nothing is claimed).
        schema: the journal's PostgreSQL schema.

    Use it as an async context manager, or call `aclose` when done.
    """

    def __init__(self, dsn: str, agent: str | AgentFactory, *, schema: str = "agent_kernel") -> None:
        self.dsn = dsn
        self._factory = agent if callable(agent) else None
        self._spec = agent if isinstance(agent, str) else None
        self.journal = PostgresJournal(dsn, schema=schema, pool_size=4)
        self._app: procrastinate.App | None = None
        self._agent: Agent | None = None

    async def __aenter__(self) -> RunQueue:
        await self._open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the queue's and the journal's connections."""
        app, self._app = self._app, None
        if app is not None:
            await anyio.to_thread.run_sync(app.close)
        await self.journal.aclose()

    async def _open(self) -> procrastinate.App:
        if self._app is None:
            await anyio.to_thread.run_sync(ensure_schema, self.dsn)
            app = build_app(self.dsn)
            await anyio.to_thread.run_sync(app.open)
            self._app = app
        return self._app

    async def submit(self, input: str, *, run_id: str | None = None) -> str:
        """Enqueue a new run of `input`; return its id (generated when omitted)."""
        app = await self._open()
        run_id = run_id or uuid.uuid4().hex
        deferrer = app.tasks[TASK].configure(lock=run_id, queue=QUEUE)
        await anyio.to_thread.run_sync(lambda: deferrer.defer(run_id=run_id, input=input))
        return run_id

    async def decide(self, run_id: str, decisions: Mapping[str, Approve | Deny]) -> None:
        """Enqueue the resume of `run_id` that applies `decisions` (request id -> `Approve` / `Deny`).

        A decision delivered twice is applied once (the journal records it).
        """
        app = await self._open()
        encoded = encode_decisions(decisions)
        deferrer = app.tasks[TASK].configure(lock=run_id, queue=QUEUE)
        await anyio.to_thread.run_sync(lambda: deferrer.defer(run_id=run_id, decisions=encoded))

    async def outcome(self, run_id: str, *, wait: bool = False, timeout: float | None = None) -> Any:
        """How `run_id` stands, from the journal; None while it runs (or is unknown).

        Returns:
            The run's `Outcome` once it completed or stopped; a `Settled` (reason,
            pending requests, error) when its last invocation suspended or failed;
            None while it is queued or running. With ``wait=True``, waits until the
            run settles (or `timeout` seconds pass: then None).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.05
        while True:
            found = await self._look(run_id)
            if found is not None or not wait:
                return found
            if deadline is not None and time.monotonic() >= deadline:
                return None
            await anyio.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    async def _look(self, run_id: str) -> Any:
        reader = self._reader()  # binds the agent's codec to the journal
        entries = await self.journal.load(run_id)
        if not entries or not isinstance(entries[-1], Ended):
            return None
        ended = entries[-1]
        if ended.reason not in SETTLED:
            return None
        if ended.reason in FINAL:
            return await reader.resume(run_id)  # read-only for a finished run
        pending = pending_requests(run_id, entries) if ended.reason == "suspended" else ()
        error = ended.error.message if ended.error is not None else None
        return Settled(ended.reason, run_id, pending, error)

    def _reader(self) -> Agent:
        if self._agent is None:
            factory = self._factory or load_factory(self._spec or "")
            self._agent = factory(self.journal)
        return self._agent


async def serve(
    dsn: str,
    agent: str | AgentFactory,
    *,
    concurrency: int = 4,
    stalled_after: float = 30.0,
    drain_timeout: float | None = 10.0,
    name: str | None = None,
    install_signal_handlers: bool = True,
) -> None:
    """Run a worker until SIGTERM/SIGINT (asyncio): take run jobs, drive their runs.

    On SIGTERM it stops taking jobs, lets running invocations finish for up to
    `drain_timeout` seconds, then cancels the rest: each is journaled ``cancelled``
    (resumable) and re-enqueued for another worker.
    """
    factory = agent if callable(agent) else load_factory(agent)
    journal = PostgresJournal(dsn, pool_size=max(2, concurrency + 1))
    worker = _Worker(journal, factory(journal), stalled_after)
    await anyio.to_thread.run_sync(ensure_schema, dsn)
    app = build_app(dsn, worker=worker)
    try:
        async with app.open_async():
            await app.run_worker_async(
                queues=[QUEUE],
                concurrency=concurrency,
                name=name,
                update_heartbeat_interval=max(0.2, stalled_after / 4),
                stalled_worker_timeout=stalled_after,
                shutdown_graceful_timeout=drain_timeout,
                install_signal_handlers=install_signal_handlers,
                fetch_job_polling_interval=1.0,
                abort_job_polling_interval=5.0,
            )
    finally:
        await journal.aclose()
