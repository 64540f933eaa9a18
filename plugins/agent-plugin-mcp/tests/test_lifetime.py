"""Lifetime of the server: cancellation, timeouts, a server killed mid-call, clean exits."""

from __future__ import annotations

import pathlib
from typing import Any

import anyio
import pytest
from mcp_testkit import (
    PY,
    SERVERS,
    Concurrent,
    agent,
    children,
    eventually,
    kill,
    kit_server,
    only_new_child,
    reaped,
    tool_messages,
)

from agent_kernel.testing import text, tool_call
from agent_plugin_mcp import MCPConnectionLost, MCPError, MCPTools

pytestmark = pytest.mark.usefixtures("no_leftover_children")


def test_cancelling_a_run_during_a_tool_call_keeps_the_session(run: Any) -> None:
    """The run's timeout cancels the call; the same server process answers the next run."""

    async def main() -> Any:
        async with kit_server() as server:
            pid_before = (await server.call("pid")).content
            slow, _ = agent([tool_call("kit__slow", seconds=30), text("never")], server)
            with anyio.fail_after(20):
                cancelled = await slow.run("wait", timeout=1.0)
            quick, _ = agent([[tool_call("kit__add", a=2, b=3), tool_call("kit__pid")], text("5")], server)
            after = await quick.run("add")
            return pid_before, cancelled, after, server.connected

    pid_before, cancelled, after, connected = run(main)
    assert cancelled.reason == "cancelled"
    assert cancelled.error is not None and cancelled.error.type == "TimeoutError"
    assert after.reason == "completed", after.error
    added, pid = tool_messages(after)
    assert added.content == "5" and not added.is_error
    assert pid.content == pid_before  # no restart: the session survived the cancellation
    assert connected


def test_call_timeout_gives_an_error_result_and_the_session_goes_on(run: Any) -> None:
    async def main() -> Any:
        async with kit_server(call_timeout=2) as server:
            built, _ = agent([tool_call("kit__slow", seconds=30), tool_call("kit__add", a=1, b=1), text("ok")], server)
            with anyio.fail_after(20):
                return await built.run("go")

    outcome = run(main)
    assert outcome.reason == "completed", outcome.error
    timed_out, added = tool_messages(outcome)
    assert timed_out.is_error
    assert "MCPTimeout" in timed_out.content and "MCP server 'kit'" in timed_out.content
    assert "'slow'" in timed_out.content
    assert not added.is_error and added.content == "2"


def test_server_killed_during_a_call_fails_that_call_at_once(run: Any, tmp_path: pathlib.Path) -> None:
    marker = tmp_path / "slow-started"

    async def killer() -> None:
        assert await eventually(marker.exists, timeout=20)
        kill(int(marker.read_text()))

    async def main() -> Any:
        before = children()
        async with kit_server() as server:
            pid = only_new_child(before)
            built, _ = agent(
                [tool_call("kit__slow", seconds=60, marker=str(marker)), tool_call("kit__add", a=1, b=2), text("x")],
                server,
            )
            with anyio.fail_after(20):  # not the 60 s the tool would sleep
                async with anyio.create_task_group() as tg:
                    tg.start_soon(killer)
                    outcome = await built.run("go")
            return pid, outcome, await eventually(lambda: reaped(pid))

    pid, outcome, reaped_while_open = run(main)
    assert outcome.reason == "completed", outcome.error
    in_flight, later = tool_messages(outcome)
    for message in (in_flight, later):
        assert message.is_error
        assert "MCPConnectionLost" in message.content
        assert "MCP server 'kit'" in message.content
    # The supervisor reaps the dead server at once, not only when the block ends.
    assert reaped_while_open
    assert int(marker.read_text()) == pid


def test_concurrent_calls_share_one_session(run: Any) -> None:
    async def main() -> Any:
        async with kit_server() as server:
            calls = [tool_call("kit__add", a=i, b=100) for i in range(6)]
            built, _ = agent([calls, text("done")], server, strategy=Concurrent())
            return await built.run("add them")

    outcome = run(main)
    assert outcome.reason == "completed", outcome.error
    assert [m.content for m in tool_messages(outcome)] == [str(100 + i) for i in range(6)]


