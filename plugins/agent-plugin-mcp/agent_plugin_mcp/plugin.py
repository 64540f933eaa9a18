"""The ``mcp`` entry-point plugin: registered by autoload, it implements no hook.

An MCP server is a resource the application starts and owns, so nothing happens
merely because the distribution is installed. Enter an `agent_plugin_mcp.MCPTools`
and add it to the agent explicitly::

    async with MCPTools("time", command="uvx", args=["mcp-server-time"]) as time:
        agent = Agent(model=..., plugins=[time])

.. versionadded:: 0.1
"""

name = "mcp"
