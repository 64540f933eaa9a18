"""MCP servers declared in ``agent.toml`` and started by the agent, without ``async with``.

The server is the real ``mcp-server-time`` (stdio); the configuration is read by
``agent_kernel.config`` as the CLI reads it; the model is a ScriptedModel calling
the server's tool.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp_testkit import (
    PY,
    TESTKIT,
    Sequential,
    children,
    kill,
    kit_server,
    only_new_child,
    reaped,
    running,
    time_server,
    tool_messages,
)

from agent_kernel import Agent
from agent_kernel.config import ConfigError, load_config
from agent_kernel.testing import ScriptedModel, text, tool_call
from agent_plugin_mcp import MCPError, MCPServers, MCPTools

pytestmark = pytest.mark.usefixtures("no_leftover_children")

TIME_SERVER = f"""
[agent]
model = "scripted"
autoload = false

[plugins.mcp.servers.time]
command = {json.dumps(PY)}
args = ["-m", "mcp_server_time", "--local-timezone", "UTC"]
"""


def wait_until(predicate: Any, timeout: float = 30.0) -> bool:
    """Poll (blocking) until `predicate()` holds or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def test_a_server_from_agent_toml_starts_when_the_agent_is_built_and_stops_on_close(run: Any, tmp_path: Path) -> None:
    before = children()
    config = load_config(config_file(tmp_path, TIME_SERVER), env={}, user=False)
    (unused,) = config.plugin_objects()
    assert isinstance(unused, MCPServers) and unused.name == "mcp"
    assert children() == before  # reading the configuration and making the plugin start nothing

    model = ScriptedModel([tool_call("time__get_current_time", timezone="Asia/Tokyo"), text("done")])
    agent = config.make_agent([model, Sequential()])
    plugin = agent.plugin_manager.get_plugin("mcp")
    try:
        assert isinstance(plugin, MCPServers)
        (pid,) = children() - before  # started lazily, for the agent: its tools are needed now
        assert {t.name for t in agent.tools} == {"time__get_current_time", "time__convert_time"}
        assert agent.plugins["mcp"].distribution is None  # the configured plugin replaced the entry point's

        outcome = run(agent.run, "What time is it in Tokyo?")  # in an event loop the server did not start in
        assert outcome.reason == "completed", outcome.error
        (result,) = tool_messages(outcome)
        assert not result.is_error and json.loads(result.content)["timezone"] == "Asia/Tokyo"
        assert running(pid)  # it stays up for the next run
    finally:
        plugin.close()
    assert wait_until(lambda: reaped(pid))  # stopped and waited for
    assert not plugin.servers["time"].connected


def test_a_run_after_close_starts_the_server_again(run: Any) -> None:
    server = time_server()
    model = ScriptedModel([tool_call("time__get_current_time", timezone="UTC"), text("done")])
    before = children()
    agent = Agent(model="scripted", plugins=[model, server, Sequential()], autoload=False)
    try:
        (first,) = children() - before
        server.close()
        assert wait_until(lambda: reaped(first)) and not server.connected
        outcome = run(agent.run, "again")
        assert outcome.reason == "completed", outcome.error
        (result,) = tool_messages(outcome)
        assert not result.is_error and server.connected
        (second,) = children() - before
        assert second != first
    finally:
        server.close()
    assert wait_until(lambda: reaped(second))


def test_started_by_the_agent_a_cancelled_run_cancels_the_call_not_the_server(run: Any) -> None:
    server = kit_server()
    model = ScriptedModel([tool_call("kit__slow", seconds=60), text("never")])
    agent = Agent(model="scripted", plugins=[model, server, Sequential()], autoload=False)
    try:

        async def main() -> Any:
            with anyio.fail_after(60):  # generous: the call must end with the run, not after 60 s
                cancelled = await agent.run("wait", timeout=1.0)
            return cancelled, await server.call("add", {"a": 1, "b": 2})

        cancelled, added = run(main)
        assert cancelled.reason == "cancelled"
        assert added.content == "3" and server.connected
    finally:
        server.close()


def test_started_by_the_agent_a_dead_server_is_restarted_by_the_next_run(run: Any) -> None:
    server = kit_server()
    model = ScriptedModel([tool_call("kit__pid"), text("one"), tool_call("kit__pid"), text("two")])
    before = children()
    agent = Agent(model="scripted", plugins=[model, server, Sequential()], autoload=False)
    try:
        first = only_new_child(before)
        kill(first)
        assert wait_until(lambda: not server.connected)
        outcome = run(agent.run, "pid")
        assert outcome.reason == "completed", outcome.error
        (result,) = tool_messages(outcome)
        assert not result.is_error and int(result.content) != first
        assert server.restarts == 1 and server.connected
    finally:
        server.close()
    assert wait_until(lambda: children() <= before)


