"""Issue 13: the section "A whole session" of docs/cli.md, run as written against real components.

The files (``agent.toml``, ``clock.py``), the model server's command and every ``$``
command are read from the page, so the page cannot drift from what works: a real
llama.cpp server (llama-cpp-python with Gemma 3 270M) on a free loopback port, the
real ``mcp-server-time`` over stdio (started by the CLI from ``agent.toml``), an
approval policy, a thread and a SQLite journal. Nothing is skipped: a missing
component fails the test. The model's words vary, so the checks read exit codes,
the printed events and requests, and the journal, never the model's prose.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import zoneinfo
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import httpx

ROOT = Path(__file__).parent.parent
PAGE = ROOT / "docs" / "cli.md"
TITLE = "## A whole session"
BIN = Path(sys.executable).parent  # agent-kernel and mcp-server-time, as a user's PATH finds them
DOC_PORT = "8080"
TIMEOUT = 300  # seconds per command: generous, the machine may be busy
FENCE = re.compile(r"^(`{3,}|~{3,})(.*)$")


# ---------------------------------------------------------------------- reading the page


@attrs.frozen
class Command:
    """A ``$`` line of a console block and the output the page shows under it."""

    words: tuple[str, ...]
    shown: tuple[str, ...]


@attrs.frozen
class Session:
    files: dict[str, str]  # name (from the block's first line, "# NAME") -> text
    setup: tuple[str, ...]  # the lines of the ```sh block
    commands: tuple[Command, ...]


def section(markdown: str, title: str) -> str:
    """The text from the heading `title` to the next heading of level 1 or 2 outside a fence."""
    lines = markdown.split("\n")
    start = lines.index(title)
    fence = None
    for i in range(start + 1, len(lines)):
        opening = FENCE.match(lines[i])
        if opening and fence is None:
            fence = opening[1]
        elif opening and lines[i].strip() == fence:
            fence = None
        elif fence is None and re.match(r"#{1,2} ", lines[i]):
            return "\n".join(lines[start:i])
    return "\n".join(lines[start:])


def blocks(text: str) -> Iterator[tuple[str, list[str]]]:
    """The fenced blocks of `text`: (info string, lines)."""
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        end = lines.index(opening[1], i + 1)
        yield opening[2].strip(), lines[i + 1 : end]
        i = end + 1


def read_session(markdown: str) -> Session:
    files: dict[str, str] = {}
    setup: tuple[str, ...] = ()
    commands: list[Command] = []
    for info, lines in blocks(section(markdown, TITLE)):
        if info in ("toml", "python"):
            name = re.fullmatch(r"# (\S+)", lines[0])
            assert name, f"a {info} block of the session must start with '# FILENAME', not {lines[0]!r}"
            files[name[1]] = "\n".join(lines) + "\n"
        elif info == "sh":
            setup = tuple(lines)
        elif info == "console":
            for line in lines:
                if line.startswith("$ "):
                    commands.append(Command(tuple(shlex.split(line[2:])), ()))
                else:
                    last = commands[-1]
                    commands[-1] = attrs.evolve(last, shown=(*last.shown, line))
    return Session(files, setup, tuple(commands))


# ---------------------------------------------------------------------- running it


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def model_server(setup: tuple[str, ...], port: int) -> Iterator[None]:
    """Start the page's ``python -m llama_cpp.server ...`` line on `port`; stop it by its PID."""
    from agent_plugin_openai.testing import gemma_model_path

    (line,) = [line for line in setup if "llama_cpp.server" in line]
    words = shlex.split(line)
    assert words[:3] == ["python", "-m", "llama_cpp.server"], line
    model, shown_port = words[words.index("--model") + 1], words[words.index("--port") + 1]
    assert shown_port == DOC_PORT and words[words.index("--host") + 1] == "127.0.0.1", line
    (assemble,) = [line for line in setup if "assemble(" in line]
    assert f"output_path='{model}'" in assemble, "the page assembles the model file its server loads"
    # The same assembly as the page's, into the shared cache (not 253 MB per test run).
    words[0], words[words.index("--model") + 1] = sys.executable, str(gemma_model_path())
    words[words.index("--port") + 1] = str(port)
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(words, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

        def output() -> str:
            log.seek(0)
            return log.read().decode("utf-8", "replace")[-4000:]

        try:
            deadline = time.monotonic() + 180
            while True:
                assert process.poll() is None, f"the model server exited with {process.returncode}:\n{output()}"
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2.0).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, f"the model server did not answer in 180 s:\n{output()}"
                time.sleep(0.2)
            yield
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=15)


def environment(project: Path) -> dict[str, str]:
    """A user's shell: the venv's scripts on PATH, no PYTHONPATH, no agent-kernel or OpenAI variables."""
    drop = ("AGENT_KERNEL", "OPENAI_", "ANTHROPIC_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop) and k not in ("PYTHONPATH", "FORCE_COLOR")}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", XDG_CONFIG_HOME=str(project / "xdg"), NO_COLOR="1")
    return env


