"""Several processes on one file: crash and resume, resume elsewhere, fencing between processes."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap

import pytest
import trio
from sqlite_testkit import HERE, codec_agent, crash_agent, scenario_agent

from agent_kernel.errors import StaleAttempt
from agent_kernel.journal import Retried
from agent_plugin_sqlite import SqliteJournal

PRELUDE = """
import json, pathlib, sys
import trio
from agent_kernel import Approve
from agent_kernel.errors import StaleAttempt
from agent_kernel.journal import Retried
from agent_plugin_sqlite import SqliteJournal
from sqlite_testkit import codec_agent, crash_agent, scenario_agent
path = sys.argv[1]
"""


async def python(code: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `code` (after PRELUDE) in a fresh interpreter, without blocking the loop."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    with trio.fail_after(120):
        result = await trio.run_process(
            [sys.executable, "-c", PRELUDE + textwrap.dedent(code), *args],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env=env,
        )
    done = subprocess.CompletedProcess(result.args, result.returncode, result.stdout.decode(), result.stderr.decode())
    if check and done.returncode != 0:
        raise AssertionError(f"subprocess failed ({done.returncode}):\n{done.stderr}")
    return done


@pytest.mark.parametrize("idempotent", [False, True])
async def test_a_crash_inside_a_tool_resumes_without_repeating_recorded_work(db, tmp_path, idempotent):
    marker = tmp_path / "explode.count"
    crashed = await python(
        """
        marker = pathlib.Path(sys.argv[2])
        agent, model, tools = crash_agent(path, marker, idempotent=sys.argv[3] == "1")
        trio.run(lambda: agent.run("go", run_id="crashy"))
        print("not reached")
        """,
        str(db),
        str(marker),
        "1" if idempotent else "0",
        check=False,
    )
    assert crashed.returncode == 17, crashed.stderr
    assert "not reached" not in crashed.stdout
    assert marker.read_text() == "1"

    agent, model, tools = crash_agent(db, marker, idempotent=idempotent)
    outcome = await agent.resume("crashy")
    assert outcome.reason == "completed", outcome.error
    assert outcome.output == "recovered"
    assert len(model.requests) == 1  # the two recorded turns are not requested again
    assert [name for name, _ in tools.calls] == (["explode"] if idempotent else [])  # add is never re-run
    result = [m for m in outcome.state.messages if m.role == "tool"][-1]
    if idempotent:
        assert marker.read_text() == "2" and result.content == "exploded safely" and not result.is_error
    else:
        assert marker.read_text() == "1" and result.is_error and "unknown" in result.content


async def test_resume_in_a_fresh_subprocess(db):
    agent, model, _ = scenario_agent(SqliteJournal(db))
    first = await agent.run("compute", run_id="handoff")
    assert len(model.requests) == 3
    assert first.reason == "suspended"
    (request,) = first.pending
    done = await python(
        """
        agent, model, tools = scenario_agent(SqliteJournal(path))
        async def main():
            return await agent.resume("handoff", decisions={sys.argv[2]: Approve()})
        outcome = trio.run(main)
        print(json.dumps({
            "reason": outcome.reason,
            "output": outcome.output,
            "requests": len(model.requests),
            "tools": [name for name, _ in tools.calls],
            "resumed_roles": [m.role for m in model.requests[0].messages],
        }))
        """,
        str(db),
        request.id,
    )
    report = json.loads(done.stdout)
    assert report["reason"] == "completed" and report["output"] == "all done"
    assert report["requests"] == 1
    assert report["tools"] == ["danger"]
    assert report["resumed_roles"].count("tool") == 2
    # and this process sees the finished run without any new call
    again, model2, _ = scenario_agent(SqliteJournal(db))
    outcome = await again.resume("handoff")
    assert (outcome.reason, outcome.output, model2.requests) == ("completed", "all done", [])


async def test_a_stale_attempt_cannot_append_across_processes(db):
    _, journal = codec_agent(db)
    assert await journal.claim("r") == 1
    await journal.append("r", 1, [Retried("x", 0, 0.0, "mine")], at=0)
    done = await python(
        """
        agent, journal = codec_agent(path)
        async def main():
            attempt = await journal.claim("r")
            await journal.append("r", attempt, [Retried("x", 1, 0.0, "theirs")], at=1)
            try:
                await journal.append("r", 1, [Retried("x", 2, 0.0, "stale")], at=2)
            except StaleAttempt as exc:
                return attempt, str(exc)
            return attempt, None
        print(json.dumps(trio.run(main)))
        """,
        str(db),
    )
    attempt, their_error = json.loads(done.stdout)
    assert attempt == 2
    assert their_error is not None and "attempt 1" in their_error
    with pytest.raises(StaleAttempt) as info:
        await journal.append("r", 1, [Retried("x", 3, 0.0, "stale here too")], at=2)
    assert "attempt 1" in str(info.value) and "attempt 2" in str(info.value)
    assert [e.error for e in await journal.load("r")] == ["mine", "theirs"]


async def test_racing_processes_get_unique_attempts_and_never_commit_stale(db, tmp_path):
    """Two processes claim and append in a tight loop: every claim is unique and no
    append lands after a newer attempt's."""
    _, journal = codec_agent(db)
    await journal.claim("warmup")  # create the file before the race
    rounds = 150
    code = """
        import time
        agent, journal = codec_agent(path)
        name, barrier = sys.argv[2], pathlib.Path(sys.argv[3])
        async def main():
            await journal.runs()  # open the file before the start line
            (barrier / f"ready-{name}").touch()
            while not (barrier / "go").exists():
                time.sleep(0.001)
            claimed, committed, stale = [], 0, 0
            for i in range(int(sys.argv[4])):
                attempt = await journal.claim("race")
                claimed.append(attempt)
                seen = len(await journal.load("race"))
                if i % 2:
                    await trio.sleep(0.0005)  # widen the window in which the other process may claim
                try:
                    await journal.append("race", attempt, [Retried("race", attempt, 0.0, name)], at=seen)
                    committed += 1
                except StaleAttempt:
                    stale += 1
            return claimed, committed, stale
        print(json.dumps(trio.run(main)))
        """
    results = []

    async def worker(name: str) -> None:
        done = await python(code, str(db), name, str(tmp_path), str(rounds))
        results.append(json.loads(done.stdout))

    async with trio.open_nursery() as nursery:
        for name in ("a", "b"):
            nursery.start_soon(worker, name)
        with trio.fail_after(60):
            while not all((tmp_path / f"ready-{n}").exists() for n in "ab"):
                await trio.sleep(0.01)
        (tmp_path / "go").touch()
    claimed = [a for r in results for a in r[0]]
    assert sorted(claimed) == list(range(1, 2 * rounds + 1))  # atomic increments: no attempt handed out twice
    committed = sum(r[1] for r in results)
    stale = sum(r[2] for r in results)
    assert committed + stale == 2 * rounds
    assert stale > 0 and committed > 0, f"the race was not exercised ({stale} stale, {committed} committed)"
    with sqlite3.connect(db) as conn:
        attempts = [row[0] for row in conn.execute("SELECT attempt FROM entries WHERE run_id = 'race' ORDER BY seq")]
        (length,) = conn.execute("SELECT length FROM runs WHERE id = 'race'").fetchone()
    conn.close()
    assert len(attempts) == committed == length
    assert attempts == sorted(attempts) and len(set(attempts)) == len(attempts)
    loaded = await journal.load("race")
    assert [e.attempt for e in loaded] == attempts
