"""pytest plugin for plugin authors (opt-in, like pytester).

Enable it in a ``conftest.py``::

    pytest_plugins = ["agent_kernel.testing.pytest_plugin"]

Fixtures:

``make_agent``
    ``make_agent(*plugins, model="scripted", **agent_kwargs)`` builds an isolated
    `Agent`: ``autoload=False`` (installed plugins never leak into a test), its own
    plugin manager, and the plugins given plus every plugin registered with
    ``temp_plugin`` (and the ``recorder``, when the test asked for it).

``temp_plugin``
    ``temp_plugin(obj)`` registers `obj` for this test only and returns it. Plugins
    are fixed when an Agent is built, so it applies to every agent `make_agent`
    builds afterwards in this test; it is forgotten at teardown.
    ``temp_plugin.unregister(obj)`` removes it again for agents built later.
    Temporary plugins are registered after the ones passed to `make_agent`, so
    their hooks run first (pluggy calls the last registered first).

``recorder``
    A `RunRecorder` already registered through ``temp_plugin``.

``autojump_clock``
    ``trio.testing.MockClock(autojump_threshold=0)``. Request it in an ``async def``
    test run by pytest-trio and the test's ``trio.run`` uses it: whenever every task
    is blocked, time jumps to the next deadline, so retry backoffs and timeouts cost
    no wall time and stay deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from trio.testing import MockClock

from .._agent import Agent
from ._recorder import RunRecorder

__all__ = ["TempPlugins", "autojump_clock", "make_agent", "recorder", "temp_plugin"]


class TempPlugins:
    """The plugins registered for one test with ``temp_plugin(obj)``."""

    def __init__(self) -> None:
        self._plugins: list[object] = []

    def __call__(self, plugin: object) -> Any:
        """Register `plugin` for the agents built later in this test; return it."""
        if any(p is plugin for p in self._plugins):
            raise ValueError(f"{plugin!r} is already registered for this test")
        self._plugins.append(plugin)
        return plugin

    register = __call__

    def unregister(self, plugin: object) -> None:
        """Forget `plugin` (agents built before keep it)."""
        before = len(self._plugins)
        self._plugins = [p for p in self._plugins if p is not plugin]
        if len(self._plugins) == before:
            raise ValueError(f"{plugin!r} was not registered with temp_plugin")

    def __iter__(self) -> Iterator[object]:
        return iter(list(self._plugins))

    def __len__(self) -> int:
        return len(self._plugins)

    def clear(self) -> None:
        self._plugins.clear()


@pytest.fixture
def temp_plugin() -> Iterator[TempPlugins]:
    """Register plugin objects for one test (see the module docstring)."""
    plugins = TempPlugins()
    yield plugins
    plugins.clear()


@pytest.fixture
def recorder(temp_plugin: TempPlugins) -> RunRecorder:
    """A `RunRecorder` included in every agent `make_agent` builds in this test."""
    rec = RunRecorder()
    temp_plugin(rec)
    return rec


@pytest.fixture
def make_agent(temp_plugin: TempPlugins) -> Callable[..., Agent]:
    """Build isolated agents: ``make_agent(*plugins, model="scripted", **agent_kwargs)``."""

    def build(*plugins: object, model: str | None = "scripted", **kwargs: Any) -> Agent:
        if "autoload" in kwargs:
            raise TypeError("make_agent always builds with autoload=False; use Agent(...) to test entry points")
        return Agent(model=model, plugins=[*plugins, *temp_plugin], autoload=False, **kwargs)

    return build


@pytest.fixture
def autojump_clock() -> MockClock:
    """A trio `MockClock` that jumps time forward whenever all tasks are blocked."""
    return MockClock(autojump_threshold=0)
