"""`JobQueue` (async face of the jobs file) and `Worker` (runs queued jobs in the caller's task group)."""

from __future__ import annotations

import builtins
import inspect
import logging
import pathlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, TypeVar

import anyio
import anyio.abc

from agent_kernel import Agent, Approve, Deny, Outcome
from agent_kernel import events as ev
from agent_kernel.errors import RunExists, StaleAttempt
from agent_kernel.journal import Started

from ._model import OUTCOME_STATUS, SETTLED, Change, Job, PendingApproval, Progress, Status
from ._store import JobStore, StoredDecisions

_log = logging.getLogger("agent_plugin_jobs")

T = TypeVar("T")

#: Builds the agent that runs a job (called for every invocation, may be ``async``).
#: The agent must use a persistent journal (e.g. ``SqliteJournal``) for jobs to survive a restart.
AgentFactory = Callable[[Job], "Agent | Awaitable[Agent]"]

Decision = Approve | Deny


def encode_decisions(decisions: Mapping[str, Decision]) -> dict[str, dict[str, Any]]:
    """Approval decisions as the jobs file stores them."""
    stored: dict[str, dict[str, Any]] = {}
    for request_id, decision in decisions.items():
        if isinstance(decision, Approve):
            args = None if decision.arguments is None else dict(decision.arguments)
            stored[request_id] = {"approve": args}
        elif isinstance(decision, Deny):
            stored[request_id] = {"deny": decision.reason}
        else:
            raise TypeError(f"decision for {request_id!r} must be Approve(...) or Deny(...), got {decision!r}")
    return stored


def decode_decisions(stored: StoredDecisions) -> dict[str, Decision]:
    """The inverse of `encode_decisions`."""
    return {
        request_id: Approve(value["approve"]) if "approve" in value else Deny(value["deny"])
        for request_id, value in stored.items()
    }


