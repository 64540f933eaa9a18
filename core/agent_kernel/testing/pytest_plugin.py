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

``run``
    ``run(async_fn, *args)`` runs ``async_fn(*args)`` to completion in real time, under
    trio in one instance of the test and under asyncio in a second (``run.backend``
    says which): a plain ``def`` test covers both backends.

Every test also runs without ``AGENT_KERNEL_PLUGINS``,
``AGENT_KERNEL_DISABLE_PLUGIN_AUTOLOAD`` and ``AGENT_KERNEL_TRACE_HOOKS`` from the
calling shell (set them with ``monkeypatch`` where a test needs them).

``autojump_clock``
    ``trio.testing.MockClock(autojump_threshold=0)``. Request it in an ``async def``
    test run by pytest-trio and the test's ``trio.run`` uses it: whenever every task
    is blocked, time jumps to the next deadline, so retry backoffs and timeouts cost
    no wall time and stay deterministic.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import anyio
import pytest
from trio.testing import MockClock

from .._agent import Agent
from ._recorder import RunRecorder

__all__ = ["Runner", "TempPlugins", "autojump_clock", "make_agent", "recorder", "run", "temp_plugin"]

#: What the ``run`` fixture gives: ``run(async_fn, *args) -> result``, with ``.backend``.
Runner = Callable[..., Any]
_LOADING_ENV = ("AGENT_KERNEL_PLUGINS", "AGENT_KERNEL_DISABLE_PLUGIN_AUTOLOAD", "AGENT_KERNEL_TRACE_HOOKS")


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


@pytest.fixture(params=["trio", "asyncio"])
def run(request: pytest.FixtureRequest) -> Runner:
    """``run(async_fn, *args)`` under trio and, in a second test instance, asyncio."""
    backend = str(request.param)

    def runner(fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        return anyio.run(fn, *args, backend=backend)

    runner.backend = backend  # type: ignore[attr-defined]
    return runner


@pytest.fixture(autouse=True)
def _plugin_env_of_the_shell_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the caller's environment from changing which plugins load or tracing hooks."""
    for name in _LOADING_ENV:
        monkeypatch.delenv(name, raising=False)
