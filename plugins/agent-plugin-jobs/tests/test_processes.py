"""Workers in real processes: killed mid-job, paused from another process, stopped by SIGTERM."""

from __future__ import annotations

import os
import signal
import sqlite3

from jobs_clikit import jobs, lines, start_worker, until

from agent_plugin_jobs import JobStore


def meta(folder, **extra: object) -> list[str]:
    pairs = {"dir": folder, "journal": folder / "runs.db", **extra}
    return [arg for key, value in pairs.items() for arg in ("--meta", f"{key}={value}")]


def store_get(db, job_id):
    store = JobStore(db)
    try:
        return store.get(job_id)
    finally:
        store.close()


def test_a_job_of_a_killed_worker_is_finished_by_a_new_process(tmp_path):
    db = tmp_path / "jobs.db"
    jobs(db, "add", "go", "--id", "k", "--max-steps", "4", *meta(tmp_path, steps=3, hang=2))
    first = start_worker(db, "--lease", "2", "--poll", "0.2")
    try:
        until(lambda: (tmp_path / "entered-2").exists(), "the worker to enter step 2")
        running = store_get(db, "k")
        assert running.status == "running" and running.progress.steps == 2
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=30)
    assert first.returncode == -signal.SIGKILL
    dead = store_get(db, "k")
    assert dead.status == "running" and dead.owner == running.owner  # nobody told the file

    second = jobs(db, "work", "--factory", "jobs_testkit:cli_factory", "--drain", "--lease", "2", "--poll", "0.2")
    new_owner = second.stderr.split()[1].rstrip(":")

    done = store_get(db, "k")
    assert done.status == "completed" and done.output == "done", done
    assert done.invocations == 2 and done.progress.steps == 4
    assert done.progress.tool_calls == 4  # as the kernel counts them: the re-run of step 2 included
    history = JobStore(db).history("k")
    assert [(c.old, c.new) for c in history] == [
        (None, "queued"),
        ("queued", "running"),
        ("running", "queued"),
        ("queued", "running"),
        ("running", "completed"),
    ]
    assert history[2].detail == f"worker {running.owner} stopped renewing its lease"
    assert history[3].detail == f"worker {new_owner}"
    assert lines(tmp_path / "requests.log") == ["0", "1", "2", "3"]  # no recorded turn asked again
    tool_runs = [line.split() for line in lines(tmp_path / "tool.log")]
    pids = [pid for pid, _ in tool_runs]
    assert [step for _, step in tool_runs] == ["1", "2", "2", "3"]  # step 1 is never re-run
    assert pids[0] == pids[1] == str(first.pid) and pids[2] == pids[3] != pids[0]
    with sqlite3.connect(tmp_path / "runs.db") as conn:
        (attempt, status) = conn.execute("SELECT attempt, status FROM runs WHERE id = 'job-k'").fetchone()
    conn.close()
    assert (attempt, status) == (2, "completed")


def test_pause_and_resume_from_another_process_then_sigterm_requeues(tmp_path):
    db = tmp_path / "jobs.db"
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "hold-1").touch()
    jobs(db, "add", "first", "--id", "a", *meta(a, steps=2))
    worker = start_worker(db, "--lease", "5", "--poll", "0.1")
    try:
        until(lambda: lines(a / "tool.log"), "job a to start step 1")
        assert jobs(db, "pause", "a").stdout == "a: running (pause requested)\n"
        until(lambda: store_get(db, "a").status == "paused", "the worker to pause job a")
        (a / "hold-1").unlink()
        jobs(db, "resume", "a")
        done = until(lambda: (j := store_get(db, "a")).status == "completed" and j, "job a to complete")
        assert done.invocations == 2 and done.output == "done"
        assert lines(a / "requests.log") == ["0", "1", "2"]
        assert [line.split()[1] for line in lines(a / "tool.log")] == ["1", "1", "2"]

        (b / "hold-1").touch()
        jobs(db, "add", "second", "--id", "b", *meta(b, steps=2))
        until(lambda: lines(b / "tool.log"), "job b to start step 1")
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            os.kill(worker.pid, signal.SIGKILL)
            worker.communicate()
    assert worker.returncode == 0, stderr
    assert "SIGTERM, stopping" in stderr
    requeued = store_get(db, "b")
    assert requeued.status == "queued" and requeued.owner is None  # at once, no lease to wait for
    assert "stopped" in requeued.error

    (b / "hold-1").unlink()
    jobs(db, "work", "--factory", "jobs_testkit:cli_factory", "--drain", "--poll", "0.1")
    assert store_get(db, "b").status == "completed"
    assert lines(b / "requests.log") == ["0", "1", "2"]
