"""An MCP server (stdio) that starts once: started again, it hangs or exits at once.

Usage: ``flaky_server.py STATE_FILE hang|exit``; the first start creates STATE_FILE.
"""

from __future__ import annotations

import pathlib
import sys
import time

state = pathlib.Path(sys.argv[1])
if state.exists():
    print(f"flaky: second start, {sys.argv[2]}", file=sys.stderr, flush=True)
    if sys.argv[2] == "exit":
        sys.exit(1)
    time.sleep(600)
state.write_text("started")

from mcp.server.mcpserver import MCPServer  # noqa: E402

server = MCPServer("flaky")


@server.tool()
def ping() -> str:
    """Answer pong."""
    return "pong"


server.run()
