"""Fixtures: both event loops, a clean environment, the real Gemma 3 270M model.

`llamacpp_testkit` holds the shared helpers.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # so the tests can import llamacpp_testkit

from llamacpp_testkit import AddTool, Recorder  # noqa: E402

from agent_plugin_llamacpp import resolve_model, unload_models  # noqa: E402


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plugin-loading variables of the developer's shell never leak into a test."""
    for name in ("AGENT_KERNEL_PLUGINS", "AGENT_KERNEL_DISABLE_PLUGIN_AUTOLOAD", "AGENT_KERNEL_TRACE_HOOKS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def gemma_path() -> Path:
    """The Gemma 3 270M GGUF, assembled from its PyPI packages into the model cache."""
    return resolve_model("gemma-3-270m")


@pytest.fixture
def fresh_model() -> Iterator[None]:
    """Unload every model after the test (for tests that load a configuration of their own)."""
    yield
    unload_models()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def add_tool() -> AddTool:
    return AddTool()
