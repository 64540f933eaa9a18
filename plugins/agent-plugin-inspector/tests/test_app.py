"""The inspector without a browser: its source, its refusals, its command, threads."""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from inspector_kit import make_agent

from agent_kernel import Agent
from agent_plugin_inspector import SqliteSource, create_app
from agent_plugin_inspector.testing import check_source
from agent_plugin_sqlite import SqliteJournal

HERE = pathlib.Path(__file__).resolve().parent


async def test_sqlite_source_passes_the_conformance_check(db: pathlib.Path) -> None:
    await check_source(SqliteJournal(db), SqliteSource(db))


async def test_a_missing_or_foreign_file_is_a_clear_error(tmp_path: pathlib.Path) -> None:
    from agent_plugin_inspector import SourceUnavailable

    with pytest.raises(SourceUnavailable, match="does not exist"):
        await SqliteSource(tmp_path / "nope.db").run_page()
    other = tmp_path / "other.db"
    import sqlite3

    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(SourceUnavailable, match="not an agent-kernel SQLite journal"):
        await SqliteSource(other).run_page()


@asynccontextmanager
async def client(app: Any, host: str = "127.0.0.1:8321") -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{host}") as c:
            yield c


async def _run(agent: Agent, prompt: str, run_id: str) -> Any:
    return await agent.run(prompt, run_id=run_id)


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has a form with a CSRF token"
    return found.group(1)


async def test_state_changing_requests_from_other_sites_are_refused(db: pathlib.Path) -> None:
    agent = make_agent(db)
    outcome = await _run(agent, "deploy prod", "guarded")
    request_id = outcome.pending[0].id
    async with client(create_app(SqliteSource(db), agent=agent)) as c:
        inbox = await c.get("/inbox")
        assert inbox.status_code == 200
        form = {"csrf": _csrf(inbox.text), "run_id": "guarded", "request_id": request_id, "action": "approve"}
        origin = "http://127.0.0.1:8321"
        for headers, why in (
            ({"origin": "http://evil.example"}, "Origin does not match"),
            ({"origin": "null"}, "Origin does not match"),
            ({"sec-fetch-site": "cross-site", "origin": origin}, "cross-site request refused"),
            ({"origin": origin}, None),  # the right origin, but no CSRF cookie/token pair below
        ):
            data = form if why is not None else {**form, "csrf": "forged"}
            refused = await c.post("/inbox/decide", data=data, headers=headers)
            assert refused.status_code == 403, refused.text
            assert (why or "CSRF token does not match") in refused.text
        c.cookies.clear()
        refused = await c.post("/inbox/decide", data=form, headers={"origin": origin})
        assert refused.status_code == 403  # the token without its cookie
        assert len(await SqliteSource(db).pending()) == 1, "nothing was decided"
        assert (await c.get("/runs", headers={"host": "evil.example:8321"})).status_code == 403  # DNS rebinding


async def test_pages_send_a_strict_content_security_policy(db: pathlib.Path) -> None:
    await _run(make_agent(db), "echo hi", "csp")
    async with client(create_app(SqliteSource(db))) as c:
        page = await c.get("/runs/csp")
        assert page.status_code == 200
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY"
        assert "read-only (no agent)" in page.text
        missing = await c.get("/runs/nope")
        assert missing.status_code == 404 and "no run" in missing.text
        fragment = await c.get("/fragment/run/csp?after=-1")
        assert fragment.json()["status"] == "completed" and "ended: completed" in fragment.json()["rows"]


async def test_entries_pass_the_agents_redactors_when_it_exposes_them(db: pathlib.Path) -> None:
    from agent_kernel import RuntimeRegistrar, hookimpl
    from agent_kernel.journal import Entry
    from agent_plugin_sqlite import SqliteJournal

    agent = make_agent(db)
    await _run(agent, "echo the password is hunter2", "secret")  # journaled before redaction was set up

    def redact(value: Any) -> Any:  # scrubs the secret wherever it appears in an entry
        if not isinstance(value, Entry):
            return value
        encoded = viewer.codec.encode(value)
        return viewer.codec.decode(encoded.replace("hunter2", "[redacted]")) if "hunter2" in encoded else value

    class Scrub:
        name = "scrub"

        @hookimpl
        def agent_register_runtime(self, runtime: RuntimeRegistrar) -> None:
            runtime.add_redactor(redact)

    viewer = Agent(model="scripted", plugins=[SqliteJournal(db), Scrub()], autoload=False)
    assert viewer.redactors == (redact,)
    async with client(create_app(SqliteSource(db), agent=viewer)) as c:
        page = await c.get("/runs/secret")
        assert page.status_code == 200
        assert "the password is [redacted]" in page.text
        assert "hunter2" not in page.text


async def test_bearer_token_works_and_its_absence_does_not(db: pathlib.Path) -> None:
    await _run(make_agent(db), "echo hi", "bearer")
    app = create_app(SqliteSource(db), token="a-long-enough-token", loopback_only=False)
    async with client(app, host="inspector.example:8321") as c:
        assert (await c.get("/runs")).status_code == 401
        assert (await c.get("/runs", headers={"authorization": "Bearer wrong"})).status_code == 401
        ok = await c.get("/runs", headers={"authorization": "Bearer a-long-enough-token"})
        assert ok.status_code == 200 and "bearer" in ok.text


