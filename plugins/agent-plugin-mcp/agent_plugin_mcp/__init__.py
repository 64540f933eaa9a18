"""agent-plugin-mcp: the tools of MCP servers as agent-kernel tools.

``MCPTools(name, command=None, url=None, env=None, ...)`` starts an MCP server
(stdio or streamable HTTP) for the life of an ``async with`` block and offers its
tools to the model as ``<name>__<tool>``::

    async with MCPTools("time", command="mcp-server-time") as time:
        agent = Agent(model="openai:gpt-4o-mini", plugins=[time])
        outcome = await agent.run("What time is it in Tokyo?")

Without ``async with``, ``Agent(plugins=[MCPTools(...)])`` starts the server when the
agent is built (its tools are needed then) in a thread of its own, and it stays up
for the agent's runs until `MCPTools.close` or the end of the process. In
``agent.toml``, ``[plugins.mcp.servers.<name>]`` tables declare servers (see `Settings`).

The MCP SDK is imported only when a server is started.
"""

from ._config import MCPServers as MCPServers
from ._config import ServerSettings as ServerSettings
from ._config import Settings as Settings
from ._content import to_tool_result as to_tool_result
from ._errors import MCPConnectionLost as MCPConnectionLost
from ._errors import MCPError as MCPError
from ._errors import MCPTimeout as MCPTimeout
from ._names import SEPARATOR as SEPARATOR
from ._names import kernel_names as kernel_names
from ._tools import MCPTools as MCPTools

__all__ = [
    "SEPARATOR",
    "MCPConnectionLost",
    "MCPError",
    "MCPServers",
    "MCPTimeout",
    "MCPTools",
    "ServerSettings",
    "Settings",
    "kernel_names",
    "to_tool_result",
]
