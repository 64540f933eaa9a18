"""The distribution: entry point, what autoloading does, and the `agent-kernel sqlite` command."""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys

import pytest
import trio
from importlib_metadata import distribution, entry_points
from sqlite_testkit import Tools, scenario_agent

import agent_plugin_sqlite
from agent_kernel import Agent, Approve
from agent_kernel.errors import JournalCorrupt
from agent_kernel.journal import Decided, MemoryJournal
from agent_kernel.testing import ScriptedModel, text
from agent_kernel.testing.crash import UseJournal


def test_the_entry_point_names_the_module():
    (ep,) = entry_points(group="agent_kernel.plugins", name="sqlite")
    assert ep.value == "agent_plugin_sqlite"
    assert ep.dist is not None and ep.dist.name == "agent-plugin-sqlite"
    assert ep.load() is agent_plugin_sqlite
    requires = distribution("agent-plugin-sqlite").requires or []
    # the kernel, and sniffio (which the kernel's trio brings anyway) for the writer thread to wake tasks
    assert [r.split(">")[0].split("[")[0].strip() for r in requires if "extra ==" not in r] == [
        "agent-kernel",
        "sniffio",
    ]


def test_autoloading_registers_no_journal(monkeypatch):
    monkeypatch.delenv("AGENT_KERNEL_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.setenv("AGENT_KERNEL_PLUGINS", "sqlite")  # only this entry point
    agent = Agent(model="scripted", plugins=[ScriptedModel([text("hi")])])
    info = agent.plugins["sqlite"]
    assert (info.distribution, info.version) == ("agent-plugin-sqlite", agent_plugin_sqlite.__version__)
    assert info.hooks == ("agent_register_commands",)
    assert isinstance(agent.journal, MemoryJournal)


def test_the_module_adds_the_sqlite_command():
    class Registrar:  # the part of CommandRegistrar the hook uses
        def __init__(self):
            self.commands = {}

        def add(self, name, configure, run, help=""):
            self.commands[name] = (configure, run, help)

    registrar = Registrar()
    agent_plugin_sqlite.agent_register_commands(registrar)
    configure, run, help_text = registrar.commands["sqlite"]
    assert "read-only" in help_text and callable(run)
    parser = argparse.ArgumentParser()
    configure(parser)
    args = parser.parse_args(["some.db", "--run", "r1", "--check"])
    assert (args.path, args.run, args.check) == ("some.db", "r1", True)


async def finished_run(db) -> str:
    agent, _, _ = scenario_agent(agent_plugin_sqlite.SqliteJournal(db))
    outcome = await agent.run("compute", run_id="inspected")
    assert outcome.reason == "suspended"
    await agent.journal.create_thread("t", thread_id="t")
    agent.journal.close()
    return outcome.run_id


async def test_inspect_reports_runs_threads_and_entries(db, capsys):
    from agent_plugin_sqlite import _command

    run_id = await finished_run(db)
    before = db.read_bytes()
    parser = argparse.ArgumentParser()
    _command.configure(parser)
    assert _command.run(parser.parse_args([str(db), "--check"])) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["schema_version"] == 1 and report["threads"] == 1 and report["integrity"] == "ok"
    (run,) = report["runs"]
    assert (run["id"], run["status"], run["attempt"], run["model"]) == (run_id, "suspended", 1, "scripted")
    assert _command.run(parser.parse_args([str(db), "--run", run_id])) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == run["entries"]
    assert [line["seq"] for line in lines] == list(range(len(lines)))
    assert lines[0]["kind"] == "Started" and lines[0]["entry"]["input"] == "compute"
    assert lines[-1]["entry"] == {"type": "Ended", "reason": "suspended", "error": None, "v": 3}
    assert db.read_bytes() == before  # read-only


async def test_check_flags_the_runs_a_resume_would_reject(db, capsys, monkeypatch):
    """One run's entry does not fold (a decision for a request it never had): it is named,
    with why, and the check fails. A run the installed plugins cannot decode is listed
    as not checked; a good run is in neither list."""
    from agent_plugin_sqlite import _command

    journal = agent_plugin_sqlite.SqliteJournal(db)
    agent = Agent(model="scripted", plugins=[ScriptedModel([text("hi")] * 3), UseJournal(journal)])
    for run_id in ("good", "unfoldable", "undecodable"):
        assert (await agent.run("hi", run_id=run_id)).reason == "completed"
    agent.journal.close()
    decided = agent.codec.encode(Decided("no-such-request", Approve()))
    with sqlite3.connect(db) as conn:
        for run_id, data in (("unfoldable", decided), ("undecodable", '{"type": "Nope", "v": 1}')):
            (length,) = conn.execute("SELECT length FROM runs WHERE id = ?", (run_id,)).fetchone()
            conn.execute("INSERT INTO entries VALUES (?, ?, 1, 'X', ?)", (run_id, length, data))
            conn.execute("UPDATE runs SET length = length + 1 WHERE id = ?", (run_id,))
    conn.close()
    parser = argparse.ArgumentParser()
    _command.configure(parser)
    assert _command.run(parser.parse_args([str(db), "--check"])) == 1
    report = json.loads(capsys.readouterr().out)
    assert list(report["unresumable"]) == ["unfoldable"] and list(report["not_checked"]) == ["undecodable"]
    assert "run 'unfoldable': journal entry" in report["unresumable"]["unfoldable"]
    assert "Decided" in report["unresumable"]["unfoldable"]
    assert "does not decode with the installed plugins" in report["not_checked"]["undecodable"]
    again = Agent(model="scripted", plugins=[UseJournal(agent_plugin_sqlite.SqliteJournal(db))])
    with pytest.raises(JournalCorrupt, match="unfoldable"):
        await again.resume("unfoldable")


async def test_inspect_refuses_bad_files(db, tmp_path, capsys):
    from agent_plugin_sqlite import _command

    parser = argparse.ArgumentParser()
    _command.configure(parser)
    assert _command.run(parser.parse_args([str(tmp_path / "missing.db")])) == 1
    assert "does not exist" in capsys.readouterr().err
    db.write_bytes(os.urandom(8192))
    assert _command.run(parser.parse_args([str(db)])) == 1
    assert "corrupted" in capsys.readouterr().err
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    conn.close()
    assert _command.run(parser.parse_args([str(other)])) == 1
    assert "not an agent-kernel journal" in capsys.readouterr().err


async def test_the_agent_kernel_cli_runs_the_command(db):
    run_id = await finished_run(db)
    env = {**os.environ, "AGENT_KERNEL_PLUGINS": "sqlite"}
    env.pop("AGENT_KERNEL_DISABLE_PLUGIN_AUTOLOAD", None)
    script = "import sys; from agent_kernel._cli import main; sys.exit(main(sys.argv[1:]))"
    result = await trio.run_process(
        [sys.executable, "-c", script, "sqlite", str(db)],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr.decode()
    report = json.loads(result.stdout)
    assert [r["id"] for r in report["runs"]] == [run_id]


async def test_an_instance_replaces_the_autoloaded_module(db, monkeypatch):
    """Both are named "sqlite": the instance passed in code takes the entry point's place."""
    monkeypatch.delenv("AGENT_KERNEL_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.setenv("AGENT_KERNEL_PLUGINS", "sqlite")
    journal = agent_plugin_sqlite.SqliteJournal(db)
    assert journal.name == "sqlite"
    agent = Agent(model="scripted", plugins=[ScriptedModel([text("x")]), Tools(), journal])
    assert agent.journal is journal
    assert agent.plugins["sqlite"].hooks == ("agent_register_runtime",)
    outcome = await agent.run("hello")
    assert await journal.runs() == [outcome.run_id]


@pytest.mark.parametrize("name", agent_plugin_sqlite.__all__)
def test_public_names_are_documented(name):
    obj = getattr(agent_plugin_sqlite, name)
    if name == "Durability":
        return  # a Literal alias: documented in the README table, has no docstring of its own
    readme = (os.path.dirname(os.path.dirname(__file__)) + "/README.md").replace("\\", "/")
    with open(readme, encoding="utf-8") as f:
        text_ = f.read()
    assert name in text_ or name in (agent_plugin_sqlite.__doc__ or "")
    if isinstance(obj, type) or callable(obj):
        assert obj.__doc__