def run(project: Path, words: tuple[str, ...] | list[str]) -> subprocess.CompletedProcess[str]:
    assert words[0] == "agent-kernel", words
    return subprocess.run(
        list(words),
        cwd=project,
        env=environment(project),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,  # not a terminal: nothing is asked
    )


def explain(done: subprocess.CompletedProcess[str]) -> str:
    return (
        f"{shlex.join(done.args)} exited with {done.returncode}\n"
        f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
    )


def status_lines(shown: tuple[str, ...]) -> list[str]:
    """The page's ``[reason] run ID`` lines: the CLI prints them exactly."""
    return [line for line in shown if re.fullmatch(r"\[\w+\] run \S+", line)]


def without_request_id(words: list[str] | tuple[str, ...]) -> list[str]:
    """A resume command with the id after --approve/--deny blanked (it ends with the server's call id)."""
    out = list(words)
    for i, word in enumerate(out[:-1]):
        if word in ("--approve", "--deny"):
            out[i + 1] = "REQUEST_ID"
    return out


# ---------------------------------------------------------------------- the test


def test_the_whole_session_of_docs_cli_md_runs_as_written(tmp_path: Path) -> None:
    started = time.monotonic()
    session = read_session(PAGE.read_text())
    assert sorted(session.files) == ["agent.toml", "clock.py"]
    assert [c.words[:2] for c in session.commands] == [
        ("agent-kernel", "config"),
        ("agent-kernel", "run"),
        ("agent-kernel", "resume"),
        ("agent-kernel", "run"),
        ("agent-kernel", "threads"),
        ("agent-kernel", "sqlite"),
        ("agent-kernel", "sqlite"),
    ], "the session's steps changed: update this test with the page"
    check, first, approve, second, thread_show, runs, entries = session.commands

    port = free_port()
    doc_address = f"127.0.0.1:{DOC_PORT}"
    assert doc_address in session.files["agent.toml"]
    for name, text in session.files.items():
        (tmp_path / name).write_text(text.replace(doc_address, f"127.0.0.1:{port}"))

    with model_server(session.setup, port):
        # 1. config check: the configuration builds (MCP server included) and is shown as on the page
        done = run(tmp_path, check.words)
        assert done.returncode == 0, explain(done)
        printed = done.stdout.splitlines()
        (loaded,) = [line for line in printed if line.startswith("# plugins loaded: ")]
        (shown_loaded,) = [line for line in check.shown if line.startswith("# plugins loaded: ")]
        assert set(shown_loaded.split(": ")[1].split(", ")) <= set(loaded.split(": ")[1].split(", ")), loaded
        missing = [line for line in check.shown if line not in (shown_loaded, "...") and line not in printed]
        assert not missing, f"config check no longer prints {missing}:\n{done.stdout}"

        # 2. run: the forced call of the MCP time tool waits for approval; exit code 4
        done = run(tmp_path, first.words)
        assert done.returncode == 4, explain(done)
        errors = done.stderr.splitlines()
        for line in status_lines(first.shown):
            assert line in errors, explain(done)
        pending = [m for m in (re.fullmatch(r"  pending (\S+): (\w+)\((.*)\)", line) for line in errors) if m]
        assert len(pending) == 1, explain(done)
        request_id, tool = pending[0][1], pending[0][2]
        assert tool == "time__get_current_time", explain(done)
        assert f"⏸ approval needed [{request_id}] time__get_current_time: reads the clock" in errors
        (printed_resume,) = [line.split("approve with: ", 1)[1] for line in errors if "approve with: " in line]
        resume_words = shlex.split(printed_resume)
        assert resume_words[-2:] == ["--approve", request_id], printed_resume
        assert without_request_id(resume_words) == without_request_id(approve.words), (
            f"the CLI prints {printed_resume!r}, the page shows {shlex.join(approve.words)!r}"
        )

        # 3. the printed command approves: the tool runs once and the run completes
        done = run(tmp_path, resume_words)
        assert done.returncode == 0, explain(done)
        errors = done.stderr.splitlines()
        for line in status_lines(approve.shown):
            assert line in errors, explain(done)
        assert any(line.startswith("→ time__get_current_time(") for line in errors), explain(done)
        # its result (✗: an error result, when the tiny model made up a time zone; see check_journal)
        assert any(re.match("[←✗] time__get_current_time: ", line) for line in errors), explain(done)

        # 4. a second run continues the thread and answers in text
        done = run(tmp_path, second.words)
        assert done.returncode == 0, explain(done)
        for line in status_lines(second.shown):
            assert line in done.stderr.splitlines(), explain(done)
        assert "tool calls 0" in done.stderr, explain(done)

    # 5. the journal: no model needed any more
    done = run(tmp_path, thread_show.words)
    assert done.returncode == 0, explain(done)
    lines = done.stdout.splitlines()
    assert lines[0] == thread_show.shown[0] == "thread clock 'clock': 2 run(s), last run completed", done.stdout
    assert lines[1] == thread_show.shown[1] == "system: You tell the time.", done.stdout
    inputs = [line for line in thread_show.shown if line.startswith("user: ")]
    assert len(inputs) == 2 and inputs[0] == lines[2], done.stdout  # the first run's input, then its call
    assert lines[3].startswith("assistant: time__get_current_time({"), done.stdout
    assert lines[4].startswith("tool: "), done.stdout  # "tool: {" (the time), or the error of a made-up zone
    assert inputs[1] in lines[5:], done.stdout  # the second run's input, after the first run's conversation

    done = run(tmp_path, runs.words)
    assert done.returncode == 0, explain(done)
    listed = json.loads(done.stdout)
    shown_ids = re.findall(r'"id": "(\w+)"', "\n".join(runs.shown))
    assert [(r["id"], r["status"], r["attempt"]) for r in listed["runs"]] == [
        (shown_ids[0], "completed", 2),  # suspended, then resumed
        (shown_ids[1], "completed", 1),
    ], done.stdout
    assert listed["threads"] == 1 and listed["schema_version"] == 1, done.stdout

    done = run(tmp_path, entries.words)
    assert done.returncode == 0, explain(done)
    journal = [json.loads(line) for line in done.stdout.splitlines()]
    check_journal(journal, request_id)
    # the page shows entries in the journal's current format: each kind with the fields it has now
    fields = {e["kind"]: sorted(e["entry"]) for e in journal}
    for line in entries.shown:
        if line != "...":
            shown = json.loads(line)
            assert sorted(shown["entry"]) == fields[shown["kind"]], (line, fields[shown["kind"]])
            assert shown["entry"]["v"] == journal[0]["entry"]["v"], line
    assert time.monotonic() - started < 600, "the session took over ten minutes"


