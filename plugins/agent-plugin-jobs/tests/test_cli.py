"""``agent-kernel jobs ...`` through real subprocesses."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import trio
from jobs_clikit import env, jobs, lines

from agent_kernel import Agent
from agent_kernel.testing import ScriptedModel
from agent_plugin_jobs import JobStore
from agent_plugin_jobs._command import plain_bar, render_jobs
from agent_plugin_sqlite import SqliteJournal


def test_the_command_is_registered_through_the_entry_point(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "agent_kernel", "plugins", "--hook", "agent_register_commands"],
        capture_output=True,
        text=True,
        env=env(),
        check=True,
    )
    rows = {row["name"]: row for row in json.loads(done.stdout)}
    assert rows["jobs"]["distribution"] == "agent-plugin-jobs"
    assert rows["jobs"]["hooks"] == ["agent_register_commands"]


def test_add_list_pause_work_show_history_resume(tmp_path):
    db = tmp_path / "jobs.db"
    meta = ["--meta", f"dir={tmp_path}", "--meta", f"journal={tmp_path / 'runs.db'}", "--meta", "steps=2"]
    assert jobs(db, "add", "first task", "--id", "j1", "--max-steps", "3", *meta).stdout == "j1\n"
    j2 = jobs(db, "add", "second task", "--max-steps", "3", *meta).stdout.strip()
    assert len(j2) == 12

    listed = jobs(db, "list", "--plain").stdout.splitlines()
    assert listed[0].split()[:3] == ["ID", "STATUS", "PROGRESS"]
    assert listed[1].split()[:4] == ["j1", "queued", plain_bar(0.0), "0/3"]

    assert jobs(db, "pause", j2).stdout == f"{j2}: paused\n"
    worked = jobs(db, "work", "--factory", "jobs_testkit:cli_factory", "--drain", "--poll", "0.1")
    assert "working" in worked.stderr

    report = {job["id"]: job for job in json.loads(jobs(db, "list", "--json").stdout)}
    assert report["j1"]["status"] == "completed" and report["j1"]["output"] == "done"
    assert report["j1"]["progress"]["steps"] == 3 and report["j1"]["progress"]["tool_calls"] == 2
    assert report[j2]["status"] == "paused" and report[j2]["progress"]["steps"] == 0

    plain = jobs(db, "list", "--plain").stdout
    assert f"j1             completed  {plain_bar(1.0)}     3/3     2" in plain
    fancy = jobs(db, "list").stdout
    if importlib.util.find_spec("rich") is not None:  # in the dev environment (requirements-dev.txt)
        assert "━" in fancy and "completed" in fancy and "[#" not in fancy
    else:
        assert fancy == plain
    assert jobs(db, "list", "--status", "paused", "--plain").stdout.count("\n") == 2  # header + j2

    shown = jobs(db, "show", "j1").stdout
    assert "output:   done" in shown and "run:      job-j1" in shown and "1 invocation(s)" in shown

    history = jobs(db, "history", "j1").stdout.splitlines()
    assert [line.split()[3:6] for line in history] == [
        ["-", "->", "queued"],
        ["queued", "->", "running"],
        ["running", "->", "completed"],
    ]
    changes = [json.loads(line) for line in jobs(db, "history", j2, "--json").stdout.splitlines()]
    assert [(c["old"], c["new"], c["detail"]) for c in changes] == [
        (None, "queued", "added"),
        ("queued", "paused", "pause requested"),
    ]

    assert jobs(db, "resume", j2).stdout == f"{j2}: queued\n"
    jobs(db, "work", "--factory", "jobs_testkit:cli_factory", "--drain", "--poll", "0.1")
    assert json.loads(jobs(db, "show", j2, "--json").stdout)["status"] == "completed"
    assert lines(tmp_path / "requests.log") == ["0", "1", "2"] * 2


def test_the_default_factory_runs_jobs_on_the_journal_given(tmp_path):
    db, journal = tmp_path / "jobs.db", tmp_path / "runs.db"
    jobs(db, "add", "hi", "--model", "scripted", "--id", "h", "--run-id", "hello-run")
    jobs(db, "work", "--journal", str(journal), "--plugin", "jobs_testkit:HelloModel", "--drain", "--poll", "0.1")
    assert "completed" in jobs(db, "show", "h", "--plain").stdout

    async def resume() -> str:
        agent = Agent(model="scripted", plugins=[SqliteJournal(journal), ScriptedModel([])], autoload=False)
        return (await agent.resume("hello-run")).output

    assert trio.run(resume) == "hello from the worker"  # the run is in that journal, finished


def test_errors_name_what_was_wrong(tmp_path):
    db = tmp_path / "jobs.db"
    jobs(db, "add", "x", "--id", "a")
    jobs(db, "cancel", "a")
    cases = [
        (("show", "zz"), "no job 'zz'"),
        (("pause", "a"), "job 'a': cannot pause a cancelled job"),
        (("resume", "a"), "job 'a': cannot resume a cancelled job"),
        (("add", "y", "--meta", "oops"), "--meta 'oops': expected KEY=VALUE"),
        (("add", "y", "--id", "a"), "job id 'a' or run id 'job-a' is already used by job 'a'"),
        (("work", "--drain"), "work needs --journal PATH"),
        (("work", "--factory", "jobs_testkit:cli_factory", "--journal", "x.db"), "do not combine it"),
        (("work", "--factory", "no_such_module:f"), "--factory: cannot import 'no_such_module:f'"),
        (("work", "--factory", "jobs_testkit:HERE"), "is not callable"),
    ]
    for args, message in cases:
        done = jobs(db, *args, check=False)
        assert done.returncode == 1, (args, done.stderr)
        assert message in done.stderr, (args, done.stderr)
    (tmp_path / "junk.db").write_text("not a database" * 100)
    done = jobs(tmp_path / "junk.db", "list", check=False)
    assert done.returncode == 1 and "junk.db cannot be used" in done.stderr


def test_bars_degrade_to_plain_text_without_rich(tmp_path):
    db = tmp_path / "jobs.db"
    store = JobStore(db)
    store.add("a task", job_id="t", max_steps=4)
    store.close()
    code = (
        "import sys, runpy; sys.modules['rich'] = None;"  # make `import rich` fail
        f"sys.argv = ['agent-kernel', 'jobs', '--db', {str(db)!r}, 'list'];"
        "runpy.run_module('agent_kernel', run_name='__main__')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env())
    assert done.returncode == 0, done.stderr
    assert f"t              queued     {plain_bar(0.0)}     0/4" in done.stdout


def test_plain_bars():
    assert plain_bar(0.0, 4) == "[....]"
    assert plain_bar(0.5, 4) == "[##..]"
    assert plain_bar(1.0, 4) == "[####]"
    assert plain_bar(None, 4) == "[????]"
    assert render_jobs([]) == "no jobs\n"
