"""The jobs file: schema, refusals, clear errors, append-only history (real SQLite files)."""

from __future__ import annotations

import sqlite3

import pytest

from agent_plugin_jobs import IllegalTransition, JobStore, JobStoreError, UnknownJob, schema_version
from agent_plugin_jobs._store import APPLICATION_ID


def test_a_new_file_gets_the_schema_version_and_the_application_id(db):
    JobStore(db).close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == schema_version() == 1
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    JobStore(db).close()  # opening again migrates nothing and keeps the file


def test_a_file_from_a_newer_schema_is_refused_untouched(db):
    JobStore(db).close()
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 9")
    conn.close()
    with pytest.raises(JobStoreError, match=r"schema version 9; this agent-plugin-jobs reads up to 1"):
        JobStore(db)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 9
    conn.close()


def test_another_applications_database_is_refused(tmp_path):
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (x)")
    conn.close()
    with pytest.raises(JobStoreError, match="is not an agent-kernel jobs file"):
        JobStore(other)
    with sqlite3.connect(other) as conn:
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["notes"]
    conn.close()


def test_a_journal_file_is_not_mistaken_for_a_jobs_file(tmp_path, run):
    from agent_plugin_sqlite import SqliteJournal

    journal = SqliteJournal(tmp_path / "runs.db")
    run(journal.runs)
    journal.close()
    with pytest.raises(JobStoreError, match=r"not an agent-kernel jobs file \(application_id 0x41474b4a\)"):
        JobStore(tmp_path / "runs.db")


def test_garbage_is_refused_with_the_file_name(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(JobStoreError, match=r"junk\.db"):
        JobStore(junk)


def test_a_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(JobStoreError, match="cannot be opened"):
        JobStore(tmp_path / "no" / "such" / "jobs.db")


def test_history_rows_cannot_be_changed_or_deleted_in_the_file(db):
    store = JobStore(db)
    job = store.add("x")
    store.pause(job.id)
    store.close()
    with sqlite3.connect(db) as conn:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("UPDATE history SET new = 'completed'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("DELETE FROM history")
    conn.close()
    assert [(c.old, c.new, c.detail) for c in JobStore(db).history(job.id)] == [
        (None, "queued", "added"),
        ("queued", "paused", "pause requested"),
    ]


def test_bad_input_gets_errors_naming_it(db):
    store = JobStore(db)
    job = store.add("x", job_id="a")
    with pytest.raises(UnknownJob, match=r"no job 'nope' in .*jobs\.db"):
        store.get("nope")
    with pytest.raises(UnknownJob, match="no job 'nope'"):
        store.history("nope")
    with pytest.raises(IllegalTransition, match="job id 'a' or run id 'job-b' is already used by job 'a'"):
        store.add("y", job_id="a", run_id="job-b")
    with pytest.raises(IllegalTransition, match="already used by job 'a'"):
        store.add("y", run_id=job.run_id)
    with pytest.raises(ValueError, match="max_steps must be a positive int or None, got 0"):
        store.add("y", max_steps=0)
    with pytest.raises(ValueError, match="got True"):
        store.add("y", max_steps=True)
    with pytest.raises(ValueError, match="metadata must be JSON-serialisable"):
        store.add("y", metadata={"when": object()})
    with pytest.raises(TypeError, match="job input must be a str, got int"):
        store.add(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown job status 'done'"):
        store.list(["done"])  # type: ignore[list-item]
    with pytest.raises(IllegalTransition, match="cannot resume a queued job"):
        store.resume("a")
    store.close()


def test_pause_and_cancel_of_a_running_job_are_requests_for_its_worker(db):
    store = JobStore(db)
    job = store.add("x")
    claimed = store.claim("w1", 30.0)
    assert claimed is not None and claimed[0].status == "running" and claimed[0].owner == "w1"
    assert store.pause(job.id).request == "pause"
    assert store.renew("w1", [job.id], 30.0) == {job.id: "pause"}
    assert store.cancel(job.id).request == "cancel"  # cancel overrides pause
    with pytest.raises(IllegalTransition, match="cannot pause a job that is being cancelled"):
        store.pause(job.id)
    assert store.renew("w2", [job.id], 30.0) == {job.id: False}  # not w2's job
    assert not store.interrupted("w2", job.id, "queued")
    assert store.interrupted("w1", job.id, "queued")
    assert store.get(job.id).status == "cancelled"
    store.close()


def test_an_expired_lease_applies_the_pending_request(db):
    store = JobStore(db)
    job = store.add("x")
    store.claim("dead", -1.0)  # a lease that has already run out
    store.pause(job.id)
    assert store.claim("w2", 30.0) is None  # the job is paused, not taken over
    paused = store.get(job.id)
    assert paused.status == "paused" and paused.owner is None
    assert "worker dead stopped renewing its lease" in store.history(job.id)[-1].detail
    store.close()


def test_a_worker_does_not_take_back_a_job_it_still_has_a_task_on(db):
    """A stalled worker's leases ran out and another worker queued its jobs again; until
    the stalled worker's old tasks end, the jobs go to other workers, never back to it."""
    store = JobStore(db)
    first, second = store.add("x"), store.add("y")
    store.claim("w1", -1.0)
    store.claim("w1", -1.0, busy=[first.id])
    taken = store.claim("w2", 30.0)  # reaps both, takes the older one
    assert taken is not None and taken[0].id == first.id
    assert store.get(second.id).status == "queued"
    assert store.claim("w1", 30.0, busy=[first.id, second.id]) is None  # w1 still runs both
    taken = store.claim("w3", 30.0)
    assert taken is not None and taken[0].id == second.id and taken[0].owner == "w3"
    store.close()


def test_a_worker_does_not_reap_its_own_lapsed_lease_on_a_job_it_still_runs(db):
    """A worker whose loop was held up past its lease may claim before its heartbeat
    renews: that claim leaves the job to the late renewal; another worker still reaps it."""
    store = JobStore(db)
    job = store.add("x")
    store.claim("w1", -1.0)  # w1's lease has run out, its task still runs the job
    assert store.claim("w1", 30.0, busy=[job.id]) is None
    assert store.renew("w1", [job.id], -1.0) == {job.id: None}  # late, but it holds (and runs out again)
    taken = store.claim("w2", 30.0)
    assert taken is not None and taken[0].id == job.id and taken[0].owner == "w2"
    assert store.renew("w1", [job.id], 30.0) == {job.id: False}
    assert [(c.old, c.new, c.detail) for c in store.history(job.id)] == [
        (None, "queued", "added"),
        ("queued", "running", "worker w1"),
        ("running", "queued", "worker w1 stopped renewing its lease"),
        ("queued", "running", "worker w2"),
    ]
    store.close()
