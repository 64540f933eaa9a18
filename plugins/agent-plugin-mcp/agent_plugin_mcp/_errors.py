"""Errors of the MCP plugin. Each message names the server and how it was reached."""

from __future__ import annotations

from agent_kernel.errors import AgentError


class MCPError(AgentError):
    """An MCP server could not be started, listed or called.

    Raised by entering `MCPTools` when the server fails to start (the command does not
    exist, exits at once, never answers the handshake, lists no usable tools), and by
    its tools when the server cannot answer a call; the kernel turns the latter into
    an error result the model sees (through the ``agent_on_tool_error`` decision).

    Attributes:
        message: the message without the quoted stderr.
        server: the server's name (the ``name`` given to `MCPTools`).
        target: the command line or URL of the server.
        stderr: the last lines the server wrote to its stderr ("" when unknown). Start
            failures quote them in the message; errors of calls (which the model sees)
            do not, and the plugin logs them instead.

    .. versionadded:: 0.1
    """

    def __init__(self, message: str, *, server: str, target: str = "", stderr: str = "", quote: bool = True) -> None:
        text = message
        if quote and stderr.strip():
            text += "\n--- stderr of the server (last lines) ---\n" + stderr.rstrip()
        super().__init__(text)
        self.message = message
        self.server = server
        self.target = target
        self.stderr = stderr


class MCPTimeout(MCPError, TimeoutError):
    """The server did not start, or did not answer a call, within its timeout.

    .. versionadded:: 0.1
    """


class MCPConnectionLost(MCPError):
    """The connection to the server is gone: its process exited or was killed.

    Every later call of the same connection fails with this error at once. When
    `MCPTools` was made with ``restart=True`` the next run restarts the server.

    .. versionadded:: 0.1
    """
