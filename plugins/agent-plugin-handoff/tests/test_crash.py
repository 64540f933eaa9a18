"""A parent killed at every journal append resumes its child run instead of restarting it.

Each case runs `handoff_scenario.py` in a subprocess that dies (``os._exit``) at the
N-th append of the shared SQLite journal, then resumes in a fresh subprocess.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from agent_kernel.testing.crash import CRASH_EXIT_CODE

SCENARIO = Path(__file__).with_name("handoff_scenario.py")
CHILD = "root/1/call_1_1"
CLEAN_APPENDS = 12  # appends of an uninterrupted run (checked below; a response rides in its first intent write)
TURNS = {"parent": 2, "child": 3}


async def scenario(tag: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    with trio.fail_after(120):
        return await trio.run_process(
            [sys.executable, str(SCENARIO), *args],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env={"SCENARIO_TAG": tag, "PATH": "/usr/bin:/bin"},
        )


def requests(ledger: Path, tag: str) -> list[tuple[str, int]]:
    lines = ledger.read_text().splitlines() if ledger.exists() else []
    found = [line.split() for line in lines if line.startswith(f"{tag} llm ")]
    return [(who, int(turn)) for _, _, who, turn in found]


async def test_an_uninterrupted_run_makes_the_expected_appends(tmp_path: Path) -> None:
    done = await scenario("p", "run", str(tmp_path / "j.db"), str(tmp_path / "ledger"))
    assert done.returncode == 0, done.stderr.decode()
    report = json.loads(done.stdout)
    assert report["reason"] == "completed" and report["appends"] == CLEAN_APPENDS
    assert sorted(requests(tmp_path / "ledger", "p")) == [
        ("child", 0),
        ("child", 1),
        ("child", 2),
        ("parent", 0),
        ("parent", 1),
    ]


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("append", range(1, CLEAN_APPENDS + 1))
async def test_a_crash_at_any_append_resumes_parent_and_child(tmp_path: Path, append: int, when: str) -> None:
    db, ledger = str(tmp_path / "j.db"), tmp_path / "ledger"
    crashed = await scenario("c", "run", db, str(ledger), "--append", str(append), "--when", when)
    assert crashed.returncode == CRASH_EXIT_CODE, crashed.stderr.decode()
    done = await scenario("r", "resume", db, str(ledger))
    assert done.returncode == 0, done.stderr.decode()
    report: dict[str, Any] = json.loads(done.stdout)
    assert report["reason"] == "completed" and report["output"] == "The researcher found a and b."
    recorded = {"parent": report["recorded"].get("root", 0), "child": report["recorded"].get(CHILD, 0)}
    resumed = requests(ledger, "r")
    # a model turn recorded before the crash is never requested again, in the parent or in the child
    for who, turn in resumed:
        assert turn >= recorded[who], f"{who} turn {turn} was recorded before the crash and requested again"
    # every turn is answered exactly once in the end: recorded ones, then the resumed process's
    for who, count in TURNS.items():
        assert sorted(t for w, t in resumed if w == who) == list(range(recorded[who], count))
    # the child run was resumed, not started a second time
    assert report["first_starts"] == {"root": 1, CHILD: 1}
