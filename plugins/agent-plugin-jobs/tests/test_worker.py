"""Workers running real agents on a real SQLite journal, under trio and asyncio."""

from __future__ import annotations

import sqlite3
import threading

import anyio
import pytest
from jobs_testkit import Factory, FailOnce, Gate, Stall, SuspendTool, steps_script

from agent_kernel import Agent, Approve, Deny
from agent_kernel.testing import ScriptedModel, text, tool_call
from agent_plugin_jobs import IllegalTransition, JobQueue, Progress


def changes(history):
    return [(c.old, c.new) for c in history]


def test_jobs_run_to_completion_with_bounded_concurrency(run, db, journal_path):
    async def main():
        gate = Gate(open=False)
        factory = Factory(journal_path, steps_script(2), gate)
        async with JobQueue(db) as queue:
            jobs = [await queue.add(f"task {i}", model="scripted", max_steps=3) for i in range(3)]
            async with queue.worker(factory, concurrency=2, poll=0.05) as worker:
                await gate.entered.wait()
                await anyio.sleep(0.2)
                assert len(worker.running) == 2  # the third job waits for a free slot
                assert len(await queue.list(["queued"])) == 1
                gate.opened.set()
                await worker.drain()
            assert gate.most_running == 2
            for job in jobs:
                done = await queue.get(job.id)
                assert done.status == "completed" and done.output == "done", done
                assert done.progress == Progress(3, 3, 2, done.progress.input_tokens, done.progress.output_tokens)
                assert done.progress.input_tokens > 0 and done.progress.output_tokens > 0
                assert factory.requests(job.id) == 3
                assert changes(await queue.history(job.id)) == [
                    (None, "queued"),
                    ("queued", "running"),
                    ("running", "completed"),
                ]
                assert done.owner is None and done.invocations == 1

    run(main)


def test_progress_is_stored_while_the_run_goes(run, db, journal_path):
    async def main():
        gate = Gate(open=False)
        factory = Factory(journal_path, steps_script(3), gate)
        async with JobQueue(db) as queue:
            job = await queue.add("go", model="scripted", max_steps=4)
            async with queue.worker(factory, poll=0.05) as worker:
                await gate.entered.wait()
                await anyio.sleep(0.1)
                seen = await queue.get(job.id)
                assert seen.status == "running" and seen.owner == worker.id
                assert (seen.progress.steps, seen.progress.tool_calls) == (1, 0)
                assert seen.progress.fraction == 0.25
                gate.opened.set()
                done = await queue.wait(job.id)
            assert (done.progress.steps, done.progress.tool_calls, done.progress.fraction) == (4, 3, 1.0)

    run(main)


def test_pause_then_resume_continues_the_run_without_repeating_model_turns(run, db, journal_path):
    async def main():
        gate = Gate(open=False)
        factory = Factory(journal_path, steps_script(2), gate)
        async with JobQueue(db) as queue:
            job = await queue.add("go", model="scripted")
            async with queue.worker(factory, poll=0.05) as worker:
                await gate.entered.wait()
                paused = await queue.pause(job.id)
                assert paused.status in ("running", "paused")
                paused = await queue.wait(job.id, ["paused"])
                assert paused.request is None and paused.owner is None
                journal_status = (await factory.journal.run_info(job.run_id)).status
                assert journal_status == "cancelled"  # the run is left resumable in the journal
                assert factory.requests(job.id) == 1
                gate.opened.set()
                await queue.resume(job.id)
                done = await queue.wait(job.id)
                await worker.drain()
            assert done.status == "completed" and done.output == "done"
            assert done.invocations == 2
            assert factory.requests(job.id) == 3  # turn 1 was recorded: asked once, never again
            assert gate.starts == [1, 1, 2]  # the interrupted idempotent call is re-run, once
            assert changes(await queue.history(job.id)) == [
                (None, "queued"),
                ("queued", "running"),
                ("running", "paused"),
                ("paused", "queued"),
                ("queued", "running"),
                ("running", "completed"),
            ]

    run(main)


