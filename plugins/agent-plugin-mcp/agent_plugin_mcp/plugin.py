"""The ``mcp`` entry-point plugin: registered by autoload, it implements no hook.

An MCP server is a resource, so nothing happens merely because the distribution is
installed. Add an `agent_plugin_mcp.MCPTools` to the agent (entered with
``async with``, or started by the agent), or declare servers under
``[plugins.mcp.servers.<name>]`` in ``agent.toml``: the configured `MCPServers`
plugin is also named ``mcp`` and replaces this module::

    async with MCPTools("time", command="uvx", args=["mcp-server-time"]) as time:
        agent = Agent(model=..., plugins=[time])

.. versionadded:: 0.1
"""

name = "mcp"
