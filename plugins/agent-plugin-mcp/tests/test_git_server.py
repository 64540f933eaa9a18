"""Against the real ``mcp-server-git`` (stdio) on a repository the test creates."""

from __future__ import annotations

from typing import Any

import pytest
from mcp_testkit import (
    GitRepo,
    agent,
    children,
    eventually,
    git_server,
    kill,
    only_new_child,
    reaped,
    running,
    tool_messages,
)

from agent_kernel import Request
from agent_kernel.testing import text, tool_call

pytestmark = pytest.mark.usefixtures("no_leftover_children")


def test_agent_runs_git_status_and_git_log(run: Any, git_repo: GitRepo) -> None:
    repo = str(git_repo.path)

    async def main() -> Any:
        async with git_server(git_repo) as server:
            built, _ = agent(
                [
                    [tool_call("git__git_status", repo_path=repo), tool_call("git__git_log", repo_path=repo)],
                    tool_call("git__git_show", repo_path=repo, revision=git_repo.head),
                    text("done"),
                ],
                server,
            )
            return server.tools, await built.run("What changed?")

    specs, outcome = run(main)
    names = {spec.name for spec in specs}
    assert {"git__git_status", "git__git_log", "git__git_show", "git__git_diff"} <= names
    assert all(name.startswith("git__") for name in names)
    assert outcome.reason == "completed", outcome.error
    status, log, show = tool_messages(outcome)
    assert [m.tool_call_id for m in (status, log, show)] == ["call_1_1", "call_1_2", "call_2_1"]
    assert not (status.is_error or log.is_error or show.is_error)
    assert git_repo.untracked in status.content
    assert "tracked.txt" not in status.content.replace(git_repo.untracked, "")
    assert git_repo.head in log.content
    assert "first commit" in log.content
    assert git_repo.head in show.content


def test_server_killed_mid_run_gives_error_results_then_restarts_on_next_run(run: Any, git_repo: GitRepo) -> None:
    """Kill the server by PID between two calls: that call and later ones fail, naming the server."""
    repo = str(git_repo.path)
    seen: dict[str, int] = {}

    async def main() -> Any:
        before = children()
        async with git_server(git_repo, timeout=60) as server:
            seen["first"] = only_new_child(before)

            def kill_then_call(request: Request) -> Any:
                kill(seen["first"])
                return tool_call("git__git_log", repo_path=repo)

            built, _ = agent(
                [
                    tool_call("git__git_status", repo_path=repo),
                    kill_then_call,
                    tool_call("git__git_status", repo_path=repo),
                    text("the server is gone"),
                ],
                server,
            )
            broken = await built.run("status please")
            # The next run restarts the server before its first phase that can call a tool.
            again, _ = agent([tool_call("git__git_log", repo_path=repo), text("ok")], server)
            healed = await again.run("log please")
            seen["second"] = only_new_child(before)
            return broken, healed, server.restarts

    broken, healed, restarts = run(main)
    assert broken.reason == "completed", broken.error
    ok, lost, still_lost = tool_messages(broken)
    assert not ok.is_error and git_repo.untracked in ok.content
    for message in (lost, still_lost):
        assert message.is_error
        assert "MCP server 'git'" in message.content
        assert "closed the connection" in message.content
    assert broken.stats.tool_errors == 2
    assert healed.reason == "completed", healed.error
    (log,) = tool_messages(healed)
    assert not log.is_error and git_repo.head in log.content
    assert restarts == 1
    assert seen["second"] != seen["first"]
    assert reaped(seen["first"]) and reaped(seen["second"])


def test_restart_false_keeps_a_dead_server_down(run: Any, git_repo: GitRepo) -> None:
    repo = str(git_repo.path)

    async def main() -> Any:
        before = children()
        async with git_server(git_repo, restart=False) as server:
            pid = only_new_child(before)
            kill(pid)
            built, _ = agent([tool_call("git__git_status", repo_path=repo), text("no")], server)
            first = await built.run("status")
            second = await built.run("status again")
            gone = await eventually(lambda: not running(pid))
            return first, second, server.restarts, gone

    first, second, restarts, gone = run(main)
    assert gone
    for outcome in (first, second):
        assert outcome.reason == "completed"
        (message,) = tool_messages(outcome)
        assert message.is_error and "MCP server 'git'" in message.content
    assert restarts == 0