def test_the_server_is_gone_when_the_process_ends(tmp_path: Path) -> None:
    """As under the CLI: the agent built from agent.toml, one run, no close(); then the process exits."""
    config_file(tmp_path, TIME_SERVER)
    script = tmp_path / "main.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, sys
            import anyio
            from agent_kernel.config import load_config
            from agent_kernel.testing import ScriptedModel, text, tool_call
            sys.path.insert(0, sys.argv[1])
            from mcp_testkit import Sequential, children

            config = load_config("agent.toml", env={}, user=False)
            model = ScriptedModel([tool_call("time__get_current_time", timezone="UTC"), text("done")])
            agent = config.make_agent([model, Sequential()])
            (pid,) = children()
            outcome = anyio.run(agent.run, "time?", backend="trio")
            print(pid, outcome.reason, flush=True)
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script), str(Path(__file__).parent)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    pid, reason = done.stdout.split()
    assert reason == "completed"
    assert wait_until(lambda: not running(int(pid)))


def test_several_servers_in_one_configuration(run: Any, tmp_path: Path) -> None:
    text_ = TIME_SERVER + textwrap.dedent(
        f"""
        [plugins.mcp.servers.kit]
        command = {json.dumps(PY)}
        args = [{json.dumps(TESTKIT)}]
        tool_prefix = "k_"
        tools = ["add"]
        env = {{ KIT_GREETING = "hello" }}
        """
    )
    config = load_config(config_file(tmp_path, text_), env={}, user=False)
    model = ScriptedModel(
        [[tool_call("k_add", a=40, b=2), tool_call("time__get_current_time", timezone="UTC")], text("x")]
    )
    agent = config.make_agent([model, Sequential()])
    plugin = agent.plugin_manager.get_plugin("mcp")
    try:
        assert set(plugin.servers) == {"time", "kit"}
        assert {t.name for t in agent.tools} == {"k_add", "time__get_current_time", "time__convert_time"}
        outcome = run(agent.run, "both")
    finally:
        plugin.close()
    assert outcome.reason == "completed", outcome.error
    added, now = tool_messages(outcome)
    assert added.content == "42" and json.loads(now.content)["timezone"] == "UTC"


def test_secrets_come_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = config_file(
        tmp_path,
        textwrap.dedent(
            """
            [plugins.mcp.servers.web]
            url = "http://127.0.0.1:9/mcp"
            bearer_token_env = "WEB_MCP_TOKEN"
            headers = { X-Title = "agent" }
            headers_env = { X-Org = "WEB_MCP_ORG" }

            [plugins.mcp.servers.tool]
            command = "some-mcp-server"
            pass_env = ["SOME_API_KEY"]
            """
        ),
    )
    config = load_config(path, env={}, user=False)
    with pytest.raises(
        ConfigError, match=r"MCP server .web.: \S+ names the environment variable WEB_MCP_\w+, which is not set"
    ):
        config.plugin_objects()
    monkeypatch.setenv("WEB_MCP_TOKEN", "t0k")
    monkeypatch.setenv("WEB_MCP_ORG", "acme")
    monkeypatch.setenv("SOME_API_KEY", "k3y")
    (plugin,) = config.plugin_objects()
    web, tool = plugin.servers["web"], plugin.servers["tool"]
    assert web.headers == {"X-Title": "agent", "X-Org": "acme", "Authorization": "Bearer t0k"}
    assert tool.env == {"SOME_API_KEY": "k3y"}
    assert "WEB_MCP_TOKEN" in config.secret_variables()
    assert "t0k" not in json.dumps(config.as_dict())

    bad = config_file(tmp_path, '[plugins.mcp.servers.x]\ncommand = "x"\nenv = { GITHUB_TOKEN = "ghp_abc" }\n')
    with pytest.raises(ConfigError, match=r"plugins\.mcp\.servers\.x\.env\.GITHUB_TOKEN: secrets are never read"):
        load_config(bad, env={}, user=False)


def test_bad_server_tables_are_refused_with_their_key_path(tmp_path: Path) -> None:
    path = config_file(tmp_path, '[plugins.mcp.servers.t]\ncommand = ["uvx", "mcp-server-time"]\ntimeout = "soon"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, env={}, user=False)
    message = str(info.value)
    assert "plugins.mcp.servers.t.command: expected a string" in message
    assert "plugins.mcp.servers.t.timeout: expected a number" in message
    both = config_file(tmp_path, '[plugins.mcp.servers.t]\ncommand = "x"\nurl = "http://127.0.0.1:9/mcp"\n')
    with pytest.raises(ConfigError, match=r"plugins\.mcp: MCP server 't': give exactly one of command="):
        load_config(both, env={}, user=False).plugin_objects()


def test_a_command_list_is_the_executable_and_its_first_arguments(run: Any) -> None:
    server = MCPTools("time", command=[PY, "-m", "mcp_server_time"], args=["--local-timezone", "UTC"])
    assert server.command == PY and server.args == ("-m", "mcp_server_time", "--local-timezone", "UTC")
    for bad in ([], [PY, 3], b"mcp-server-time"):
        with pytest.raises(ValueError, match="command"):
            MCPTools("time", command=bad)  # type: ignore[arg-type]

    async def main() -> Any:
        async with server:
            return (await server.call("get_current_time", {"timezone": "UTC"})).content

    assert json.loads(run(main))["timezone"] == "UTC"


def test_a_server_that_fails_to_start_fails_building_the_agent() -> None:
    server = MCPTools("gone", command="/nonexistent/mcp-server")
    with pytest.raises(MCPError, match=r"MCP server 'gone' could not be started: /nonexistent/mcp-server"):
        Agent(model="scripted", plugins=[ScriptedModel([]), server], autoload=False)
    assert not server.connected
