"""Fixtures: both event loops, an ``add`` tool, and a real llama.cpp server."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from agent_plugin_tools import Toolbox


@pytest.fixture(autouse=True)
def _no_openai_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never depend on (or leak) the developer's OPENAI_* variables."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    return free_port()


class AddTool:
    """The ``add`` tool, offered through the official `agent_plugin_tools.Toolbox`; `calls` records each call."""

    def __init__(self) -> None:
        self.calls: list[dict[str, int]] = []

        def add(a: int, b: int) -> int:
            """Add two integers.

            Args:
                a: the first number.
                b: the second number.
            """
            self.calls.append({"a": a, "b": b})
            return a + b

        self.plugin = Toolbox([add])


@pytest.fixture
def add_tool() -> AddTool:
    return AddTool()


# ---------------------------------------------------------------------------------
# The real server (integration tests)
# ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def gemma_path() -> Any:
    """The Gemma 3 270M GGUF, assembled from the PyPI chunk packages into a cache dir."""
    from agent_plugin_openai.testing import gemma_model_path

    return gemma_model_path()


@pytest.fixture(scope="session")
def llama_base_url(gemma_path: Any) -> Iterator[str]:
    """A real ``llama_cpp.server`` on a free loopback port; stopped by its PID at teardown."""
    from agent_plugin_openai.testing import llama_server

    with llama_server(gemma_path) as base_url:
        yield base_url
