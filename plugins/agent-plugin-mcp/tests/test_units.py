"""Names, result mapping, constructor checks and the entry point (no server needed)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from mcp.types import (
    AudioContent,
    BlobResourceContents,
    CallToolResult,
    EmbeddedResource,
    ImageContent,
    ResourceLink,
    TextContent,
    TextResourceContents,
)

from agent_kernel import Agent
from agent_kernel.testing import ScriptedModel
from agent_plugin_mcp import SEPARATOR, MCPTools, kernel_names, to_tool_result

PROVIDER_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def test_kernel_names_prefix_the_server_name() -> None:
    assert SEPARATOR == "__"
    assert kernel_names("time__", ["get_current_time", "convert-time"]) == {
        "get_current_time": "time__get_current_time",
        "convert-time": "time__convert-time",
    }


def test_kernel_names_rewrite_characters_and_length_stably() -> None:
    remotes = ["files/read", "files.read", "files_read", "x" * 120, "x" * 121, "a.b"]
    names = kernel_names("fs__", remotes)
    assert names["files_read"] == "fs__files_read"  # unchanged names keep priority
    assert names["a.b"] == "fs__a_b"
    assert len(set(names.values())) == len(remotes)
    for name in names.values():
        assert PROVIDER_NAME.fullmatch(name), name
        assert name.startswith("fs__")
    assert names["files/read"].startswith("fs__files_read_") and names["files.read"].startswith("fs__files_read_")
    assert kernel_names("fs__", list(reversed(remotes))) == names  # stable whatever the listing order
    both = kernel_names("p__", ["a.b", "a/b"])
    assert len(set(both.values())) == 2 and all(name.startswith("p__a_b_") for name in both.values())
    assert kernel_names("p__", ["a/b", "a.b"]) == both


@pytest.mark.parametrize("name", ["", "a__b", "a_", "_a", "with space", "dot.ted", "x" * 33])
def test_bad_server_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError):
        MCPTools(name, command="true")


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"command": "x", "url": "http://127.0.0.1/mcp"},
        {"url": "http://127.0.0.1/mcp", "args": ["-v"]},
        {"url": "http://127.0.0.1/mcp", "env": {"A": "1"}},
        {"command": "x", "headers": {"A": "1"}},
        {"command": "x", "args": "--flag"},
        {"command": "x", "timeout": 0},
        {"command": "x", "call_timeout": -1},
        {"command": "x", "tool_prefix": "bad prefix"},
        {"command": "x", "tools": "get_time"},
    ],
)
def test_bad_options_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        MCPTools("srv", **kwargs)


def test_plugin_name_and_repr() -> None:
    server = MCPTools("time", command="mcp-server-time", args=["--local-timezone", "UTC"])
    assert server.name == "mcp:time"
    assert server.server == "time"
    assert server.target == "mcp-server-time --local-timezone UTC"
    assert repr(server) == "MCPTools('time', command='mcp-server-time --local-timezone UTC')"
    assert MCPTools("web", url="http://127.0.0.1:1/mcp").target == "http://127.0.0.1:1/mcp"


def test_result_mapping_text_and_summaries() -> None:
    result = CallToolResult(
        content=[
            TextContent(type="text", text="one"),
            ImageContent(type="image", data="AAAA", mime_type="image/png"),
            AudioContent(type="audio", data="AAAAAA==", mime_type="audio/wav"),
            ResourceLink(type="resource_link", uri="file:///r.txt", name="r", description="a report"),
            EmbeddedResource(type="resource", resource=TextResourceContents(uri="mem://t", text="inline")),
            EmbeddedResource(
                type="resource", resource=BlobResourceContents(uri="mem://b", blob="AAAA", mime_type="application/zip")
            ),
            TextContent(type="text", text="two"),
        ]
    )
    mapped = to_tool_result(result)
    assert not mapped.is_error
    assert mapped.content.split("\n") == [
        "one",
        "[image: image/png, 3 bytes]",
        "[audio: audio/wav, 4 bytes]",
        "[resource link: file:///r.txt 'r': a report]",
        "[resource mem://t]",
        "inline",
        "[resource: mem://b, application/zip, 3 bytes]",
        "two",
    ]


def test_result_mapping_structured_only_and_errors() -> None:
    assert to_tool_result(CallToolResult(content=[], structured_content={"a": [1, "é"]})).content == '{"a": [1, "é"]}'
    failed = to_tool_result(CallToolResult(content=[TextContent(type="text", text="bad input")], is_error=True))
    assert failed.is_error and failed.content == "bad input"
    empty = to_tool_result(CallToolResult(content=[], is_error=True))
    assert empty.is_error and empty.content
    assert to_tool_result(CallToolResult(content=[])).content == ""


def test_entry_point_plugin_has_no_behaviour(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_KERNEL_PLUGINS", "mcp")  # only this distribution's entry point
    built = Agent(model="scripted", plugins=[ScriptedModel([])], autoload=True)
    assert set(built.plugins) == {"mcp", "scripted"}
    info = built.plugins["mcp"]
    assert info.distribution == "agent-plugin-mcp"
    assert info.hooks == ()