class JobQueue:
    """Background jobs in a SQLite file: add, list, pause, resume, cancel, history, work.

    Usage::

        async with JobQueue("jobs.db") as queue:
            job = await queue.add("Summarise the report", model="openai:gpt-4o-mini")
            async with queue.worker(make_agent, concurrency=2) as worker:
                await worker.drain()

    Every method is async; SQLite runs in worker threads (`anyio.to_thread`), so the
    event loop is never blocked, under trio and asyncio alike. Several queues (in
    several processes) may share one file.

    Args:
        path: the jobs file (created if missing; its directory must exist).
        timeout: seconds to wait for another process's write lock.
    """

    def __init__(self, path: str | pathlib.Path, *, timeout: float = 30.0) -> None:
        self.path = str(path)
        self._timeout = timeout
        self._store: JobStore | None = None
        self._open_lock: anyio.Lock | None = None
        self._workers: set[Worker] = set()
        self._changed = anyio.Event()

    async def __aenter__(self) -> JobQueue:
        await self._call(lambda store: None)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file (idempotent); a later call opens it again."""
        if self._store is not None:
            self._store.close()
            self._store = None

    async def _call(self, method: Callable[[JobStore], T]) -> T:
        """Run `method(store)` in a worker thread, opening the file on first use."""
        if self._store is None:
            if self._open_lock is None:
                self._open_lock = anyio.Lock()
            async with self._open_lock:
                if self._store is None:
                    self._store = await anyio.to_thread.run_sync(partial(JobStore, self.path, timeout=self._timeout))
        store = self._store
        return await anyio.to_thread.run_sync(lambda: method(store))

    def _notify(self) -> None:
        """Wake whoever waits on a change made in this process."""
        self._changed.set()
        self._changed = anyio.Event()
        for worker in self._workers:
            worker._wake.set()

    # ------------------------------------------------------------------ operations

    async def add(
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
        """Queue a run of `input` as a new job.

        Args:
            input: the user message the run starts with.
            model: the model string for the agent factory.
            agent: a free-form agent profile name for the agent factory.
            job_id: the job's id (generated when omitted).
            run_id: the run's id in the agent's journal (default ``job-<job_id>``).
            max_steps: the total the progress bar shows (the factory may also enforce it).
            metadata: JSON-ready data for the agent factory.

        Raises:
            IllegalTransition: the job id or the run id is already used.
        """
        job = await self._call(
            lambda s: s.add(
                input, model=model, agent=agent, job_id=job_id, run_id=run_id, max_steps=max_steps, metadata=metadata
            )
        )
        self._notify()
        return job

    async def get(self, job_id: str) -> Job:
        """The job `job_id`; raises `UnknownJob`."""
        return await self._call(lambda s: s.get(job_id))

    async def list(self, status: Iterable[Status] | None = None) -> list[Job]:
        """Every job (or those with a status in `status`), oldest first."""
        wanted = None if status is None else tuple(status)
        return await self._call(lambda s: s.list(wanted))

    async def history(self, job_id: str) -> builtins.list[Change]:
        """Every status change of `job_id`, oldest first (append-only)."""
        return await self._call(lambda s: s.history(job_id))

    async def pause(self, job_id: str) -> Job:
        """Pause `job_id`: a queued job at once; a running one as soon as its worker sees the request.

        The run is cancelled between two commits and stays resumable in its journal.

        Raises:
            IllegalTransition: the job cannot be paused (finished, suspended, being cancelled).
        """
        return await self._interrupt(job_id, JobStore.pause)

    async def cancel(self, job_id: str) -> Job:
        """Cancel `job_id` for good (its run stays resumable with ``agent.resume(run_id)``).

        Raises:
            IllegalTransition: the job already finished.
        """
        return await self._interrupt(job_id, JobStore.cancel)

    async def _interrupt(self, job_id: str, operation: Callable[[JobStore, str], Job]) -> Job:
        job = await self._call(lambda s: operation(s, job_id))
        if job.status == "running":
            for worker in self._workers:
                worker._interrupt(job_id)
        self._notify()
        return job

    async def resume(self, job_id: str, decisions: Mapping[str, Decision] | None = None) -> Job:
        """Queue a paused, suspended or failed job again; its run resumes where it stopped.

        Args:
            job_id: the job.
            decisions: `Approve` / `Deny` by approval request id, for a suspended job.

        Raises:
            IllegalTransition: the job is not paused, suspended or failed, or a decision
                names a request the job is not waiting on.
        """
        stored = encode_decisions(decisions or {})
        job = await self._call(lambda s: s.resume(job_id, stored))
        self._notify()
        return job

    async def wait(self, job_id: str, statuses: Iterable[Status] = SETTLED, *, poll: float = 0.2) -> Job:
        """Wait until `job_id` has one of `statuses` and return it.

        By default: until it is neither queued nor running (finished, paused, suspended, failed).

        Changes made in this process wake it at once; others are seen every `poll` seconds.
        """
        wanted = frozenset(statuses)
        while True:
            changed = self._changed
            job = await self.get(job_id)
            if job.status in wanted:
                return job
            with anyio.move_on_after(poll):
                await changed.wait()

    @asynccontextmanager
    async def worker(
        self, agent_factory: AgentFactory, *, concurrency: int = 2, lease: float = 30.0, poll: float = 0.5
    ) -> AsyncIterator[Worker]:
        """Run queued jobs, at most `concurrency` at once, while the block lasts.

        The worker's tasks live in a task group opened here, in the caller's task. On
        leaving the block, jobs still running are interrupted and queued again (their
        runs stay resumable); a pause or cancel asked meanwhile is applied instead.

        Args:
            agent_factory: builds the agent for a job (see `AgentFactory`).
            concurrency: how many jobs run at once.
            lease: seconds a claim holds without renewal; a worker that dies loses its
                jobs to other workers after this long.
            poll: seconds between looks at the file (new jobs, requests from other
                processes, lease renewal). Must be less than ``lease / 2``.
        """
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if not 0 < poll < lease / 2:
            raise ValueError(f"poll ({poll}) must be positive and less than lease / 2 ({lease / 2})")
        worker = Worker(self, agent_factory, concurrency, lease, poll)
        async with anyio.create_task_group() as tg:
            await tg.start(worker._heartbeat)
            tg.start_soon(worker._serve, tg)
            self._workers.add(worker)
            try:
                yield worker
            finally:
                self._workers.discard(worker)
                with anyio.CancelScope(shield=True):
                    await worker._shutdown()
                tg.cancel_scope.cancel()


class Worker:
    """Runs claimed jobs; made by `JobQueue.worker`. `id` names it in the jobs' history."""

    def __init__(self, queue: JobQueue, factory: AgentFactory, concurrency: int, lease: float, poll: float) -> None:
        self.id = uuid.uuid4().hex[:8]
        self._queue = queue
        self._factory = factory
        self._concurrency = concurrency
        self._lease = lease
        self._poll = poll
        self._running: dict[str, anyio.CancelScope] = {}
        self._stopping = False
        self._wake = anyio.Event()
        self._idle = anyio.Event()

    @property
    def running(self) -> frozenset[str]:
        """Ids of the jobs this worker is running now."""
        return frozenset(self._running)

    async def drain(self) -> None:
        """Return once no job is queued or running, in this worker or any other."""
        while True:
            changed = self._queue._changed
            if not self._running and not await self._queue.list(("queued", "running")):
                return
            with anyio.move_on_after(self._poll):
                await changed.wait()

    def _interrupt(self, job_id: str) -> None:
        scope = self._running.get(job_id)
        if scope is not None:
            scope.cancel()

    async def _serve(self, tg: anyio.abc.TaskGroup) -> None:
        """Claim queued jobs while there is room; sleep until woken or `poll` passes."""
        while not self._stopping:
            while len(self._running) < self._concurrency and not self._stopping:
                claim = partial(JobStore.claim, owner=self.id, lease=self._lease, busy=tuple(self._running))
                claimed = await self._queue._call(claim)
                if claimed is None:
                    break
                job, decisions = claimed
                scope = anyio.CancelScope()
                self._running[job.id] = scope
                tg.start_soon(self._run_job, job, decode_decisions(decisions), scope)
            with anyio.move_on_after(self._poll):
                await self._wake.wait()
            self._wake = anyio.Event()

    async def _heartbeat(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Renew the leases of running jobs and apply pause/cancel requests from other processes."""
        task_status.started()
        while True:
            await anyio.sleep(self._poll)
            if not self._running:
                continue
            answers = await self._queue._call(
                partial(JobStore.renew, owner=self.id, job_ids=list(self._running), lease=self._lease)
            )
            for job_id, answer in answers.items():
                if answer is not None:  # a request, or False: another worker took the job over
                    self._interrupt(job_id)

    async def _shutdown(self) -> None:
        self._stopping = True
        for scope in self._running.values():
            scope.cancel()
        while self._running:
            await self._idle.wait()

    async def _run_job(self, job: Job, decisions: Mapping[str, Decision], scope: anyio.CancelScope) -> None:
        tracker = _Tracker(self, job)
        try:
            outcome: Outcome | None = None
            with scope:
                built = self._factory(job)
                agent: Agent = await built if inspect.isawaitable(built) else built
                outcome = await self._invoke(agent, job, decisions, tracker)
            await self._settle(job, outcome, tracker)
        except StaleAttempt as exc:  # another worker claimed the run: it owns the job now
            _log.warning("job %s: %s", job.id, exc)
        except Exception as exc:
            _log.exception("job %s failed in worker %s", job.id, self.id)
            message = f"{type(exc).__name__}: {exc}"
            await self._queue._call(
                lambda s: s.finish(self.id, job.id, "failed", message, progress=tracker.progress, error=message)
            )
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await self._queue._call(lambda s: s.interrupted(self.id, job.id, "queued", progress=tracker.progress))
            raise
        finally:
            del self._running[job.id]
            self._idle.set()
            self._idle = anyio.Event()
            self._wake.set()
            self._queue._notify()

    async def _invoke(
        self, agent: Agent, job: Job, decisions: Mapping[str, Decision], tracker: _Tracker
    ) -> Outcome | None:
        """Run or resume the job's run, updating its progress from the run's events."""
        started = any(isinstance(e, Started) for e in await agent.journal.load(job.run_id))
        if not started:
            try:
                return await self._stream(agent.stream(job.input, run_id=job.run_id), tracker)
            except RunExists:  # an earlier invocation's first entries landed after the look above
                pass
        return await self._stream(agent.stream(run_id=job.run_id, resume=True, decisions=decisions), tracker)

    async def _stream(self, stream: Any, tracker: _Tracker) -> Outcome | None:
        async with stream as events:
            async for event in events:
                if tracker.see(event):
                    await tracker.store()
        return events.outcome

    async def _settle(self, job: Job, outcome: Outcome | None, tracker: _Tracker) -> None:
        """Record how this invocation ended."""
        if outcome is None or outcome.reason == "cancelled":
            # interrupted by us (pause, cancel, shutdown, lost lease), or the run cancelled itself
            default: Status = "queued" if outcome is None else "failed"
            progress = tracker.progress if outcome is None else tracker.final(outcome)
            await self._queue._call(lambda s: s.interrupted(self.id, job.id, default, progress=progress))
            return
        status = OUTCOME_STATUS[outcome.reason]
        error = ""
        if outcome.error is not None:
            where = ".".join(filter(None, (outcome.error.plugin, outcome.error.hook)))
            error = f"{where}: {outcome.error.message}" if where else outcome.error.message
        detail = error or (f"{outcome.stop.code} {outcome.stop.detail}".strip() if outcome.stop else outcome.reason)
        pending = tuple(PendingApproval(r.id, r.tool, r.reason) for r in outcome.pending)
        await self._queue._call(
            lambda s: s.finish(
                self.id,
                job.id,
                status,
                detail,
                progress=tracker.final(outcome),
                output=outcome.output,
                error=error,
                pending=pending,
            )
        )


class _Tracker:
    """A job's progress, folded from its run's events (exact totals come from the outcome)."""

    def __init__(self, worker: Worker, job: Job) -> None:
        self._worker = worker
        self._job_id = job.id
        self.progress = job.progress

    def see(self, event: ev.Event) -> bool:
        """Fold `event` in; say whether the progress changed."""
        p = self.progress
        if isinstance(event, ev.StepStarted):
            self.progress = Progress(event.step, p.max_steps, p.tool_calls, p.input_tokens, p.output_tokens)
        elif isinstance(event, ev.ToolCallFinished):
            self.progress = Progress(p.steps, p.max_steps, p.tool_calls + 1, p.input_tokens, p.output_tokens)
        elif isinstance(event, ev.InferenceFinished):
            u = event.usage
            self.progress = Progress(
                p.steps, p.max_steps, p.tool_calls, p.input_tokens + u.input_tokens, p.output_tokens + u.output_tokens
            )
        else:
            return False
        return True

    def final(self, outcome: Outcome) -> Progress:
        """The exact progress once the run's invocation ended (whole-run counts)."""
        self.progress = Progress(
            outcome.stats.steps,
            self.progress.max_steps,
            outcome.stats.tool_calls,
            outcome.usage.input_tokens,
            outcome.usage.output_tokens,
        )
        return self.progress

    async def store(self) -> None:
        worker, progress = self._worker, self.progress
        await worker._queue._call(lambda s: s.progress(worker.id, self._job_id, progress))
        worker._queue._notify()
