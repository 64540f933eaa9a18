"""Kernel test configuration: hypothesis profiles, the testing kit's fixtures, backends.

Hypothesis profiles and the testing kit's pytest plugin are set up in the root
``conftest.py`` for every test of the repository.

Async tests run under trio (pytest-trio's ``trio_mode``). A test that must also
hold under asyncio is a plain ``def`` test taking ``run_async``: it is run once per
backend, and ``run_async(fn, *args)`` runs ``fn`` to completion on that backend
(under trio with an autojumping `MockClock`, so sleeps and timeouts cost nothing).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import pytest

from agent_kernel.testing.grammar import run_sync

BACKENDS = ("trio", "asyncio")

RunAsync = Callable[..., Any]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The async backend of a ``def`` test that takes ``run_async``."""
    return str(request.param)


@pytest.fixture
def run_async(backend: str) -> RunAsync:
    """``run_async(fn, *args)``: run ``fn(*args)`` to completion on the test's backend."""

    def run(fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        return run_sync(partial(fn, *args), backend)

    return run