def check_journal(journal: list[dict[str, Any]], request_id: str) -> None:
    """Run tokyo's entries: suspended by the approval plugin, approved, the tool's real result, completed."""
    call_id = request_id.split("/", 2)[2]
    assert [e["entry"]["reason"] for e in journal if e["kind"] == "Ended"] == ["suspended", "completed"], journal
    forced = [e["entry"] for e in journal if e["kind"] == "Committed" and e["entry"]["sources"] == ["clock"]]
    assert [(f["phase"], f["step"], f["patches"]) for f in forced] == [
        ("before_inference", 1, [{"choice": "time__get_current_time", "type": "ToolChoice"}])  # clock.py, once
    ], forced
    suspended = [
        e["entry"]
        for e in journal
        if e["kind"] == "Committed"
        and e["entry"]["phase"] == "before_tool_execute"
        and e["entry"]["call_id"] == call_id
    ]
    assert suspended[0]["sources"] == ["approval"], suspended
    assert suspended[0]["patches"] == [{"reason": "reads the clock", "type": "Suspend"}], suspended
    (decided,) = [e["entry"] for e in journal if e["kind"] == "Decided"]
    assert (decided["request_id"], decided["decision"]) == (request_id, {"arguments": None, "type": "Approve"}), decided
    (intended,) = [e["entry"] for e in journal if e["kind"] == "Intended"]
    (done,) = [e["entry"] for e in journal if e["kind"] == "ToolDone"]  # the tool ran exactly once
    assert intended["call_id"] == done["call_id"] == call_id
    asked = intended["arguments"].get("timezone")
    result = done["result"]
    if isinstance(asked, str) and asked.strip() in zoneinfo.available_timezones():
        # mcp-server-time's own answer: the current time in that zone
        assert result["is_error"] is False, result
        answer = json.loads(result["content"])
        assert answer["timezone"] == asked.strip(), answer
        now = datetime.fromisoformat(answer["datetime"])
        assert abs(now - datetime.now(UTC)).total_seconds() < 900, answer
        assert answer["day_of_week"] == now.strftime("%A"), answer
    else:
        # the tiny model made up a zone: the real server refuses it, and the model is told
        assert result["is_error"] is True and str(asked) in result["content"], result


def test_the_page_is_read_as_files_a_server_line_and_commands() -> None:
    page = "\n".join(
        [
            "# T",
            TITLE,
            "```sh",
            "python -m llama_cpp.server --port 8080",
            "```",
            "```toml",
            "# agent.toml",
            "[agent]",
            "```",
            "```console",
            "$ agent-kernel run 'a b' --no-input",
            "[suspended] run x",
            "  pending x/1/c: t()",
            "$ agent-kernel sqlite runs.db",
            "```",
            "## Next",
            "```console",
            "$ agent-kernel demo",
            "```",
        ]
    )
    session = read_session(page)
    assert session.files == {"agent.toml": "# agent.toml\n[agent]\n"}
    assert session.setup == ("python -m llama_cpp.server --port 8080",)
    assert session.commands == (
        Command(("agent-kernel", "run", "a b", "--no-input"), ("[suspended] run x", "  pending x/1/c: t()")),
        Command(("agent-kernel", "sqlite", "runs.db"), ()),
    )
    assert status_lines(session.commands[0].shown) == ["[suspended] run x"]
    assert without_request_id(["agent-kernel", "resume", "x", "--approve", "x/1/c"])[-1] == "REQUEST_ID"
