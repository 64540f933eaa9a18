"""``agent-kernel threads list|show|fork|export`` through a real subprocess of the installed CLI."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
from typing import Any

from memory_testkit import CountingModel, echo

from agent_kernel import Agent
from agent_kernel.testing import FakeTools
from agent_plugin_memory import LastTurns, Memory, Threads
from agent_plugin_sqlite import SqliteJournal

CLI = pathlib.Path(sys.executable).with_name("agent-kernel")


def cli(*args: str | pathlib.Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_KERNEL_")}
    return subprocess.run([str(CLI), "threads", *map(str, args)], capture_output=True, text=True, env=env, timeout=60)


async def _recorded_thread(db: pathlib.Path) -> tuple[list[str], Any]:
    """Thread ``t`` with two runs (the second calls a tool, so it has two steps)."""
    journal = SqliteJournal(db)
    await Threads(journal).create("support", thread_id="t", metadata={"user": "ada"})
    model = CountingModel(["Hello Ada.", [("echo", {"text": "ada"})], "You are Ada."])
    plugins = [journal, model, FakeTools(echo), Memory(journal, thread="t"), LastTurns(5)]
    agent = Agent("scripted", plugins, autoload=False, instructions="sys")
    runs = [(await agent.run(q)).run_id for q in ["I am Ada.", "Who am I?"]]
    state = await Threads(journal).state("t")
    journal.close()
    return runs, state


async def test_list_show_export_and_fork_a_thread(db: pathlib.Path) -> None:
    runs, state = await _recorded_thread(db)

    listed = cli("list", db)
    assert listed.returncode == 0, listed.stderr
    (thread,) = json.loads(listed.stdout)
    assert (thread["id"], thread["name"], thread["run_ids"], thread["metadata"]) == (
        "t",
        "support",
        runs,
        {"user": "ada"},
    )

    shown = cli("show", db, "t")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == [
        "thread t 'support': 2 run(s), last run completed",
        "system: sys",
        "user: I am Ada.",
        "assistant: Hello Ada.",
        "user: Who am I?",
        'assistant: echo({"text": "ada"})',
        "tool: ada",
        "assistant: You are Ada.",
    ]

    exported = cli("export", db, "t")
    assert exported.returncode == 0, exported.stderr
    document = json.loads(exported.stdout)
    assert (document["status"], document["run_id"], document["thread"]["id"]) == ("completed", runs[1], "t")
    assert [m["role"] for m in document["messages"]] == [m.role for m in state.messages]
    call = document["messages"][4]["tool_calls"][0]
    assert (call["name"], call["arguments"]) == ("echo", {"text": "ada"})
    assert document["messages"][5] == {"role": "tool", "content": "ada", "tool_call_id": call["id"], "is_error": False}

    forked = cli("fork", db, "t", "--at-step", "1", "--name", "what if", "--id", "f")
    assert forked.returncode == 0, forked.stderr
    fork = json.loads(forked.stdout)
    assert (fork["id"], fork["name"], fork["parent_id"], fork["fork_run_id"]) == ("f", "what if", "t", runs[0])
    assert fork["run_ids"][0] == runs[0] and fork["metadata"]["forked_from"]["step"] == 1
    shown_fork = cli("show", db, "f")
    assert "last run running" in shown_fork.stdout.splitlines()[0]  # the copy stops after step 1, ready to resume
    assert shown_fork.stdout.splitlines()[-1] == "tool: ada"
    assert [t["id"] for t in json.loads(cli("list", db).stdout)] == ["t", "f"]
    assert cli("fork", db, "t", "--at-run", runs[0]).returncode == 0


async def test_errors_exit_1_with_a_message_naming_what_was_wrong(db: pathlib.Path, tmp_path: pathlib.Path) -> None:
    missing = cli("list", tmp_path / "nope.db")
    assert missing.returncode == 1 and "nope.db does not exist" in missing.stderr
    assert not (tmp_path / "nope.db").exists()  # never created
    await _recorded_thread(db)
    unknown = cli("show", db, "ghost")
    assert unknown.returncode == 1 and "no thread 'ghost'" in unknown.stderr
    step = cli("fork", db, "t", "--at-step", "7")
    assert step.returncode == 1 and "no committed step 7" in step.stderr
    usage = cli("fork", db)
    assert usage.returncode == 2 and "thread" in usage.stderr
