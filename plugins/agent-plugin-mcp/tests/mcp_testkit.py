"""Helpers shared by the MCP plugin's tests: servers, process checks, a tool strategy."""

from __future__ import annotations

import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio
from attrs import frozen

from agent_kernel import Agent, RuntimeRegistrar, ToolCall, hookimpl
from agent_kernel.testing import ScriptedModel
from agent_plugin_mcp import MCPTools

SERVERS = pathlib.Path(__file__).resolve().parent / "servers"
TESTKIT = str(SERVERS / "testkit_server.py")
PY = sys.executable


# ---------------------------------------------------------------- tool strategies


class Sequential:
    """A test-local tool strategy plugin (the tests do not depend on agent-plugin-tools)."""

    name = "test-sequential"
    concurrent = False

    async def run(self, calls: Sequence[ToolCall], execute: Callable[[ToolCall], Awaitable[None]]) -> None:
        for call in calls:
            await execute(call)

    @hookimpl
    def agent_register_runtime(self, runtime: RuntimeRegistrar) -> None:
        runtime.set_tool_strategy(self)


class Concurrent(Sequential):
    """Runs a step's calls concurrently (one task each)."""

    name = "test-concurrent"
    concurrent = True

    async def run(self, calls: Sequence[ToolCall], execute: Callable[[ToolCall], Awaitable[None]]) -> None:
        async with anyio.create_task_group() as tg:
            for call in calls:
                tg.start_soon(execute, call)


def agent(turns: Sequence[Any], *plugins: object, strategy: object | None = None) -> tuple[Agent, ScriptedModel]:
    """An agent on a ScriptedModel with `plugins`, a test-local strategy, no autoload."""
    model = ScriptedModel(turns)
    built = Agent(model="scripted", plugins=[model, *plugins, strategy or Sequential()], autoload=False)
    return built, model


def tool_messages(outcome: Any) -> list[Any]:
    return [m for m in outcome.state.messages if m.role == "tool"]


# ---------------------------------------------------------------- servers


def time_server(**options: Any) -> MCPTools:
    """The real ``mcp-server-time`` over stdio."""
    return MCPTools("time", command=PY, args=["-m", "mcp_server_time", "--local-timezone", "UTC"], **options)


def kit_server(name: str = "kit", **options: Any) -> MCPTools:
    return MCPTools(name, command=PY, args=[TESTKIT], **options)


@frozen
class GitRepo:
    path: pathlib.Path
    head: str
    untracked: str


def make_git_repo(path: pathlib.Path) -> GitRepo:
    """A git repository with one commit and one untracked file."""
    git = shutil.which("git")
    assert git, "git is needed by the mcp-server-git tests"
    path.mkdir(parents=True)
    ident = ["-c", "user.name=Test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false"]
    subprocess.run([git, "init", "-q", str(path)], check=True)
    (path / "tracked.txt").write_text("hello\n")
    subprocess.run([git, *ident, "-C", str(path), "add", "tracked.txt"], check=True)
    subprocess.run([git, *ident, "-C", str(path), "commit", "-q", "-m", "first commit"], check=True)
    (path / "untracked-file.txt").write_text("new\n")
    head = subprocess.run(
        [git, "-C", str(path), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    return GitRepo(path, head, "untracked-file.txt")


def git_server(repo: GitRepo, **options: Any) -> MCPTools:
    """The real ``mcp-server-git`` over stdio, on `repo`."""
    return MCPTools("git", command=PY, args=["-m", "mcp_server_git", "--repository", str(repo.path)], **options)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class HttpServer:
    """The testkit server over streamable HTTP, in a subprocess."""

    def __init__(self, process: subprocess.Popen[bytes], port: int) -> None:
        self.process = process
        self.port = port
        self.url = f"http://127.0.0.1:{port}/mcp"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)


def start_http_server(deadline: float = 30.0) -> HttpServer:
    port = free_port()
    process = subprocess.Popen([PY, TESTKIT, "--http", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    end = time.monotonic() + deadline
    while True:
        if process.poll() is not None:
            raise AssertionError(f"the HTTP test server exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return HttpServer(process, port)
        except OSError:
            if time.monotonic() > end:
                process.kill()
                process.wait()
                raise AssertionError(
                    f"the HTTP test server did not listen on port {port} within {deadline} s"
                ) from None
            time.sleep(0.05)


# ---------------------------------------------------------------- processes (from /proc)


def _stat(pid: int | str) -> tuple[str, int] | None:
    """(state, parent pid) of a process, or None if it does not exist."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], int(fields[1])


def children(parent: int | None = None) -> set[int]:
    """PIDs of the child processes of `parent` (this process), zombies included."""
    parent = os.getpid() if parent is None else parent
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(entry)
            if stat is not None and stat[1] == parent:
                found.add(int(entry))
    return found


def running(pid: int) -> bool:
    """True if `pid` exists and is not a zombie."""
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"


def reaped(pid: int) -> bool:
    """True once `pid` is gone entirely (exited and waited for: no zombie)."""
    return _stat(pid) is None


def only_new_child(before: set[int]) -> int:
    new = children() - before
    assert len(new) == 1, f"expected one new child process, found {sorted(new)}"
    return new.pop()


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll `predicate` until it holds (True) or `timeout` seconds pass (False)."""
    with anyio.move_on_after(timeout):
        while not predicate():
            await anyio.sleep(0.02)
        return True
    return False


def kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
