"""A small MCP server for the tests: stdio by default, streamable HTTP with ``--http PORT``.

Tools: ``add`` (read-only), ``pid``, ``slow`` (touches a marker file, then sleeps),
``mixed`` (text, image, resource link and embedded resource blocks), ``structured``
(structured content only), ``fail`` (raises: an ``is_error`` result), ``dotted.name``.
"""

from __future__ import annotations

import os
import pathlib
import sys

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.types import (
    CallToolResult,
    EmbeddedResource,
    ImageContent,
    ResourceLink,
    TextContent,
    TextResourceContents,
    ToolAnnotations,
)

server = MCPServer("testkit")


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def pid() -> int:
    """The server's process id."""
    return os.getpid()


@server.tool()
async def slow(seconds: float, marker: str = "") -> str:
    """Sleep `seconds`, after writing the server's pid to the file `marker`."""
    if marker:
        pathlib.Path(marker).write_text(str(os.getpid()))
    await anyio.sleep(seconds)
    return "slept"


@server.tool()
def mixed() -> list[TextContent | ImageContent | ResourceLink | EmbeddedResource]:
    """Blocks of every kind."""
    return [
        TextContent(type="text", text="first"),
        ImageContent(type="image", data="iVBORw0KGgo=", mime_type="image/png"),
        ResourceLink(type="resource_link", uri="file:///tmp/report.txt", name="report", mime_type="text/plain"),
        EmbeddedResource(
            type="resource", resource=TextResourceContents(uri="mem://note", mime_type="text/plain", text="inline note")
        ),
        TextContent(type="text", text="last"),
    ]


@server.tool()
def structured() -> CallToolResult:
    """Structured content only."""
    return CallToolResult(content=[], structured_content={"answer": 42, "unit": "none"})


@server.tool()
def fail(message: str) -> str:
    """Raise `message`."""
    raise ValueError(message)


@server.tool(name="dotted.name")
def dotted() -> str:
    """A tool whose name needs rewriting for LLM providers."""
    return "dotted"


if __name__ == "__main__":
    print("testkit server starting", file=sys.stderr, flush=True)
    if len(sys.argv) == 3 and sys.argv[1] == "--http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()
