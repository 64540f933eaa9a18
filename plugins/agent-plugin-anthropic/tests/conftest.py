"""Fixtures: both event loops, a clean environment, the saved answers, a tool plugin."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from agent_plugin_tools import Toolbox

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def fixture() -> Callable[[str], Path]:
    """``fixture("text_answer.sse")``: the path of a saved answer (it must exist)."""

    def path(name: str) -> Path:
        found = FIXTURES / name
        assert found.is_file(), f"no fixture {found}"
        return found

    return path


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither the developer's key nor plugin-loading variables leak into a test."""
    for name in (
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        "AGENT_KERNEL_PLUGINS",
        "AGENT_KERNEL_DISABLE_PLUGIN_AUTOLOAD",
        "AGENT_KERNEL_TRACE_HOOKS",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class AddCalls(list[dict[str, int]]):
    """The calls the ``add`` tool received."""


@pytest.fixture
def add_calls() -> AddCalls:
    return AddCalls()


@pytest.fixture
def toolbox(add_calls: AddCalls) -> Toolbox:
    """A Toolbox with ``add(a, b)``, recording its calls in `add_calls`."""

    def add(a: int, b: int) -> int:
        """Add two integers.

        Args:
            a: the first addend.
            b: the second addend.
        """
        add_calls.append({"a": a, "b": b})
        return a + b

    return Toolbox([add], name="math")