def test_leaving_a_stream_early_cancels_the_call_not_the_server(run: Any) -> None:
    async def main() -> Any:
        async with kit_server() as server:
            built, _ = agent([tool_call("kit__slow", seconds=30), text("never")], server)
            with anyio.fail_after(20):
                async with built.stream("wait") as events:
                    async for event in events:
                        if type(event).__name__ == "ToolCallStarted":
                            break
            return events.outcome, await server.call("add", {"a": 20, "b": 22})

    outcome, result = run(main)
    assert outcome is None  # the run was cancelled by leaving the block
    assert result.content == "42"


def test_an_error_in_the_block_propagates_unwrapped_and_stops_the_server(run: Any) -> None:
    async def main() -> None:
        before = children()
        try:
            async with kit_server():
                only_new_child(before)
                raise KeyError("mine")
        finally:
            assert children() == before

    with pytest.raises(KeyError, match="mine"):
        run(main)


def test_cancelling_the_block_stops_the_server(run: Any) -> None:
    async def main() -> tuple[bool, bool]:
        before = children()
        with anyio.move_on_after(0.2) as during_start:
            async with kit_server():
                await anyio.sleep(30)
        assert children() == before
        with anyio.CancelScope() as while_up:
            async with kit_server():
                only_new_child(before)
                while_up.cancel()
                await anyio.sleep(30)
        assert children() == before
        return during_start.cancelled_caught, while_up.cancelled_caught

    assert run(main) == (True, True)


def test_started_by_an_agent_it_cannot_be_entered_until_closed(run: Any) -> None:
    server = kit_server()
    built, _ = agent([tool_call("kit__add", a=1, b=1), text("x")], server)  # started for the agent
    assert server.connected

    async def main() -> Any:
        with pytest.raises(RuntimeError, match="was started for an agent built without `async with`; call close"):
            await server.__aenter__()
        outcome = await built.run("in")
        await server.aclose()
        assert not server.connected
        async with server:  # explicit lifetime again
            return outcome, (await server.call("add", {"a": 2, "b": 2})).content

    outcome, added = run(main)
    assert outcome.reason == "completed" and [m.content for m in tool_messages(outcome)] == ["2"]
    assert added == "4"


def test_an_agent_built_inside_the_block_fails_after_it(run: Any) -> None:
    server = kit_server()

    async def main() -> Any:
        async with server:
            built, _ = agent([tool_call("kit__add", a=1, b=1), text("x")], server)
            inside = await built.run("in")
        outside = await built.run("out")  # the server is stopped: the run fails at its start
        with pytest.raises(
            MCPError, match=r"only inside `async with MCPTools\(...\)` or, for an agent built without it"
        ):
            await server.call("add", {"a": 1, "b": 1})
        return inside, outside

    inside, outside = run(main)
    assert inside.reason == "completed"
    assert outside.reason == "error"
    assert outside.error.plugin == "mcp:kit"
    assert outside.error.hook == "agent_wrap_run"
    assert "MCP server 'kit' is not running" in outside.error.message
    assert outside.stats.tool_calls == 0


def test_entering_twice_fails_and_entering_again_after_exit_works(run: Any) -> None:
    async def main() -> list[str]:
        server = kit_server()
        pids = []
        async with server:
            with pytest.raises(RuntimeError, match="already entered"):
                await server.__aenter__()
            pids.append((await server.call("pid")).content)
        async with server:
            pids.append((await server.call("pid")).content)
        return pids

    first, second = run(main)
    assert first != second


def test_two_servers_in_one_agent(run: Any) -> None:
    async def main() -> Any:
        async with kit_server("one") as one, kit_server("two", tool_prefix="t2_") as two:
            built, _ = agent([[tool_call("one__add", a=1, b=1), tool_call("t2_add", a=2, b=2)], text("x")], one, two)
            outcome = await built.run("both")
            return outcome, {s.name: s.plugin for s in built.tools}

    outcome, plugins = run(main)
    assert [m.content for m in tool_messages(outcome)] == ["2", "4"]
    assert plugins["one__add"] == "mcp:one"
    assert plugins["t2_add"] == "mcp:two"


