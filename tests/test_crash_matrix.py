"""The crash-point matrix (DESIGN §5.3-5.6): kill a real process at every commit
boundary and inside tool calls, resume in a fresh process, and prove with a
side-effect ledger that nothing recorded is done twice and the result is the same."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agent_kernel import Agent
from agent_kernel.errors import StaleAttempt
from agent_kernel.journal import Inferred, Intended, Started, ToolDone
from agent_kernel.testing.crash import CRASH_EXIT_CODE, UseJournal
from agent_plugin_sqlite import SqliteJournal

SCENARIO = Path(__file__).with_name("crash_scenario.py")
RUN_ID = "crash-run"
IDEMPOTENT = {"lookup"}
UNKNOWN = "The outcome of this tool call is unknown"


def invoke(mode: str, db: Path, ledger: Path, tag: str, *options: str) -> tuple[int, dict[str, Any] | None]:
    env = {**os.environ, "CRASH_LEDGER": str(ledger), "CRASH_TAG": tag}
    result = subprocess.run(
        [sys.executable, str(SCENARIO), mode, str(db), *options], capture_output=True, text=True, env=env, timeout=120
    )
    if result.returncode == 0:
        return 0, json.loads(result.stdout)
    if result.returncode != CRASH_EXIT_CODE:
        raise AssertionError(f"{mode} {options} failed ({result.returncode}):\n{result.stderr}")
    return result.returncode, None


def ledger_lines(ledger: Path, tag: str) -> list[list[str]]:
    if not ledger.exists():
        return []
    return [line.split()[1:] for line in ledger.read_text().splitlines() if line.split()[0] == tag]


async def journal_facts(db: Path) -> dict[str, Any]:
    journal = SqliteJournal(db)
    Agent(model="scripted", plugins=[UseJournal(journal)], autoload=False)  # binds the codec
    entries = await journal.load(RUN_ID)
    journal.close()
    done = {e.call_id for e in entries if isinstance(e, ToolDone)}
    return {
        "turns": sum(isinstance(e, Inferred) for e in entries),
        "done": done,
        "interrupted": {e.call_id for e in entries if isinstance(e, Intended)} - done,
        "started": any(isinstance(e, Started) for e in entries),
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The uninterrupted run: suspended in one process, approved in another."""
    tmp = tmp_path_factory.mktemp("reference")
    db, ledger = tmp / "runs.db", tmp / "ledger"
    _, first = invoke("run", db, ledger, "a")
    assert first is not None and first["reason"] == "suspended" and len(first["pending"]) == 1
    _, second = invoke("approve", db, ledger, "b")
    assert second is not None and second["reason"] == "completed", second
    lines = ledger_lines(ledger, "a") + ledger_lines(ledger, "b")
    assert sorted(line[0] for line in lines if line[0] == "llm") == ["llm"] * 3
    assert sum(line[:2] == ["tool", "lookup"] for line in lines) == 3
    return {"run_appends": first["appends"], "approve_appends": second["appends"], "messages": second["messages"]}


def crash_points(reference: dict[str, Any]) -> list[tuple[str, tuple[str, ...]]]:
    points: list[tuple[str, tuple[str, ...]]] = []
    for mode, count in (("run", reference["run_appends"]), ("approve", reference["approve_appends"])):
        for k in range(1, count + 1):
            for when in ("before", "after"):
                points.append((mode, ("--append", str(k), "--when", when)))
    for name, at in (("lookup", "enter"), ("lookup", "exit"), ("charge", "enter"), ("charge", "exit")):
        points.append(("run", ("--tool", name, "--at", at)))
    points.append(("approve", ("--tool", "send_email", "--at", "exit")))
    return points


async def check_point(tmp: Path, mode: str, options: tuple[str, ...], reference: dict[str, Any]) -> list[str]:
    """Crash at one point, recover, and return the broken promises (empty if none)."""
    db, ledger = tmp / "runs.db", tmp / "ledger"
    problems: list[str] = []
    if mode == "approve":
        code, out = invoke("run", db, ledger, "a")
        assert out is not None and out["reason"] == "suspended"
    code, _ = invoke(mode, db, ledger, "c", *options)
    if code != CRASH_EXIT_CODE:
        return [f"the crash point was never reached (exit {code})"]
    facts = await journal_facts(db)
    if not facts["started"]:  # died before the run's first entry: a run that never began
        code, out = invoke("run", db, ledger, "r")
        assert out is not None
    code, out = invoke("recover", db, ledger, "r")
    assert out is not None
    if out["reason"] != "completed":
        return [f"recovery ended {out['reason']}: {out['error']}"]
    after = ledger_lines(ledger, "r")
    for line in after:
        if line[0] == "llm" and int(line[1]) < facts["turns"]:
            problems.append(f"recorded model turn {line[1]} was requested again")
        if line[0] == "tool":
            call_id = line[2].rsplit(":", 1)[1]
            if call_id in facts["done"]:
                problems.append(f"recorded tool result {line[1]} {call_id} was re-run")
            if call_id in facts["interrupted"] and line[1] not in IDEMPOTENT:
                problems.append(f"non-idempotent {line[1]} {call_id} with an unknown outcome was re-run")
    rerun = {line[2].rsplit(":", 1)[1] for line in after if line[0] == "tool"}
    expected = [list(m) for m in reference["messages"]]
    for message in expected:
        if message[0] == "tool" and message[2] in facts["interrupted"]:
            tool_name = next(c[1] for m in expected for c in m[4] if c[0] == message[2])
            if tool_name in IDEMPOTENT:
                if message[2] not in rerun:
                    problems.append(f"idempotent {tool_name} {message[2]} with an unknown outcome was not re-run")
            else:
                message[1], message[3] = None, True  # compared below: outcome unknown
    for got, want in zip(out["messages"], expected, strict=False):
        if want[1] is None:
            if not (got[3] and got[1].startswith(UNKNOWN)):
                problems.append(f"call {want[2]} should report an unknown outcome, got {got[1]!r}")
        elif got != want:
            problems.append(f"final state differs: {got} != {want}")
    if len(out["messages"]) != len(expected):
        problems.append(f"final state has {len(out['messages'])} messages, expected {len(expected)}")

    stale = SqliteJournal(db)
    Agent(model="scripted", plugins=[UseJournal(stale)], autoload=False)
    try:
        await stale.append(RUN_ID, 1, [Started(1, "scripted")], at=len(await stale.load(RUN_ID)))
        problems.append("a stale attempt could commit")
    except StaleAttempt:
        pass
    finally:
        stale.close()
    return problems


@pytest.mark.parametrize("family", ["run", "approve", "tools"])
async def test_crash_point_matrix(family: str, reference: dict[str, Any], tmp_path: Path) -> None:
    points = [
        (mode, options)
        for mode, options in crash_points(reference)
        if (family == "tools") == ("--tool" in options) and (family == "tools" or mode == family)
    ]
    assert points
    failures = {}
    for i, (mode, options) in enumerate(points):
        point_dir = tmp_path / f"p{i}"
        point_dir.mkdir()
        problems = await check_point(point_dir, mode, options, reference)
        if problems:
            failures[f"{mode} {' '.join(options)}"] = problems
    assert not failures, json.dumps(failures, indent=2)
