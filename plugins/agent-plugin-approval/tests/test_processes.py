"""Across processes: suspend in one interpreter, approve in another (SQLite journal)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import trio
from approval_testkit import HERE

PRELUDE = """
import json, sys
import trio
from agent_kernel import Approve, Deny
from agent_kernel.testing import text, tool_call
from agent_plugin_sqlite import SqliteJournal
from approval_testkit import Calls, build, tool_messages
from agent_plugin_approval import Approval
from agent_plugin_approval.policies import require_approval

db, log = sys.argv[1], sys.argv[2]
TURNS = [
    [tool_call("delete", path="a"), tool_call("pay", amount=5, to="bob")],
    tool_call("delete", path="a"),
    text("all done"),
]

def agent():
    journal = SqliteJournal(db)
    approval = Approval(require_approval("delete", "pay"), remember=True)
    built = build(approval, TURNS, calls=Calls(log), journal=journal)
    return built[0], journal, approval
"""


async def python(code: str, *args: str) -> str:
    """Run `code` after PRELUDE in a fresh interpreter; return its stdout."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    result = await trio.run_process(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(code), *args],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        env=env,
    )
    done = subprocess.CompletedProcess(result.args, result.returncode, result.stdout.decode(), result.stderr.decode())
    assert done.returncode == 0, f"subprocess failed ({done.returncode}):\n{done.stderr}"
    return done.stdout


async def test_suspend_in_one_process_decide_in_another(tmp_path):
    db, log = str(tmp_path / "runs.db"), str(tmp_path / "calls.jsonl")
    first = json.loads(
        await python(
            """
            async def main():
                a, journal, _ = agent()
                outcome = await a.run("tidy up and pay bob", run_id="cross")
                journal.close()
                print(json.dumps({"reason": outcome.reason, "pending": [[r.id, r.tool] for r in outcome.pending]}))
            trio.run(main)
            """,
            db,
            log,
        )
    )
    assert first["reason"] == "suspended"
    assert [tool for _, tool in first["pending"]] == ["delete", "pay"]
    assert not (tmp_path / "calls.jsonl").exists()  # nothing ran in the first process
    delete_id, pay_id = (request_id for request_id, _ in first["pending"])

    second = json.loads(
        await python(
            """
            async def main():
                a, journal, approval = agent()
                decisions = {sys.argv[3]: Approve(), sys.argv[4]: Deny("not this month")}
                outcome = await a.resume("cross", decisions=decisions)
                again = await a.resume("cross", decisions=decisions)  # delivered twice
                memory = outcome.state.get(approval.key)
                journal.close()
                print(json.dumps({
                    "reason": outcome.reason, "again": again.reason, "output": outcome.output,
                    "results": [[m.content, m.is_error] for m in tool_messages(outcome)],
                    "remembered": [r.tool for r in memory.remembered],
                }))
            trio.run(main)
            """,
            db,
            log,
            delete_id,
            pay_id,
        )
    )
    assert second["reason"] == "completed" and second["again"] == "completed"
    assert second["output"] == "all done"
    assert second["results"] == [
        ["deleted a", False],
        ["Denied: not this month", True],
        ["deleted a", False],  # the repeat was remembered: not asked again
    ]
    assert second["remembered"] == ["delete"]
    calls = [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
    assert calls == [["delete", {"path": "a"}], ["delete", {"path": "a"}]]  # each exactly once

    third = json.loads(
        await python(
            """
            async def main():
                a, journal, _ = agent()
                outcome = await a.resume("cross")
                journal.close()
                print(json.dumps({"reason": outcome.reason, "output": outcome.output}))
            trio.run(main)
            """,
            db,
            log,
        )
    )
    assert third == {"reason": "completed", "output": "all done"}
    assert len((tmp_path / "calls.jsonl").read_text().splitlines()) == 2  # a finished run makes no call
