"""Properties: the state machine is never broken and history is append-only and ordered.

1. Random operation sequences on a real jobs file (every operation a client or a
   worker can make, by several workers, with leases that expire), checked after
   every step against `TRANSITIONS`.
2. Random pause / resume / cancel timings on jobs run by a real worker: the same
   invariants, and a completed job's model turns were each requested exactly once.
"""

from __future__ import annotations

import contextlib
import itertools
import tempfile

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from jobs_testkit import Factory, Gate, steps_script

from agent_plugin_jobs import FINAL, STATUSES, TRANSITIONS, IllegalTransition, JobQueue, JobStore, PendingApproval
from agent_plugin_jobs._model import OUTCOME_STATUS

WORKERS = st.sampled_from(["w1", "w2"])


def check_history(store: JobStore, job_id: str) -> list[tuple[object, ...]]:
    """Assert the invariants of one job's history; return it as tuples."""
    history = store.history(job_id)
    assert history, f"job {job_id} has no history"
    assert history[0].old is None and history[0].new == "queued"
    for before, after in itertools.pairwise(history):
        assert after.seq > before.seq, "history out of order"
        assert after.at >= before.at, "history goes back in time"
        assert after.old == before.new, f"history skips from {before.new} to {after.old}"
        assert after.new in TRANSITIONS[after.old], f"illegal transition {after.old} -> {after.new}"
    job = store.get(job_id)
    assert job.status == history[-1].new
    assert (job.owner is not None) == (job.status == "running")
    assert job.request is None or job.status == "running"
    return [(c.seq, c.at, c.old, c.new, c.detail) for c in history]


class JobMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory()
        self.store = JobStore(f"{self.tmp.name}/jobs.db")
        self.jobs: list[str] = []
        self.seen: dict[str, list[tuple[object, ...]]] = {}

    def teardown(self) -> None:
        self.store.close()
        self.tmp.cleanup()

    def attempt(self, job_id: str, operation, *args) -> None:
        """Run `operation`; an illegal one must raise `IllegalTransition` and change nothing."""
        before = self.store.get(job_id)
        try:
            operation(*args)
        except IllegalTransition as exc:
            assert job_id in str(exc) or "already" in str(exc)
            assert self.store.get(job_id) == before

    @rule(input=st.text(max_size=5))
    def add(self, input: str) -> None:
        self.jobs.append(self.store.add(input).id)

    @precondition(lambda self: self.jobs)
    @rule(data=st.data(), op=st.sampled_from(["pause", "cancel", "resume"]))
    def client(self, data: st.DataObject, op: str) -> None:
        job_id = data.draw(st.sampled_from(self.jobs))
        self.attempt(job_id, getattr(self.store, op), job_id)

    @precondition(lambda self: self.jobs)
    @rule(worker=WORKERS, expired=st.booleans())
    def claim(self, worker: str, expired: bool) -> None:
        claimed = self.store.claim(worker, -1.0 if expired else 60.0)
        if claimed is not None:
            assert claimed[0].status == "running" and claimed[0].owner == worker

    def running(self) -> list[tuple[str, str]]:
        return [(j.id, j.owner or "") for j in self.store.list(["running"])]

    @precondition(lambda self: self.running())
    @rule(data=st.data(), reason=st.sampled_from(sorted(OUTCOME_STATUS)))
    def finish(self, data: st.DataObject, reason: str) -> None:
        job_id, owner = data.draw(st.sampled_from(self.running()))
        pending = [PendingApproval("r1", "t", "why")] if reason == "suspended" else []
        assert self.store.finish(owner, job_id, OUTCOME_STATUS[reason], reason, pending=pending)
        assert self.store.get(job_id).status == OUTCOME_STATUS[reason]

    @precondition(lambda self: self.running())
    @rule(data=st.data(), default=st.sampled_from(["queued", "failed"]))
    def interrupted(self, data: st.DataObject, default: str) -> None:
        job_id, owner = data.draw(st.sampled_from(self.running()))
        request = self.store.get(job_id).request
        assert self.store.interrupted(owner, job_id, default)  # type: ignore[arg-type]
        expected = {"pause": "paused", "cancel": "cancelled", None: default}[request]
        assert self.store.get(job_id).status == expected

    @precondition(lambda self: self.jobs)
    @rule(data=st.data(), worker=WORKERS, reason=st.sampled_from(sorted(OUTCOME_STATUS)))
    def finish_by_a_stranger(self, data: st.DataObject, worker: str, reason: str) -> None:
        job_id = data.draw(st.sampled_from(self.jobs))
        before = self.store.get(job_id)
        if before.owner == worker:
            return
        assert not self.store.finish(worker, job_id, OUTCOME_STATUS[reason], reason)
        assert not self.store.interrupted(worker, job_id, "queued")
        assert self.store.get(job_id) == before

    @precondition(lambda self: self.jobs)
    @rule(data=st.data(), worker=WORKERS)
    def renew(self, data: st.DataObject, worker: str) -> None:
        job_id = data.draw(st.sampled_from(self.jobs))
        before = self.store.get(job_id)
        answer = self.store.renew(worker, [job_id], 60.0)[job_id]
        mine = before.status == "running" and before.owner == worker
        assert answer == (before.request if mine else False)

    @precondition(lambda self: self.jobs)
    @rule(data=st.data())
    def resume_suspended_with_decision(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from(self.jobs))
        request = data.draw(st.sampled_from(["r1", "bogus"]))
        self.attempt(job_id, self.store.resume, job_id, {request: {"approve": None}})

    @invariant()
    def histories_are_legal_and_append_only(self) -> None:
        for job_id in self.jobs:
            now = check_history(self.store, job_id)
            before = self.seen.get(job_id, [])
            assert now[: len(before)] == before, "history was rewritten"
            self.seen[job_id] = now
        assert {j.status for j in self.store.list()} <= set(STATUSES)


JobMachine.TestCase.settings = settings(stateful_step_count=40, deadline=None)
test_job_state_machine = JobMachine.TestCase


@given(
    steps=st.integers(1, 3),
    ops=st.lists(
        st.tuples(st.sampled_from(["pause", "resume", "cancel"]), st.floats(0, 0.03)),
        max_size=5,
    ),
)
@settings(max_examples=15, deadline=None)  # real runs: fewer, slower examples
def test_random_pauses_resumes_and_cancels_on_real_runs(tmp_path_factory: pytest.TempPathFactory, steps, ops):
    tmp = tmp_path_factory.mktemp("jobs")
    factory = Factory(tmp / "runs.db", steps_script(steps), Gate())

    async def main() -> None:
        async with JobQueue(tmp / "jobs.db") as queue:
            job = await queue.add("go", model="scripted")
            async with queue.worker(factory, poll=0.01) as worker:
                for op, delay in ops:
                    await anyio.sleep(delay)
                    with contextlib.suppress(IllegalTransition):
                        await getattr(queue, op)(job.id)
                with anyio.fail_after(20):
                    while (current := await queue.get(job.id)).request is not None:
                        await anyio.sleep(0.01)  # a pause or cancel the worker has not applied yet
                if current.status in ("paused", "failed"):
                    await queue.resume(job.id)
                with anyio.fail_after(20):
                    await queue.wait(job.id, FINAL)
                    await worker.drain()
            store = JobStore(tmp / "jobs.db")
            check_history(store, job.id)
            store.close()
            done = await queue.get(job.id)
            if done.status == "completed":
                assert done.output == "done" and done.progress.steps == steps + 1
                assert factory.requests(job.id) == steps + 1  # no recorded turn asked again

    anyio.run(main, backend="trio")