async def test_threads_list_show_and_fork_after_a_step(db: pathlib.Path) -> None:
    agent = make_agent(db)
    await _run(agent, "echo first", "t-run-1")
    await _run(agent, "steps 3", "t-run-2")
    journal: Any = agent.journal
    await journal.create_thread("chat", thread_id="t-1")
    await journal.add_run("t-1", "t-run-1")
    await journal.add_run("t-1", "t-run-2")
    async with client(create_app(SqliteSource(db), agent=agent)) as c:
        listing = await c.get("/threads")
        assert 'data-thread="t-1"' in listing.text
        shown = await c.get("/threads/t-1")
        assert shown.text.index('data-run="t-run-1"') < shown.text.index('data-run="t-run-2"')
        form = {"csrf": _csrf(shown.text), "thread_id": "t-1", "run_id": "t-run-2", "step": "2"}
        forked = await c.post("/threads/fork", data=form, headers={"origin": "http://127.0.0.1:8321"})
        assert forked.status_code == 303, forked.text
        fork_id = forked.headers["location"].rsplit("/", 1)[1]
        fork = await SqliteSource(db).thread(fork_id)
        assert fork is not None and fork.parent_id == "t-1" and fork.run_ids[0] == "t-run-1"
        copy = await SqliteSource(db).step_index(fork.run_ids[1])
        assert copy.steps == 2, "the forked run holds steps 1 and 2"
        page = await c.get(forked.headers["location"])
        assert "Forked from" in page.text
        bad = await c.post("/threads/fork", data={**form, "step": "9"}, headers={"origin": "http://127.0.0.1:8321"})
        assert bad.status_code == 400 and "no committed step 9" in bad.text


def _serve(*argv: str) -> int:
    """``agent-kernel serve ARGV`` in this process (it returns before binding when it refuses)."""
    from agent_plugin_inspector import _command

    parser = argparse.ArgumentParser()
    _command.configure(parser)
    return _command.run(parser.parse_args(argv))


def test_serve_refuses_a_public_address_without_a_token(
    db: pathlib.Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db.touch()
    assert _serve("--journal", str(db), "--host", "0.0.0.0", "--read-only") == 2
    err = capsys.readouterr().err
    assert "not a loopback address" in err and "--token-env" in err
    monkeypatch.setenv("INSPECTOR_T", "short")
    assert _serve("--journal", str(db), "--token-env", "INSPECTOR_T", "--read-only") == 2
    assert "shorter than 8" in capsys.readouterr().err
    assert _serve("--journal", str(db.with_name("missing.db")), "--read-only") == 2
    assert "does not exist" in capsys.readouterr().err
    assert _serve("--journal", str(db), "--agent", "inspector_kit:make_agent") == 2
    assert "the factory raised KeyError: 'INSPECTOR_TEST_JOURNAL'" in capsys.readouterr().err
    monkeypatch.setenv("INSPECTOR_TEST_JOURNAL", str(db.with_name("other.db")))
    assert _serve("--journal", str(db), "--agent", "inspector_kit:make_agent") == 2
    assert "other.db) is not" in capsys.readouterr().err  # the agent must resume runs in the journal shown


def test_the_benchmark_still_runs(tmp_path: pathlib.Path) -> None:
    bench = HERE.parents[2] / "bench" / "inspector_runs.py"
    result = subprocess.run(
        [sys.executable, str(bench), "--runs", "300", "--repeat", "2", "--long", "60", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "journal: 300 runs" in result.stdout and "run list of 300 runs:" in result.stdout, result.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_command_serves_the_journal_and_stops_by_pid(db: pathlib.Path) -> None:
    import anyio

    anyio.run(_run, make_agent(db), "deploy prod", "cli-run", backend="trio")
    env = {
        **os.environ,
        "INSPECTOR_TEST_JOURNAL": str(db),
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        "INSPECTOR_TOKEN": "cli-token-123456",
    }
    for _attempt in range(3):  # the port was free a moment ago; another process may take it
        port = _free_port()
        args = ["--journal", str(db), "--port", str(port), "--agent", "inspector_kit:make_agent"]
        process = subprocess.Popen(
            [sys.executable, "-m", "agent_kernel", "serve", *args, "--token-env", "INSPECTOR_TOKEN"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 90
            response = None
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    response = httpx.get(
                        f"http://127.0.0.1:{port}/inbox", headers={"authorization": "Bearer cli-token-123456"}
                    )
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            if response is None:
                continue  # it exited (port taken?) or never answered: try another port
            assert response.status_code == 200
            assert "cli-run" in response.text and "deploy" in response.text
            assert httpx.get(f"http://127.0.0.1:{port}/inbox").status_code == 401
            return
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(30)
    _out, err = process.communicate()
    raise AssertionError(f"agent-kernel serve never answered on 3 ports: {err[-2000:]}")
