"""Turning an MCP ``CallToolResult`` into the kernel's `ToolResult`.

* text blocks: their text, joined with newlines, in order;
* an embedded text resource: ``[resource <uri>]`` then its text;
* images, audio, embedded binary resources and resource links: a one-line summary
  in brackets (kind, MIME type, size, URI), since the kernel's tool results are text;
* no content at all but ``structured_content``: that object as JSON;
* ``is_error`` is passed through.

Works on the SDK's pydantic models by attribute, so it does not import the SDK.
"""

from __future__ import annotations

import json
from typing import Any

from agent_kernel import ToolResult


def _size(data: str | None) -> int:
    """Decoded size of base64 `data`, without decoding it."""
    if not data:
        return 0
    return len(data) * 3 // 4 - data[-2:].count("=")


def _block_text(block: Any) -> str:
    kind = getattr(block, "type", None)
    if kind == "text":
        return str(block.text)
    if kind in ("image", "audio"):
        return f"[{kind}: {block.mime_type}, {_size(block.data)} bytes]"
    if kind == "resource_link":
        name = block.title or block.name
        parts = [f"[resource link: {block.uri}"]
        if name:
            parts.append(f" {name!r}")
        if block.mime_type:
            parts.append(f", {block.mime_type}")
        if block.description:
            parts.append(f": {block.description}")
        return "".join(parts) + "]"
    if kind == "resource":
        resource = block.resource
        text = getattr(resource, "text", None)
        if text is not None:
            return f"[resource {resource.uri}]\n{text}"
        mime = f", {resource.mime_type}" if resource.mime_type else ""
        return f"[resource: {resource.uri}{mime}, {_size(getattr(resource, 'blob', None))} bytes]"
    return f"[{kind or type(block).__name__} content]"


def to_tool_result(result: Any) -> ToolResult:
    """Map an MCP ``CallToolResult`` (content blocks, structured content, is_error) to a `ToolResult`.

    .. versionadded:: 0.1
    """
    parts = [_block_text(block) for block in result.content or ()]
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False, default=str))
    is_error = bool(result.is_error)
    content = "\n".join(parts)
    if is_error and not content:
        content = "The tool reported an error without details."
    return ToolResult(content, is_error)