def test_connection_lost_error_names_server_and_is_raised_by_direct_calls(run: Any) -> None:
    async def main() -> Any:
        before = children()
        async with kit_server(restart=False) as server:
            kill(only_new_child(before))
            assert await eventually(lambda: not server.connected)
            with pytest.raises(MCPConnectionLost) as info:
                await server.call("add", {"a": 1, "b": 1})
            return info.value

    error = run(main)
    assert error.server == "kit"
    assert "testkit_server.py" in error.target
    assert "testkit server starting" in error.stderr  # kept for logs, not put in the model's message
    assert "testkit server starting" not in str(error)


def test_process_environment_and_working_directory(run: Any, tmp_path: pathlib.Path) -> None:
    script = (
        "import os, pathlib; from mcp.server.mcpserver import MCPServer\n"
        "s = MCPServer('env')\n"
        "@s.tool()\n"
        "def where() -> str:\n"
        "    return os.environ.get('MCP_TEST_VALUE', '?') + ' ' + os.getcwd()\n"
        "s.run()\n"
    )
    (tmp_path / "server.py").write_text(script)

    async def main() -> str:
        async with MCPTools(
            "env", command=PY, args=["server.py"], env={"MCP_TEST_VALUE": "v42"}, cwd=tmp_path
        ) as server:
            return (await server.call("where")).content

    assert run(main) == f"v42 {tmp_path}"


def test_concurrent_runs_after_a_death_restart_the_server_once(run: Any) -> None:
    async def main() -> Any:
        before = children()
        async with kit_server() as server:
            first = only_new_child(before)
            kill(first)
            assert await eventually(lambda: not server.connected)
            outcomes: list[Any] = []

            async def one() -> None:
                built, _ = agent([tool_call("kit__pid"), text("x")], server)
                outcomes.append(await built.run("pid"))

            with anyio.fail_after(30):
                async with anyio.create_task_group() as tg:
                    for _ in range(3):
                        tg.start_soon(one)
            return first, outcomes, server.restarts, only_new_child(before)

    first, outcomes, restarts, second = run(main)
    assert restarts == 1
    assert [tool_messages(o)[0].content for o in outcomes] == [str(second)] * 3
    assert second != first


def flaky_server(tmp_path: pathlib.Path, then: str, **options: Any) -> MCPTools:
    """A server whose restarts fail: `then` is "exit" (at once) or "hang"."""
    state = tmp_path / "flaky-state"
    return MCPTools("flaky", command=PY, args=[str(SERVERS / "flaky_server.py"), str(state), then], **options)


def test_a_failed_restart_lets_the_run_go_on_with_error_results(run: Any, tmp_path: pathlib.Path) -> None:
    async def main() -> Any:
        before = children()
        async with flaky_server(tmp_path, "exit") as server:
            assert (await server.call("ping")).content == "pong"
            kill(only_new_child(before))
            assert await eventually(lambda: not server.connected)
            built, _ = agent([tool_call("flaky__ping"), text("no pong")], server)
            with anyio.fail_after(30):
                return await built.run("ping"), server.restarts

    outcome, restarts = run(main)
    assert restarts == 1
    assert outcome.reason == "completed", outcome.error
    (message,) = tool_messages(outcome)
    assert message.is_error
    assert "MCP server 'flaky'" in message.content and "restarting it after it had died" in message.content
    assert "second start" not in message.content  # the server's stderr is not shown to the model


def test_leaving_the_block_during_a_restart_does_not_wait_for_it(run: Any, tmp_path: pathlib.Path) -> None:
    async def main() -> Any:
        before = children()
        started = 0.0
        async with flaky_server(tmp_path, "hang", timeout=60) as server:
            kill(only_new_child(before))
            assert await eventually(lambda: not server.connected)
            built, _ = agent([tool_call("flaky__ping"), text("x")], server)
            outcome = await built.run("ping", timeout=1.0)  # waits for the hanging restart, then is cancelled
            started = anyio.current_time()
        return outcome, anyio.current_time() - started

    outcome, took = run(main)
    assert outcome.reason == "cancelled"
    assert took < 10  # not the 60 s start timeout of the hanging restart
