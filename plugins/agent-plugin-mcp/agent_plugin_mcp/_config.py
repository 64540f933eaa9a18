"""``[plugins.mcp]`` in ``agent.toml``: MCP servers declared in configuration.

Each ``[plugins.mcp.servers.<name>]`` table is one `MCPTools`::

    [plugins.mcp.servers.time]
    command = "mcp-server-time"
    args = ["--local-timezone", "UTC"]

    [plugins.mcp.servers.docs]
    url = "http://127.0.0.1:8000/mcp"
    bearer_token_env = "DOCS_MCP_TOKEN"     # sent as "Authorization: Bearer <value>"

`Settings.plugin` returns one `MCPServers` plugin holding them all (it registers as
``mcp``, in place of the entry point's empty module). Each server starts when the
agent is built (its tools are needed then), all at once, and stops at the end of
the process or with `MCPServers.close`.

Secrets never come from the file: ``pass_env`` names variables the server inherits
from the agent's environment, ``headers_env`` maps a header to the variable holding
its value, ``bearer_token_env`` names the variable of a bearer token.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager

from attrs import Factory, frozen

from agent_kernel import ToolRegistrar, hookimpl

from ._tools import MCPTools

__all__ = ["MCPServers", "ServerSettings", "Settings"]


class MissingVariable(ValueError):
    """A variable named by a ``*_env`` setting is not set."""


def _variable(server: str, key: str, name: str) -> str:
    value = os.environ.get(name)
    if value is None:
        raise MissingVariable(f"MCP server {server!r}: {key} names the environment variable {name}, which is not set")
    return value


@frozen
class ServerSettings:
    """One ``[plugins.mcp.servers.<name>]`` table: the arguments of `MCPTools`.

    Attributes:
        command: the executable of a stdio server (give `command` or `url`).
        args: the command's arguments.
        env: variables set for the server (no secrets: the file refuses them).
        pass_env: names of variables copied from the agent's environment (secrets).
        cwd: the server's working directory.
        url: the endpoint of a streamable HTTP server.
        headers: HTTP headers (no credentials: the file refuses them).
        headers_env: header name -> the variable holding its value.
        bearer_token_env: the variable holding a token sent as ``Authorization: Bearer``.
        timeout: seconds to start and list the tools.
        call_timeout: seconds for one call (none by default).
        tool_prefix: the tools' prefix instead of ``<name>__``.
        tools: offer only these tools of the server.
        restart: restart a server that died, when the next run starts.
    """

    command: str | None = None
    args: list[str] = Factory(list)
    env: dict[str, str] = Factory(dict)
    pass_env: list[str] = Factory(list)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = Factory(dict)
    headers_env: dict[str, str] = Factory(dict)
    bearer_token_env: str | None = None
    timeout: float = 30.0
    call_timeout: float | None = None
    tool_prefix: str | None = None
    tools: list[str] | None = None
    restart: bool = True

    def make(self, name: str) -> MCPTools:
        """The `MCPTools` named `name` (variables named by ``*_env`` settings are read now).

        Raises:
            ValueError: a bad option, or a named variable that is not set.
        """
        env = dict(self.env)
        for variable in self.pass_env:
            env[variable] = _variable(name, "pass_env", variable)
        headers = dict(self.headers)
        for header, variable in self.headers_env.items():
            headers[header] = _variable(name, f"headers_env.{header}", variable)
        if self.bearer_token_env is not None:
            headers["Authorization"] = "Bearer " + _variable(name, "bearer_token_env", self.bearer_token_env)
        return MCPTools(
            name,
            command=self.command,
            url=self.url,
            env=env or None,
            args=self.args,
            cwd=self.cwd,
            headers=headers or None,
            timeout=self.timeout,
            call_timeout=self.call_timeout,
            tool_prefix=self.tool_prefix,
            tools=self.tools,
            restart=self.restart,
        )


class MCPServers:
    """Several `MCPTools` as one plugin (what ``[plugins.mcp]`` makes).

    Building an `Agent` with it starts every server that is not running yet, all at
    once, and registers their tools; `close` stops them (so does the end of the
    process).

    Args:
        servers: the servers.
        name: the plugin name (``mcp`` replaces the entry point's empty module).

    .. versionadded:: 0.1
    """

    def __init__(self, servers: dict[str, MCPTools] | list[MCPTools], *, name: str = "mcp") -> None:
        listed = list(servers.values()) if isinstance(servers, dict) else list(servers)
        self.servers = {server.server: server for server in listed}
        if len(self.servers) != len(listed):
            raise ValueError("two MCP servers have the same name")
        self.name = name

    def __repr__(self) -> str:
        return f"MCPServers({list(self.servers.values())!r})"

    def start(self) -> None:
        """Start every server not running yet (at once) and wait for them; see `MCPTools.start`."""
        started = []
        try:
            for server in self.servers.values():
                if server._tg is None:
                    server._begin()
                    started.append(server)
            for server in started:
                server._finish()
        except BaseException:
            for server in started:
                server.close()
            raise

    def close(self) -> None:
        """Stop every server this plugin started."""
        for server in self.servers.values():
            server.close()

    async def aclose(self) -> None:
        for server in self.servers.values():
            await server.aclose()

    @hookimpl
    def agent_register_tools(self, tools: ToolRegistrar) -> None:
        self.start()
        for server in self.servers.values():
            server.agent_register_tools(tools)

    @hookimpl
    def agent_wrap_run(self) -> AbstractAsyncContextManager[None] | None:
        managers = [m for m in (s.agent_wrap_run() for s in self.servers.values()) if m is not None]
        if not managers:
            return None
        return _all(managers)


@asynccontextmanager
async def _all(managers: list[AbstractAsyncContextManager[None]]) -> AsyncIterator[None]:
    async with AsyncExitStack() as stack:
        for manager in managers:
            await stack.enter_async_context(manager)
        yield


@frozen
class Settings:
    """``[plugins.mcp]``: ``servers``, a table of `ServerSettings` by server name.

    .. versionadded:: 0.1
    """

    servers: dict[str, ServerSettings] = Factory(dict)

    def plugin(self) -> MCPServers:
        """One `MCPServers` with every declared server (none is started yet)."""
        return MCPServers([settings.make(name) for name, settings in self.servers.items()])