def test_cancel_a_running_job_leaves_its_run_resumable(run, db, journal_path):
    async def main():
        gate = Gate(open=False)
        factory = Factory(journal_path, steps_script(1), gate)
        async with JobQueue(db) as queue:
            job = await queue.add("go", model="scripted")
            async with queue.worker(factory, poll=0.05):
                await gate.entered.wait()
                await queue.cancel(job.id)
                cancelled = await queue.wait(job.id)
            assert cancelled.status == "cancelled"
            with pytest.raises(IllegalTransition, match="cannot resume a cancelled job"):
                await queue.resume(job.id)
            with pytest.raises(IllegalTransition, match="cannot pause a cancelled job"):
                await queue.pause(job.id)
            gate.opened.set()
            agent = Factory(journal_path, steps_script(1), gate)(cancelled)
            outcome = await agent.resume(job.run_id)
            assert (outcome.reason, outcome.output, outcome.stats.steps) == ("completed", "done", 2)

    run(main)


def test_pause_and_cancel_of_queued_jobs_apply_at_once(run, db, journal_path):
    async def main():
        factory = Factory(journal_path, steps_script(1))
        async with JobQueue(db) as queue:
            a = await queue.add("a", model="scripted")
            b = await queue.add("b", model="scripted")
            assert (await queue.pause(a.id)).status == "paused"
            assert (await queue.cancel(b.id)).status == "cancelled"
            async with queue.worker(factory, poll=0.05) as worker:
                await worker.drain()
                assert (await queue.get(a.id)).status == "paused"  # a paused job is not picked up
                await queue.resume(a.id)
                assert (await queue.wait(a.id)).status == "completed"
            assert factory.requests(b.id) == 0
            assert changes(await queue.history(b.id)) == [(None, "queued"), ("queued", "cancelled")]

    run(main)


def test_a_suspended_job_resumes_with_the_decision(run, db, journal_path):
    async def main():
        factory = Factory(journal_path, steps_script(1), extra=lambda job: [SuspendTool("slow")])
        async with JobQueue(db) as queue:
            job = await queue.add("go", model="scripted")
            async with queue.worker(factory, poll=0.05) as worker:
                await worker.drain()
                suspended = await queue.get(job.id)
                assert suspended.status == "suspended"
                (pending,) = suspended.pending
                assert (pending.tool, pending.reason) == ("slow", "slow needs approval")
                with pytest.raises(IllegalTransition, match="no pending approval 'nope'"):
                    await queue.resume(job.id, {"nope": Approve()})
                await queue.resume(job.id, {pending.id: Deny("not today")})
                done = await queue.wait(job.id)
            assert done.status == "completed" and done.pending == ()
            assert factory.gate.starts == []  # denied: the tool never ran
            assert factory.requests(job.id) == 2

    run(main)


def test_a_failed_job_records_the_error_and_can_be_resumed(run, db, journal_path):
    async def main():
        flaky = FailOnce()
        factory = Factory(journal_path, steps_script(1), extra=lambda job: [flaky])
        async with JobQueue(db) as queue:
            job = await queue.add("go", model="scripted")
            async with queue.worker(factory, poll=0.05) as worker:
                await worker.drain()
                failed = await queue.get(job.id)
                assert failed.status == "failed"
                assert "fail-once" in failed.error and "agent_step_start" in failed.error
                assert "flaky plugin" in failed.error
                await queue.resume(job.id)
                done = await queue.wait(job.id)
            assert done.status == "completed" and done.error == ""

    run(main)


def test_a_factory_error_fails_the_job_with_the_reason(run, db):
    def broken(job):
        raise LookupError(f"no agent profile {job.agent!r}")

    async def main():
        async with JobQueue(db) as queue:
            job = await queue.add("go", agent="ghost")
            async with queue.worker(broken, poll=0.05) as worker:
                await worker.drain()
            failed = await queue.get(job.id)
            assert failed.status == "failed" and failed.error == "LookupError: no agent profile 'ghost'"

    run(main)


def test_leaving_the_worker_block_requeues_running_jobs_for_the_next_worker(run, db, journal_path):
    async def main():
        gate = Gate(open=False)
        factory = Factory(journal_path, steps_script(2), gate)
        async with JobQueue(db) as queue:
            job = await queue.add("go", model="scripted")
            async with queue.worker(factory, poll=0.05) as first:
                await gate.entered.wait()
            requeued = await queue.get(job.id)
            assert requeued.status == "queued" and requeued.owner is None
            assert f"worker {first.id} stopped" in requeued.error
            gate.opened.set()
            async with queue.worker(factory, poll=0.05) as second:
                done = await queue.wait(job.id)
                assert second.id != first.id
            assert done.status == "completed" and factory.requests(job.id) == 3

    run(main)


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
def test_a_stalled_worker_loses_its_job_and_cannot_commit_after_the_takeover(backend, db, journal_path):
    """Worker A (its own thread and event loop) freezes inside a tool past its lease; worker
    B takes the job over and finishes it by resuming the run. When A wakes up, the
    journal's fencing refuses its commit and the jobs file ignores it."""
    stall = Stall(seconds=120.0)  # A wakes once B has finished the job (however slow the machine)
    factory_a = Factory(journal_path, steps_script(1), stall)
    stop_a = threading.Event()
    ids: dict[str, str] = {}
    job_id = ""

    async def worker_a() -> None:
        async with JobQueue(db) as qa, qa.worker(factory_a, lease=0.6, poll=0.1) as a:
            ids["a"] = a.id
            while not stop_a.is_set() or a.running:
                await anyio.sleep(0.02)

    async def main() -> None:
        nonlocal job_id
        factory_b = Factory(journal_path, steps_script(1))
        async with JobQueue(db) as qb:
            job_id = (await qb.add("go", model="scripted")).id
            thread = threading.Thread(target=anyio.run, args=(worker_a,), kwargs={"backend": backend})
            thread.start()
            try:
                await anyio.to_thread.run_sync(stall.entered.wait, 30)
                # B's lease is long: on a loaded machine B must not lose the job in turn
                async with qb.worker(factory_b, lease=30, poll=0.05) as b:
                    ids["b"] = b.id
                    done = await qb.wait(job_id)
                    assert done.status == "completed" and done.owner is None
                    assert factory_b.requests(job_id) == 1  # turn 1 came from A's journal entries
            finally:
                stall.release.set()
                stop_a.set()
                await anyio.to_thread.run_sync(thread.join, 30)
            assert not thread.is_alive()
            history = await qb.history(job_id)
            assert changes(history) == [
                (None, "queued"),
                ("queued", "running"),
                ("running", "queued"),
                ("queued", "running"),
                ("running", "completed"),
            ], "\n".join(map(str, history))
            assert history[1].detail == f"worker {ids['a']}" and history[3].detail == f"worker {ids['b']}"
            assert history[2].detail == f"worker {ids['a']} stopped renewing its lease"
            info = await factory_b.journal.run_info(f"job-{job_id}")
            assert info.attempt == 2 and info.status == "completed"

    anyio.run(main, backend=backend)
    with sqlite3.connect(journal_path) as conn:
        attempts = [
            r[0] for r in conn.execute("SELECT attempt FROM entries WHERE run_id = ? ORDER BY seq", (f"job-{job_id}",))
        ]
    conn.close()
    assert attempts == sorted(attempts) and attempts[-1] == 2  # nothing of A's after B's claim
    assert stall.starts == [1]  # A ran the tool once; its result was never committed


def test_jobs_with_different_agents_and_models(run, db, journal_path):
    async def main():
        factory = Factory(journal_path, {"echo": [text("hello")], "calc": [tool_call("slow", n=7), text("seven")]})
        async with JobQueue(db) as queue:
            one = await queue.add("hi", model="scripted", agent="echo", metadata={"user": "ada"})
            two = await queue.add("calc", model="scripted", agent="calc", run_id="my-run")
            assert two.run_id == "my-run" and one.run_id == f"job-{one.id}"
            assert one.metadata == {"user": "ada"}
            async with queue.worker(factory, poll=0.05) as worker:
                await worker.drain()
            assert [(j.output, j.progress.tool_calls) for j in await queue.list()] == [("hello", 0), ("seven", 1)]
            outcome = await Agent(
                model="scripted", plugins=[factory.journal, ScriptedModel([])], autoload=False
            ).resume("my-run")
            assert outcome.output == "seven"  # the run is in the journal under the id given

    run(main)


async def test_worker_arguments_are_checked(db):
    async with JobQueue(db) as queue:
        with pytest.raises(ValueError, match="concurrency must be at least 1, got 0"):
            async with queue.worker(lambda job: None, concurrency=0):  # type: ignore[arg-type,return-value]
                pass
        with pytest.raises(ValueError, match=r"poll \(20.0\) must be positive and less than lease / 2 \(15.0\)"):
            async with queue.worker(lambda job: None, lease=30.0, poll=20.0):  # type: ignore[arg-type,return-value]
                pass
